"""The three canvas nodes inside real ComfyUI: a real photo with transparency goes LoadImage -> Build
Canvas -> Canvas Masks / Extract Result as an API-format prompt, and every output equals the engine's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from real_data import skimage_photo

from comfy_harness.server import PromptFailed
from dreamactor_core.canvas.composite import build_canvas
from dreamactor_core.canvas.masks import canvas_mask
from dreamactor_core.canvas.result import extract_result

pytestmark = pytest.mark.comfy


def _write_reference(path) -> tuple[torch.Tensor, torch.Tensor]:
    """The astronaut at 75x100 as an RGBA PNG with a transparent left strip; returns what LoadImage
    makes of it (IMAGE [1, H, W, 3] and MASK [1, H, W] with 1 = transparent)."""
    photo = Image.fromarray(skimage_photo("astronaut")).resize((75, 100), Image.BILINEAR).convert("RGBA")
    alpha = np.full((100, 75), 255, dtype=np.uint8)
    alpha[:, :20] = 0
    alpha[:, 20:30] = 128
    photo.putalpha(Image.fromarray(alpha))
    photo.save(path)
    rgba = np.asarray(Image.open(path)).astype(np.float32) / 255.0
    return torch.from_numpy(rgba[None, ..., :3].copy()), 1.0 - torch.from_numpy(rgba[None, ..., 3].copy())


def _driving() -> torch.Tensor:
    """Six frames of the real cat photo, 45x68, shifted a little each frame."""
    cat = torch.from_numpy(skimage_photo("chelsea")).float().div(255.0).permute(2, 0, 1)[None]
    small = F.interpolate(cat, size=(45, 68), mode="bilinear", antialias=True)[0].permute(1, 2, 0)
    return torch.stack([torch.roll(small, shifts=t, dims=1) for t in range(6)])


def _prompt(reference: list, mask: list | None) -> dict:
    build_inputs = {"reference": reference, "driving": ["driving", 0], "width": 0, "height": 0, "fit": "pad",
                    "frame_rule": "pad", "transition": True, "fps": 4.0, "background": "#ffffff"}
    if mask is not None:
        build_inputs["reference_mask"] = mask
    return {
        "load": {"class_type": "LoadImage", "inputs": {"image": "astronaut_rgba.png"}},
        "driving": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "driving"}},
        "build": {"class_type": "DreamActorM2_BuildCanvas", "inputs": build_inputs},
        "masks": {"class_type": "DreamActorM2_CanvasMasks",
                  "inputs": {"canvas_info": ["build", 1]}},
        "result": {"class_type": "DreamActorM2_ExtractResult",
                   "inputs": {"frames": ["build", 0], "canvas_info": ["build", 1], "cut_transition": True,
                              "drop_reference_frame": False, "size": "reference"}},
        "p_canvas": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["build", 0], "name": "canvas"}},
        "p_info": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["build", 1], "name": "canvas_info"}},
        "p_report": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["build", 2], "name": "report"}},
        "p_mask": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["masks", 0], "name": "mask"}},
        "p_result": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["result", 0], "name": "result"}},
        "p_fps": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["result", 1], "name": "fps"}},
    }


def test_canvas_masks_and_result_nodes_match_the_engine(comfy):
    image, transparency = _write_reference(comfy.input_dir / "astronaut_rgba.png")
    driving = _driving()
    comfy.feed("driving", driving)
    comfy.run(_prompt(["load", 0], ["load", 1]))

    canvas, layout = build_canvas(image, driving, transition=True, fps=4.0, background=(1.0, 1.0, 1.0),
                                  reference_transparency=transparency)
    assert canvas.shape == (13, 96, 160, 3)  # 100x75 rounds to 96x80; 4 + 6 frames padded to 13
    got = comfy.probe("canvas")
    assert torch.equal(got, canvas)
    # "pad" keeps the whole 100x75 picture: shrunk to 96x72 beside 4 white columns; the transparent strip
    # is white (resampled white: 1 to float32 rounding)
    assert torch.allclose(got[0, :, :20], torch.ones(96, 20, 3), atol=1e-6)
    info = comfy.probe("canvas_info")
    assert info["__dataclass__"] == "CanvasLayout"
    assert {k: info["fields"][k] for k in ("panel_height", "panel_width", "transition_frames", "padded_frames",
                                           "total_frames")} == {"panel_height": 96, "panel_width": 80,
                                                                "transition_frames": 4, "padded_frames": 3,
                                                                "total_frames": 13}
    assert comfy.probe("report") == layout.report()

    mask = canvas_mask(layout)
    assert torch.equal(comfy.probe("mask"), mask)
    # One output, no backbone choice: the sampler packs the pixel mask for the model it runs.
    masks_info = comfy.object_info("DreamActorM2_CanvasMasks")["DreamActorM2_CanvasMasks"]
    assert masks_info["output"] == ["MASK"] and set(masks_info["input"]["required"]) == {"canvas_info"}

    result = comfy.probe("result")
    assert result.shape == (6, 100, 75, 3)  # the driving-aligned frames at the reference's own 100x75
    assert torch.equal(result, extract_result(canvas, layout))
    assert comfy.probe("fps") == 4.0


def test_a_reference_batch_is_a_clear_node_error(comfy):
    comfy.feed("driving", torch.rand(5, 16, 16, 3))
    comfy.feed("two_references", torch.rand(2, 16, 16, 3))
    prompt = _prompt(["refs", 0], None)
    prompt["refs"] = {"class_type": "DreamActorTest_Feed", "inputs": {"name": "two_references"}}
    del prompt["load"]
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt)
    assert failure.value.node_type == "DreamActorM2_BuildCanvas"
    assert "reference: expected one image, got a batch of 2" in failure.value.exception_message
