"""Test-only ComfyUI pack: lets tests feed exact values into a graph and read exact values out.

Loaded beside the DreamActor-M2 pack by the test harness only; never shipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import folder_paths

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comfy_harness"))
from values import load_value, save_value  # noqa: E402

PROBE_FOLDER = "dreamactor_probes"


class AnyType(str):
    """ComfyUI's wildcard type: compares equal to every type name during link validation."""

    def __ne__(self, other: object) -> bool:
        return False


ANY = AnyType("*")


class Probe:
    """Saves whatever reaches it under output/dreamactor_probes/<name>."""

    CATEGORY = "DreamActor-M2 tests"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"value": (ANY, {}), "name": ("STRING", {"default": "probe"})}}

    def save(self, value, name: str):
        save_value(value, Path(folder_paths.get_output_directory()) / PROBE_FOLDER / name)
        return {"ui": {"probe": [name]}}


class Feed:
    """Emits a value the test saved under input/dreamactor_probes/<name>."""

    CATEGORY = "DreamActor-M2 tests"
    RETURN_TYPES = (ANY,)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"name": ("STRING", {"default": "feed"})}}

    def load(self, name: str):
        return (load_value(Path(folder_paths.get_input_directory()) / PROBE_FOLDER / name),)


NODE_CLASS_MAPPINGS = {"DreamActorTest_Probe": Probe, "DreamActorTest_Feed": Feed}
