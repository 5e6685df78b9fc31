"""The generative models: safe checkpoint reading (``checkpoints.py``), one adapter per backbone
(``backbones/``), loading a transformer or VAE from files (``loading.py``), LoRAs (``lora.py``) and
tiled VAE encode/decode (``vae.py``)."""
