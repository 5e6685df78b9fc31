"""Result extraction: the left half of a generated canvas, the driving-aligned frames, the fit undone."""

from __future__ import annotations

import pytest
import torch
from real_data import skimage_photo

from dreamactor_core.canvas.composite import build_canvas
from dreamactor_core.canvas.result import extract_result, result_frames
from dreamactor_core.errors import DreamActorError


def _generated(layout) -> torch.Tensor:
    """A stand-in for a decoded canvas: every pixel of frame t holds t / 100 (so frames can be told apart)."""
    frames = torch.arange(layout.total_frames, dtype=torch.float32) / 100
    return frames.view(-1, 1, 1, 1).expand(-1, layout.panel_height, layout.canvas_width, 3).clone()


@pytest.mark.parametrize("reference_hw, driving_hw, count, kwargs", [
    ((30, 50), (30, 50), 6, {}),
    ((25, 40), (64, 16), 1, {"transition": True, "fps": 6}),
    ((40, 60), (17, 93), 7, {"width": 96, "fit": "crop"}),
    ((40, 60), (17, 93), 10, {"height": 48, "fit": "pad", "frame_rule": "trim"}),
    ((333, 500), (200, 120), 3, {"width": 256, "height": 256, "transition": True, "fps": 5}),
])
def test_round_trip_gives_back_the_driving_aligned_frames_at_the_source_sizes(reference_hw, driving_hw, count, kwargs):
    canvas, layout = build_canvas(torch.rand(1, *reference_hw, 3), torch.rand(count, *driving_hw, 3), **kwargs)
    aligned = count - layout.trimmed_frames
    reference = extract_result(canvas, layout)
    assert reference.shape == (aligned, layout.reference.source_box.height, layout.reference.source_box.width, 3)
    driving = extract_result(canvas, layout, size="driving")
    assert driving.shape == (aligned, layout.driving.source_box.height, layout.driving.source_box.width, 3)
    if layout.driving.whole_source:
        assert driving.shape[1:3] == driving_hw
    panel = extract_result(canvas, layout, size="panel")
    assert panel.shape == (aligned, layout.panel_height, layout.panel_width, 3)


def test_unscaled_reference_comes_back_exactly():
    # 25x40 pads to 32x48 without scaling: frame 0 of the result is the reference, bit for bit.
    reference = torch.rand(1, 25, 40, 3)
    canvas, layout = build_canvas(reference, torch.rand(3, 32, 48, 3))
    result = extract_result(canvas, layout)
    assert result.shape == (3, 25, 40, 3)
    assert torch.equal(result[0], reference[0])
    assert torch.equal(result[1:], torch.zeros(2, 25, 40, 3))


def test_real_photo_survives_the_round_trip():
    astronaut = torch.from_numpy(skimage_photo("astronaut")).float() / 255.0
    canvas, layout = build_canvas(astronaut, astronaut.expand(2, -1, -1, -1), width=256, height=160)
    back = extract_result(canvas, layout, size="driving")
    assert back.shape == (2, 512, 512, 3)  # pad mode: the whole photo, at its own size
    assert float((back[0] - astronaut).abs().mean()) < 0.04
    assert 0.0 <= float(back.min()) and float(back.max()) <= 1.0


@pytest.mark.parametrize("transition, cut, drop, frames", [
    (False, True, False, [0, 1, 2, 3, 4, 5]),
    (False, True, True, [1, 2, 3, 4, 5]),
    (True, True, False, [4, 5, 6, 7, 8, 9]),
    (True, True, True, [4, 5, 6, 7, 8, 9]),
    (True, False, False, list(range(10))),
    (True, False, True, list(range(1, 10))),
])
def test_kept_frames_drop_the_transition_and_the_padding(transition, cut, drop, frames):
    # 6 driving frames (after 4 transition frames at 4 fps, or none) get 3 repeats: 9 (13) frames.
    _, layout = build_canvas(torch.rand(1, 16, 16, 3), torch.rand(6, 16, 16, 3), transition=transition, fps=4)
    assert layout.padded_frames == 3
    assert list(result_frames(layout, cut, drop)) == frames
    result = extract_result(_generated(layout), layout, cut_transition=cut, drop_reference_frame=drop)
    assert torch.equal(result[:, 0, 0, 0], torch.tensor(frames, dtype=torch.float32) / 100)


def test_extraction_takes_the_left_half_only():
    canvas, layout = build_canvas(torch.rand(1, 16, 16, 3), torch.ones(5, 16, 16, 3))
    canvas[1:, :, :16] = 0.5  # "generated" left half
    result = extract_result(canvas, layout, size="panel")
    assert torch.equal(result[1:], torch.full((4, 16, 16, 3), 0.5))


@pytest.mark.parametrize("frames, kwargs, message", [
    (torch.rand(4, 16, 32, 3), {}, "frames: expected the generated canvas"),
    (torch.rand(5, 16, 16, 3), {}, "frames: expected the generated canvas"),
    (torch.rand(5, 16, 32, 3), {"size": "original"}, "size"),
])
def test_bad_inputs_name_the_input(frames, kwargs, message):
    _, layout = build_canvas(torch.rand(1, 16, 16, 3), torch.rand(5, 16, 16, 3))
    with pytest.raises(DreamActorError, match=message):
        extract_result(frames, layout, **kwargs)


def test_dropping_the_only_frame_is_refused():
    canvas, layout = build_canvas(torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3))
    with pytest.raises(DreamActorError, match="drop_reference_frame"):
        extract_result(canvas, layout, drop_reference_frame=True)
