"""ComfyUI adapters for the engine in ``dreamactor_core``: one module per stage of the data flow
(pose, canvas, conditioning, models, sampling) plus ``comfy_bridge`` for ComfyUI plumbing, listed
once here. Each stage module exports NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS.
"""

from . import canvas, captioning, comfy_bridge, conditioning, long_video, models, native, pose, sampling

comfy_bridge.register()

_MODULES = (conditioning, pose, canvas, models, sampling, long_video, native, captioning)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _module in _MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
