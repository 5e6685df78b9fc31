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


# --- model management (tests/test_memory_comfy.py) ----------------------------------------------

def loaded_models() -> list[dict]:
    """ComfyUI's ``current_loaded_models``: name (the pack's label, else the class), whether it is
    the pack's, the device it is loaded on, bytes loaded there and the model's size, and how the pack
    placed it (full/streamed)."""
    import comfy.model_management as mm

    out = []
    for entry in mm.current_loaded_models:
        patcher = entry.model
        if patcher is None:
            continue
        out.append({"name": getattr(patcher, "dreamactor_name", type(patcher.model).__name__),
                    "pack": hasattr(patcher, "dreamactor_name"), "device": str(entry.device),
                    "loaded": int(entry.model_loaded_memory()), "size": int(entry.model_memory()),
                    "placement": getattr(patcher, "dreamactor_placement", "")})
    return out


def _streaming(module) -> bool:
    """Whether diffusers' group offload (the pack's block streaming) is on in ``module``."""
    return any(getattr(m, "_diffusers_hook", None) is not None and m._diffusers_hook.get_hook("group_offloading")
               is not None for m in module.modules())


class Watch:
    """Passes a pack model through and, at the first forward of its module at ``attribute``
    (``transformer``, ``vae.encoder``, ``mllm``, ``model``...), saves under ``name`` what ComfyUI's
    model management holds at that moment and where the module's weights are; with ``interrupt`` it
    then raises ComfyUI's interrupt from inside the computation. The hook removes itself."""

    CATEGORY = "DreamActor-M2 tests"
    RETURN_TYPES = (ANY,)
    FUNCTION = "watch"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"value": (ANY, {}), "name": ("STRING", {"default": "watch"}),
                             "attribute": ("STRING", {"default": "transformer"}),
                             "interrupt": ("BOOLEAN", {"default": False})}}

    def watch(self, value, name: str, attribute: str, interrupt: bool):
        import comfy.model_management as mm

        module = value
        for part in attribute.split("."):
            module = getattr(module, part)
        path = Path(folder_paths.get_output_directory()) / PROBE_FOLDER / name

        def record(watched, args):
            handle.remove()
            save_value({"loaded": loaded_models(), "streaming": _streaming(watched),
                        "weights_on": sorted({str(p.device) for p in watched.parameters()})}, path)
            if interrupt:
                raise mm.InterruptProcessingException()

        handle = module.register_forward_pre_hook(record)
        return (value,)


_REAL: dict = {}


def simulate_device_budget(budget: int | None, state: str = "NORMAL_VRAM") -> None:
    """Make ComfyUI's model management treat the CPU as a device of ``budget`` bytes that loaded
    models fill (free = budget - bytes loaded), in a GPU's VRAM ``state`` (NORMAL_VRAM; LOW_VRAM is
    what --lowvram sets, a flag ComfyUI refuses beside --cpu); None restores the real state. The
    pack's policy then decides, evicts, streams and refuses as it would on a GPU; nothing measures
    real memory."""
    import comfy.model_management as mm

    if not _REAL:
        _REAL.update(get_free_memory=mm.get_free_memory, vram_state=mm.vram_state)
    if budget is None:
        mm.get_free_memory, mm.vram_state = _REAL["get_free_memory"], _REAL["vram_state"]
        return

    def free(dev=None, torch_free_too=False):
        used = sum(entry.model_loaded_memory() for entry in mm.current_loaded_models if entry.model is not None)
        left = max(0, budget - used)
        return (left, left) if torch_free_too else left

    mm.get_free_memory, mm.vram_state = free, mm.VRAMState[state]


def _add_routes() -> None:
    from aiohttp import web
    from server import PromptServer

    routes = PromptServer.instance.routes

    @routes.get("/dreamactor_test/memory")
    async def memory_state(request):
        import comfy.model_management as mm

        return web.json_response({"models": loaded_models(), "reserve": int(mm.minimum_inference_memory()),
                                  "vram_state": mm.vram_state.name})

    @routes.post("/dreamactor_test/device_budget")
    async def device_budget(request):
        body = await request.json()
        simulate_device_budget(body.get("bytes"), body.get("state", "NORMAL_VRAM"))
        return web.json_response({})


_add_routes()

NODE_CLASS_MAPPINGS = {"DreamActorTest_Probe": Probe, "DreamActorTest_Feed": Feed, "DreamActorTest_Watch": Watch}
