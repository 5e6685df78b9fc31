"""ComfyUI entry point of the DreamActor-M2 node pack.

The pack uses ComfyUI's classic node API (NODE_CLASS_MAPPINGS) rather than the V3 schema: it
loads unchanged on every ComfyUI from 0.3.60 on, while the V3 ``comfy_api.latest`` interface was
still changing across those releases (see README, "Why the classic node API").
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
