"""LoRA training for the DreamActor canvas (pose stage, RGB stage, bootstrap data): the engine
side, framework-free (no ComfyUI); ``app/train_cli.py`` exposes it as ``python -m dreamactor_core train``."""
