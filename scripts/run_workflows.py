"""The README's main job: run the shipped workflows (workflows/dreamactor_m2_pose.json and
workflows/dreamactor_m2_rgb.json) headless inside real ComfyUI on a real photo and a real dancing
clip, and copy the animations, skeleton previews and canvas previews to ./outputs/.

Real weights: when the ComfyUI models folder (``--models-dir``, else $COMFYUI_MODELS_DIR, else the
``models`` folder of the ComfyUI this pack is installed in) has every file a workflow names, that
workflow runs on them unchanged (on the GPU when there is one). Otherwise it runs on TINY
RANDOM-WEIGHT models of the same classes and file layouts, saved under the workflow's file names
in a scratch folder, at a 64 x 64 panel, 17 frames and 4 steps: the videos then prove that every
node runs end to end on real inputs, not that the result looks good.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from real_data import skimage_photo, template_clip  # noqa: E402

from comfy_harness.provision import ensure_comfyui  # noqa: E402
from comfy_harness.server import ComfyServer  # noqa: E402
from comfy_harness.workflow import ui_to_api  # noqa: E402
from dreamactor_core.app.default_models import DEFAULT_MODELS, missing_models  # noqa: E402
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins  # noqa: E402
from dreamactor_core.video_io import read_clip, write_video  # noqa: E402

BANNER = """
##############################################################################
#  DEMO ON TINY RANDOM-WEIGHT MODELS: the videos show that the pipeline runs  #
#  end to end on real inputs. They are noise, not a trained animation.       #
##############################################################################
"""
TINY_PANEL, TINY_FRAMES, TINY_STEPS = 64, 17, 4
INPUT_FRAMES = 33  # frames of the dancer clip written as the driving video
ROLES = {mode: ("transformer", "vae", "text_encoder", "glyph_encoder", "image_encoder", f"{mode}_lora")
         for mode in ("pose", "rgb")}


def workflow_path(mode: str) -> Path:
    return REPO / "workflows" / f"dreamactor_m2_{mode}.json"


def api_prompt(object_info: dict, mode: str, tiny: bool) -> dict:
    """The shipped workflow as an API prompt; for tiny models, the panel, frame count and steps
    shrink (the widgets the workflow's notes point artists to)."""
    prompt = ui_to_api(json.loads(workflow_path(mode).read_text()), object_info)
    if tiny:
        for node in prompt.values():
            title, inputs = node["_meta"]["title"], node["inputs"]
            if title in ("Panel width", "Panel height"):
                inputs["value"] = TINY_PANEL
            elif title == "Driving frames":
                inputs["length"] = TINY_FRAMES
            elif node["class_type"] == "DreamActorM2_Sampler":
                inputs["steps"] = TINY_STEPS
    return prompt


def prepare_inputs(input_dir: Path) -> None:
    """The files the workflows load: reference.png (scikit-image's astronaut) and driving.mp4 (a
    dancer clip from ComfyUI's template media)."""
    from PIL import Image

    input_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage_photo("astronaut")).save(input_dir / "reference.png")
    clip = read_clip(template_clip(), max_frames=INPUT_FRAMES)
    write_video(input_dir / "driving.mp4", clip.frames, clip.fps)


def default_models_dir() -> Path | None:
    if os.environ.get("COMFYUI_MODELS_DIR"):
        return Path(os.environ["COMFYUI_MODELS_DIR"])
    return REPO.parents[1] / "models" if REPO.parent.name == "custom_nodes" else None


def missing_real_files(models_dir: Path | None, modes: list[str]) -> list[str]:
    """``folder/name`` of each file the ``modes``' workflows need that ``models_dir`` lacks (all of
    them without a folder): the demo runs on real weights only when this is empty."""
    roles = {role for mode in modes for role in ROLES[mode]}
    needed = [DEFAULT_MODELS[role] for role in sorted(roles)]
    absent = missing_models(models_dir, tuple(sorted(roles))) if models_dir is not None else needed
    return sorted(f"{model.folder}/{model.name}" for model in absent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "outputs")
    parser.add_argument("--mode", choices=("pose", "rgb"), action="append", help="default: both")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir(),
                        help="a ComfyUI models folder with the real files")
    args = parser.parse_args()
    modes = args.mode or ["pose", "rgb"]
    missing = missing_real_files(args.models_dir, modes)
    real = not missing
    if real:
        print(f"real weights from {args.models_dir}")
    else:
        where = args.models_dir or "no ComfyUI models folder given"
        print(BANNER + f"(real files missing in {where}: {', '.join(missing)})\n")
    with tempfile.TemporaryDirectory(prefix="dreamactor-demo-") as scratch:
        base = Path(scratch)
        import torch

        server = ComfyServer(ensure_comfyui(), base, packs={"ComfyUI-DreamActor-M2": REPO},
                             models_dir=args.models_dir if real else None, cpu=not (real and torch.cuda.is_available()))
        if not real:
            write_tiny_stand_ins(server.models_dir, base / "tiny")
        prepare_inputs(server.input_dir)
        with server:
            object_info = server.object_info()
            for mode in modes:
                print(f"running {workflow_path(mode).relative_to(REPO)} ...", flush=True)
                server.run(api_prompt(object_info, mode, tiny=not real), timeout=3600)
        args.out.mkdir(parents=True, exist_ok=True)
        for path in sorted((server.output_dir / "dreamactor_m2").glob("*")):
            shutil.copy(path, args.out / path.name)
            print(f"wrote {args.out / path.name}")
    if not real:
        print(BANNER)


if __name__ == "__main__":
    main()
