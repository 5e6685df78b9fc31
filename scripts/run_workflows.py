"""The README's main job: animate a real photo with a real dancing clip in both DreamActor-M2
modes (pose-based and RGB-driven), headless inside real ComfyUI, and save the videos, the skeleton
preview and the canvas preview to ./outputs/.

No DreamActor-M2 weights exist, and real backbone weights are tens of GB, so this run makes TINY
RANDOM-WEIGHT models of the real diffusers classes on the fly: the videos prove that every node of
the pipeline runs end to end on real inputs, not that the result looks good.

The graphs are built here in API format from the pack's nodes; widgets not set below take the
defaults the server reports in /object_info.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from comfy_harness.provision import ensure_comfyui  # noqa: E402
from comfy_harness.server import ComfyServer  # noqa: E402
from dreamactor_core.tiny_models import write_tiny_models  # noqa: E402
from dreamactor_core.video_io import read_clip, write_video  # noqa: E402
from real_data import skimage_photo, template_clip  # noqa: E402
from dreamactor_core.tiny_encoders import write_tiny_encoders  # noqa: E402

BANNER = """
##############################################################################
#  DEMO ON TINY RANDOM-WEIGHT MODELS: the videos show that the pipeline runs  #
#  end to end on real inputs. They are noise, not a trained animation.       #
##############################################################################
"""
PANEL = 64  # tiny models: a 64 x 64 panel, so a 64 x 128 canvas
DRIVING_FRAMES = 17


class Graph:
    """An API-format prompt under construction; unset widget inputs take the server's defaults."""

    def __init__(self, object_info: dict) -> None:
        self.info, self.prompt = object_info, {}

    def add(self, ident: str, class_type: str, **inputs) -> str:
        spec = self.info[class_type]["input"]
        for group in ("required", "optional"):
            for name, (kind, *rest) in spec.get(group, {}).items():
                options = rest[0] if rest and isinstance(rest[0], dict) else {}
                if name in inputs or (group == "optional" and "default" not in options):
                    continue
                if "default" in options:
                    inputs[name] = options["default"]
                elif isinstance(kind, list) and kind:
                    inputs[name] = kind[0]
        self.prompt[ident] = {"class_type": class_type, "inputs": inputs}
        return ident

    def save_video(self, ident: str, images: list, fps: list, prefix: str) -> None:
        video = self.add(f"{ident}_video", "CreateVideo", images=images, fps=fps)
        self.add(ident, "SaveVideo", video=[video, 0], filename_prefix=prefix)


def build(object_info: dict, mode: str, files: dict[str, str]) -> dict:
    g = Graph(object_info)
    g.add("reference", "LoadImage", image="reference.png")
    g.add("load_video", "LoadVideo", file="driving.mp4")
    g.add("driving", "GetVideoComponents", video=["load_video", 0])
    motion = ["driving", 0]
    if mode == "pose":
        g.add("extract", "DreamActorM2_PoseExtract", images=["driving", 0], backend="mediapipe")
        g.add("augment", "DreamActorM2_PoseAugment", pose_keypoint=["extract", 0], width=PANEL, height=PANEL)
        g.add("render", "DreamActorM2_PoseRender", pose_keypoint=["augment", 0], width=PANEL, height=PANEL)
        motion = ["render", 0]
        g.save_video("skeleton_preview", motion, ["driving", 2], f"dreamactor/{mode}_skeletons")
    g.add("canvas", "DreamActorM2_BuildCanvas", reference=["reference", 0], driving=motion,
          width=PANEL, height=PANEL, fps=["driving", 2])
    g.save_video("canvas_preview", ["canvas", 0], ["driving", 2], f"dreamactor/{mode}_canvas")
    g.add("masks", "DreamActorM2_CanvasMasks", canvas_info=["canvas", 1])
    g.add("vae", "DreamActorM2_LoadVAE", vae_name=files["vae"])
    g.add("encode", "DreamActorM2_EncodeCanvas", vae=["vae", 0], canvas=["canvas", 0])
    g.add("fuse", "DreamActorM2_TargetOrientedPrompt", motion="a person is dancing",
          appearance="an astronaut in a white spacesuit")
    g.add("text_encoder", "DreamActorM2_LoadTextEncoder", text_encoder_name=files["text_encoder"])
    g.add("text", "DreamActorM2_TextEncode", text_encoder=["text_encoder", 0], prompt=["fuse", 0])
    g.add("model", "DreamActorM2_LoadModel", model_name=files["transformer"])
    g.add("lora", "DreamActorM2_LoadLora", model=["model", 0], lora_name=files["lora"], strength=1.0)
    g.add("sample", "DreamActorM2_Sampler", model=["lora", 0], positive=["text", 0], negative=["text", 1],
          canvas_latent=["encode", 0], mask=["masks", 0], steps=4, seed=42)
    g.add("decode", "DreamActorM2_DecodeLatent", vae=["vae", 0], samples=["sample", 0])
    g.add("result", "DreamActorM2_ExtractResult", frames=["decode", 0], canvas_info=["canvas", 1])
    g.save_video("animation", ["result", 0], ["result", 1], f"dreamactor/{mode}_animation")
    return g.prompt


def prepare_inputs(input_dir: Path) -> None:
    from PIL import Image

    input_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage_photo("astronaut")).save(input_dir / "reference.png")
    clip = read_clip(template_clip(), max_frames=DRIVING_FRAMES)
    write_video(input_dir / "driving.mp4", clip.frames, clip.fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "outputs")
    parser.add_argument("--mode", choices=("pose", "rgb"), action="append", help="default: both")
    args = parser.parse_args()
    print(BANNER)
    with tempfile.TemporaryDirectory(prefix="dreamactor-demo-") as scratch:
        base = Path(scratch)
        server = ComfyServer(ensure_comfyui(), base, packs={"ComfyUI-DreamActor-M2": REPO})
        tiny = write_tiny_models(server.models_dir)
        write_tiny_encoders(server.models_dir / "text_encoders", server.models_dir / "clip_vision")
        files = {"vae": tiny["vae"].name, "transformer": tiny["transformer"].name, "lora": tiny["lora"].name,
                 "text_encoder": "tiny_hunyuan_video_15_pipeline"}
        prepare_inputs(server.input_dir)
        with server:
            object_info = server.object_info()
            for mode in args.mode or ["pose", "rgb"]:
                print(f"running the {mode} graph ...", flush=True)
                server.run(build(object_info, mode, files), timeout=1800)
        produced = sorted((server.output_dir / "dreamactor").glob("*"))
        args.out.mkdir(parents=True, exist_ok=True)
        for path in produced:
            shutil.copy(path, args.out / path.name)
            print(f"wrote {args.out / path.name}")
    print(BANNER)


if __name__ == "__main__":
    main()
