"""ComfyUI adapters for the engine in ``dreamactor_core``: one module per concept, listed once here.

Each module exports NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS for its own nodes.
"""

from . import canvas, lora, model, model_folders, pose, prompt, sampler, text, vae

model_folders.register()

_MODULES = (prompt, text, pose, canvas, model, lora, vae, sampler)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _module in _MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
