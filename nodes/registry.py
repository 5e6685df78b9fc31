"""Shared naming rules for the pack's nodes.

Every node id starts with ``NODE_PREFIX`` (stable: saved workflows refer to it) and every node sits
under ``CATEGORY_ROOT`` in the node library.
"""

NODE_PREFIX = "DreamActorM2_"
CATEGORY_ROOT = "DreamActor-M2"
