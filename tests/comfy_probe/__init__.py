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

# --- narrow stand-ins for the native workflows (tests/test_workflows_comfy.py) -------------------
# ComfyUI 0.3.75 builds the HunyuanVideo 1.5 VAE, Qwen2.5-VL 7B and SigLIP-384 at their real, fixed
# sizes whatever the file holds; these loaders build the same ComfyUI classes at the widths a file
# holds, so the rest of a native graph (VAE Encode/Decode, CLIP Vision Encode, CLIP Text Encode, the
# model) runs ComfyUI's own code in CI time.

def _folder_file(folder: str, name: str) -> dict:
    import comfy.utils

    return comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise(folder, name), safe_load=True)


def _indices(keys, pattern: str) -> int:
    import re

    return 1 + max(int(m.group(1)) for k in keys if (m := re.match(pattern, k)))


class NarrowHV15VAELoader:
    """Core VAELoader for a narrow HunyuanVideo 1.5 VAE file (ComfyUI's key layout): comfy.sd.VAE
    detects HV1.5 as usual (latent 32, 16x / 4x, its latent format and memory rules) while its
    encoder and decoder classes (comfy.ldm.hunyuan_video.vae_refiner) are built at the file's
    widths instead of the hard-coded [128, 256, 512, 1024, 1024] x 2 blocks."""

    CATEGORY = "DreamActor-M2 tests"
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"vae_name": (folder_paths.get_filename_list("vae"),)}}

    def load(self, vae_name: str):
        import comfy.ldm.hunyuan_video.vae_refiner as refiner
        import comfy.sd

        sd = _folder_file("vae", vae_name)
        stages = _indices(sd, r"encoder\.down\.(\d+)\.")
        narrow = {"block_out_channels": [sd[f"encoder.down.{i}.block.0.conv2.conv.weight"].shape[0] for i in range(stages)],
                  "num_res_blocks": _indices(sd, r"encoder\.down\.0\.block\.(\d+)\.")}

        class Encoder(refiner.Encoder):
            def __init__(self, **config):
                super().__init__(**{**config, **narrow})

        class Decoder(refiner.Decoder):
            def __init__(self, **config):
                super().__init__(**{**config, **narrow})

        real = refiner.Encoder, refiner.Decoder
        refiner.Encoder, refiner.Decoder = Encoder, Decoder
        try:
            vae = comfy.sd.VAE(sd=sd)
        finally:
            refiner.Encoder, refiner.Decoder = real
        missing, unexpected = vae.first_stage_model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(f"narrow HV1.5 VAE {vae_name}: missing {missing}, unexpected {unexpected}")
        return (vae,)


class NarrowCLIPVisionLoader:
    """Core CLIPVisionLoader for a narrow SigLIP file: ComfyUI's own ClipVisionModel (its
    preprocessing, crop option and hidden-state outputs) with SigLIP-384's config, the layer count and
    MLP width read from the file (ComfyUI recognises SigLIP only with 23+ full layers)."""

    CATEGORY = "DreamActor-M2 tests"
    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"clip_name": (folder_paths.get_filename_list("clip_vision"),)}}

    def load(self, clip_name: str):
        import json
        import tempfile

        import comfy.clip_vision

        sd = _folder_file("clip_vision", clip_name)
        config = json.loads((Path(comfy.clip_vision.__file__).parent / "clip_vision_siglip_384.json").read_text())
        config.update(num_hidden_layers=_indices(sd, r"vision_model\.encoder\.layers\.(\d+)\."),
                      intermediate_size=sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0])
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(config, handle)
        clip = comfy.clip_vision.ClipVisionModel(handle.name)
        Path(handle.name).unlink()
        missing, _ = clip.load_sd(sd)
        if missing:
            raise ValueError(f"narrow SigLIP {clip_name}: missing {missing}")
        return (clip,)


class _RecordingTextEncoder:
    """A CLIP for core CLIP Text Encode: ``tokenize`` records the text, ``encode_from_tokens_scheduled``
    returns HunyuanVideo 1.5's conditioning form ([1, tokens, width], no pooled output), seeded by
    the text so equal prompts give equal conditioning."""

    def __init__(self, width: int, record: Path) -> None:
        self.width, self.record = width, record

    def tokenize(self, text: str) -> str:
        seen = load_value(self.record) if self.record.with_suffix(".json").exists() else []
        save_value([*seen, text], self.record)
        return text

    def encode_from_tokens_scheduled(self, text: str, **_) -> list:
        import zlib

        import torch

        generator = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        tokens = max(1, len(text.split()))
        return [[torch.randn(1, tokens, self.width, generator=generator), {"pooled_output": None}]]


class RecordingTextEncoderLoader:
    """Stands in for DualCLIPLoader (Qwen2.5-VL 7B + ByT5, built at full size by ComfyUI): a CLIP whose
    encodings are seeded by the text and whose texts are saved under output/dreamactor_probes/<name>."""

    CATEGORY = "DreamActor-M2 tests"
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"width": ("INT", {"default": 32, "min": 1, "max": 8192}),
                             "name": ("STRING", {"default": "texts"})}}

    def load(self, width: int, name: str):
        record = Path(folder_paths.get_output_directory()) / PROBE_FOLDER / name
        record.with_suffix(".json").unlink(missing_ok=True)
        return (_RecordingTextEncoder(width, record),)


NODE_CLASS_MAPPINGS = {"DreamActorTest_Probe": Probe, "DreamActorTest_Feed": Feed, "DreamActorTest_Watch": Watch,
                       "DreamActorTest_NarrowHV15VAELoader": NarrowHV15VAELoader,
                       "DreamActorTest_NarrowCLIPVisionLoader": NarrowCLIPVisionLoader,
                       "DreamActorTest_RecordingTextEncoderLoader": RecordingTextEncoderLoader}
