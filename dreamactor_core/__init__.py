"""DreamActor-M2 engine: spatiotemporal in-context character animation on open MMDiT backbones.

This package is framework-free: it imports nothing from ComfyUI and is usable from plain Python
and from its own command line (``python -m dreamactor_core``). Importing it is cheap: heavy
dependencies (diffusers, mediapipe, onnxruntime) are imported by the modules that need them.
"""

__version__ = "0.1.0"
