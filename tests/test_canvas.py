"""The canvas builder: exact pixel layout, sizing policy, colour handling, frame rules, transition, errors."""

from __future__ import annotations

import pytest
import torch
from real_data import skimage_photo

from dreamactor_core.canvas.composite import build_canvas, frame_corrections, panel_size, parse_color
from dreamactor_core.canvas.placement import Box
from dreamactor_core.errors import DreamActorError


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _photo(name: str) -> torch.Tensor:
    pixels = torch.from_numpy(skimage_photo(name)).float() / 255.0
    return pixels.unsqueeze(-1) if pixels.ndim == 2 else pixels


# ----- layout -----

@pytest.mark.parametrize("height, width", [(16, 16), (32, 48), (48, 16), (64, 112), (16, 80)])
@pytest.mark.parametrize("frames", [1, 5, 9])
def test_layout_is_reference_then_black_beside_the_driving_frames(height, width, frames):
    reference, driving = _random(1, height, width, 3), _random(frames, height, width, 3, seed=1)
    canvas, layout = build_canvas(reference, driving)
    assert canvas.shape == (frames, height, 2 * width, 3) and canvas.dtype == torch.float32
    assert (layout.panel_height, layout.panel_width, layout.total_frames) == (height, width, frames)
    assert torch.equal(canvas[0, :, :width], reference[0])
    assert torch.equal(canvas[1:, :, :width], torch.zeros(frames - 1, height, width, 3))
    assert torch.equal(canvas[:, :, width:], driving)


def test_pad_never_cuts_a_reference_that_the_rounding_made_too_big():
    # 30x50 rounds to 32x48: "pad" keeps the whole picture, shrunk by 48/50 to 29x48, centred.
    reference = torch.zeros(1, 30, 50, 3)
    reference[:, 0], reference[:, -1], reference[:, :, 0], reference[:, :, -1] = 1.0, 1.0, 1.0, 1.0  # a white frame
    canvas, layout = build_canvas(reference, _random(5, 32, 48, 3), fit="pad")
    assert layout.reference.whole_source and layout.reference.panel_box == Box(1, 0, 29, 48)
    panel = canvas[0, :, :48]
    assert float(panel[1, :, 0].min()) > 0.5 and float(panel[29, :, 0].min()) > 0.5  # top and bottom edges kept
    assert float(panel[1:30, 0, 0].min()) > 0.5 and float(panel[1:30, 47, 0].min()) > 0.5  # left and right edges kept
    assert not panel[0].any() and not panel[30:].any()  # black background rows above and below
    # A reference the rounding only enlarges stays exact in either mode.
    small = _random(1, 30, 44, 3)
    canvas, layout = build_canvas(small, _random(1, 32, 48, 3), fit="pad")
    assert not layout.reference.resamples and torch.equal(canvas[0, 1:31, 2:46], small[0])


def test_crop_cuts_a_reference_that_the_rounding_made_too_big_never_scales_it():
    # 30x50 rounds to 32x48: one row of background above and below, one column cut on each side.
    reference = _random(1, 30, 50, 3)
    canvas, layout = build_canvas(reference, _random(5, 32, 48, 3), fit="crop", background=(0.25, 0.5, 0.75))
    assert (layout.requested_height, layout.requested_width) == (30, 50)
    assert (layout.panel_height, layout.panel_width) == (32, 48)
    assert not layout.reference.resamples
    assert layout.reference.panel_box == Box(1, 0, 30, 48)
    assert layout.reference.source_box == Box(0, 1, 30, 48)
    assert torch.equal(canvas[0, 1:31, :48], reference[0, :, 1:49])
    background = torch.tensor([0.25, 0.5, 0.75])
    assert torch.equal(canvas[0, 0, :48], background.expand(48, 3))
    assert torch.equal(canvas[0, 31, :48], background.expand(48, 3))
    assert "panel rounded from 30x50 to multiples of 16" in layout.report()


def test_pad_fits_a_wide_driving_video_with_black_bars():
    # 16x64 into a 32x48 panel: scaled by 0.75 to 12x48, centred at rows 10..21.
    driving = torch.tensor([0.2, 0.6, 0.9]).expand(3, 16, 64, 3)
    canvas, layout = build_canvas(_random(1, 32, 48, 3), driving, fit="pad")
    assert layout.driving.panel_box == Box(10, 0, 12, 48) and layout.driving.whole_source
    right = canvas[:, :, 48:]
    assert torch.equal(right[:, :10], torch.zeros(5, 10, 48, 3))
    assert torch.equal(right[:, 22:], torch.zeros(5, 10, 48, 3))
    assert torch.allclose(right[:, 10:22], torch.tensor([0.2, 0.6, 0.9]).expand(5, 12, 48, 3), atol=1e-6)


def test_crop_covers_the_panel_and_records_what_was_cut():
    # 16x64 into 32x48: scaled by 2 to 32x128, columns 40..87 kept = source columns 20..43.
    canvas, layout = build_canvas(_random(1, 32, 48, 3), _random(5, 16, 64, 3), fit="crop")
    assert (layout.driving.scaled_height, layout.driving.scaled_width) == (32, 128)
    assert layout.driving.panel_box == Box(0, 0, 32, 48)
    assert layout.driving.scaled_box == Box(0, 40, 32, 48)
    assert layout.driving.source_box == Box(0, 20, 16, 24)
    assert "columns 20..43" in layout.report()


@pytest.mark.parametrize("fit", ["pad", "crop"])
@pytest.mark.parametrize("driving_hw", [(1, 200), (200, 1), (3, 997), (31, 33)])
def test_extreme_aspect_ratios_fill_exactly_their_panel_box(fit, driving_hw):
    driving = torch.full((5, *driving_hw, 3), 0.5)
    canvas, layout = build_canvas(_random(1, 32, 48, 3), driving, fit=fit)
    box = layout.driving.panel_box
    right = canvas[:, :, 48:]
    assert torch.allclose(right[:, box.rows(), box.cols()], torch.full((5, box.height, box.width, 3), 0.5), atol=1e-6)
    right[:, box.rows(), box.cols()] = 0.0
    assert not right.any()  # everything outside the box is black padding
    assert (box.height == 32 or box.width == 48) and (fit == "pad" or (box.height, box.width) == (32, 48))


@pytest.mark.parametrize("width, height, panel", [(96, 0, (64, 96)), (0, 40, (48, 64)), (100, 60, (64, 96))])
def test_explicit_sizes_keep_the_reference_aspect_and_round(width, height, panel):
    # A 40x60 (2:3) reference: width alone or height alone keeps 2:3; both override it.
    canvas, layout = build_canvas(_random(1, 40, 60, 3), _random(1, 40, 60, 3), width=width, height=height)
    assert (layout.panel_height, layout.panel_width) == panel
    assert canvas.shape == (1, panel[0], 2 * panel[1], 3)


def test_rounding_rule_is_nearest_multiple_and_never_zero():
    assert panel_size((23, 24), 0, 0, 16) == ((23, 24), (16, 32))
    assert panel_size((7, 1000), 0, 0, 32) == ((7, 1000), (32, 992))
    assert panel_size((100, 200), 0, 0, 1) == ((100, 200), (100, 200))


def test_a_real_photo_reference_and_a_real_photo_driving_frame():
    astronaut, cat = _photo("astronaut"), _photo("chelsea")  # 512x512 and 300x451
    canvas, layout = build_canvas(astronaut, cat.expand(3, *cat.shape))
    assert canvas.shape == (5, 512, 1024, 3)
    assert torch.equal(canvas[0, :, :512], astronaut)  # 512 is a multiple of 16: untouched
    # The cat is scaled by 512/451 to 341x512 and centred: rows 85..425.
    assert layout.driving.panel_box == Box(85, 0, 341, 512)
    content = canvas[:, 85:426, 512:]
    assert torch.equal(canvas[:, :85, 512:], torch.zeros(5, 85, 512, 3))
    assert abs(float(content.mean()) - float(cat.mean())) < 2e-3
    assert torch.equal(canvas[3:], canvas[2:3].expand(2, -1, -1, -1))  # two repeats of the last frame


# ----- colour -----

def test_alpha_reference_is_composited_on_the_background():
    rgba = torch.zeros(1, 16, 16, 4)
    rgba[..., :3] = torch.tensor([0.0, 1.0, 0.0])
    rgba[:, :, 8:, 3] = 1.0  # right half opaque green
    rgba[:, :4, :8, 3] = 0.5  # a half-transparent corner
    canvas, _ = build_canvas(rgba, _random(1, 16, 16, 3), background=parse_color("#FF0000"))
    panel = canvas[0, :, :16]
    assert torch.equal(panel[:, 8:], torch.tensor([0.0, 1.0, 0.0]).expand(16, 8, 3))
    assert torch.equal(panel[4:, :8], torch.tensor([1.0, 0.0, 0.0]).expand(12, 8, 3))
    assert torch.allclose(panel[:4, :8], torch.tensor([0.5, 0.5, 0.0]).expand(4, 8, 3))


def test_comfy_transparency_mask_and_gray_alpha_reference():
    gray_alpha = torch.stack([torch.full((16, 16), 0.4), torch.ones(16, 16)], dim=-1).unsqueeze(0)
    transparency = torch.zeros(1, 16, 16)
    transparency[:, :, :4] = 1.0  # ComfyUI's LoadImage MASK: 1 = transparent
    canvas, _ = build_canvas(gray_alpha, _random(1, 16, 16, 3), background=(1.0, 1.0, 1.0),
                             reference_transparency=transparency)
    assert torch.equal(canvas[0, :, :4], torch.ones(16, 4, 3))
    assert torch.allclose(canvas[0, :, 4:16], torch.full((16, 12, 3), 0.4))


def test_grayscale_is_expanded_and_a_gray_photo_stays_exact():
    camera = _photo("camera")  # 512x512 grayscale
    canvas, _ = build_canvas(camera, camera.expand(2, -1, -1, -1))
    assert torch.equal(canvas[0, :, :512], camera.expand(-1, -1, 3))
    assert torch.equal(canvas[:2, :, 512:], camera.expand(2, -1, -1, 3))


def test_rgba_driving_frames_lose_their_alpha_over_black():
    driving = torch.ones(1, 16, 16, 4)
    driving[..., 3] = 0.25
    canvas, _ = build_canvas(_random(1, 16, 16, 3), driving, background=(1.0, 1.0, 1.0))
    assert torch.allclose(canvas[0, :, 16:], torch.full((16, 16, 3), 0.25))


@pytest.mark.parametrize("text, rgb", [("#000000", (0.0, 0.0, 0.0)), ("ffffff", (1.0, 1.0, 1.0)),
                                       ("#3366cc", (0.2, 0.4, 0.8))])
def test_parse_color(text, rgb):
    assert parse_color(text) == pytest.approx(rgb)


# ----- frames -----

@pytest.mark.parametrize("count, padded, trimmed", [(1, (0, 1), (0, 1)), (2, (3, 5), (1, 1)), (4, (1, 5), (3, 1)),
                                                    (6, (3, 9), (1, 5)), (9, (0, 9), (0, 9)), (12, (1, 13), (3, 9))])
def test_frame_counts_become_4k_plus_1(count, padded, trimmed):
    driving = _random(count, 16, 16, 3)
    canvas, layout = build_canvas(_random(1, 16, 16, 3), driving, frame_rule="pad")
    assert (layout.padded_frames, layout.total_frames) == padded and canvas.shape[0] == padded[1]
    assert torch.equal(canvas[:count, :, 16:], driving)
    assert torch.equal(canvas[count:, :, 16:], driving[-1].expand(padded[0], -1, -1, -1))
    if padded[0]:
        assert "repeat" in layout.report()

    canvas, layout = build_canvas(_random(1, 16, 16, 3), driving, frame_rule="trim")
    assert (layout.trimmed_frames, layout.total_frames) == trimmed and canvas.shape[0] == trimmed[1]
    assert torch.equal(canvas[:, :, 16:], driving[:trimmed[1]])
    if trimmed[0]:
        assert f"trimmed the last {trimmed[0]} of {count} driving frames" in layout.report()


@pytest.mark.parametrize("transition", [False, True])
def test_one_second_transition_of_black_driving_frames(transition):
    reference, driving = _random(1, 16, 32, 3), _random(3, 16, 32, 3, seed=1)
    canvas, layout = build_canvas(reference, driving, transition=transition, fps=8.2)
    lead = 8 if transition else 0
    assert layout.transition_frames == lead and layout.fps == pytest.approx(8.2)
    total = lead + 3 + layout.padded_frames
    assert (total - 1) % 4 == 0 and canvas.shape[0] == layout.total_frames == total
    assert torch.equal(canvas[0, :, :32], reference[0])
    assert torch.equal(canvas[1:, :, :32], torch.zeros(total - 1, 16, 32, 3))
    assert torch.equal(canvas[:lead, :, 32:], torch.zeros(lead, 16, 32, 3))
    assert torch.equal(canvas[lead:lead + 3, :, 32:], driving)
    assert ("black transition frames (1 s at 8.2 fps)" in layout.report()) == transition


def test_trim_that_would_leave_no_driving_frame_is_refused():
    # 9 transition frames + 3 driving = 12: trimming to 9 would drop every driving frame.
    with pytest.raises(DreamActorError, match="frame_rule"):
        frame_corrections(9, 3, 4, "trim")
    assert frame_corrections(9, 3, 4, "pad") == (0, 1)


def test_progress_is_reported_per_chunk_of_driving_frames():
    calls = []
    build_canvas(_random(1, 16, 16, 3), _random(40, 16, 16, 3),
                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


# ----- bad inputs -----

@pytest.mark.parametrize("reference, driving, kwargs, names", [
    (torch.rand(1, 16, 16, 3), torch.rand(0, 16, 16, 3), {}, "driving: the batch is empty"),
    (torch.rand(0, 16, 16, 3), torch.rand(1, 16, 16, 3), {}, "reference: the batch is empty"),
    (torch.rand(2, 16, 16, 3), torch.rand(1, 16, 16, 3), {}, "reference: expected one image, got a batch of 2"),
    (torch.rand(1, 16, 16, 5), torch.rand(1, 16, 16, 3), {}, "reference: 5 channels"),
    (torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 0), {}, "driving: 0 channels"),
    (torch.rand(1, 0, 16, 3), torch.rand(1, 16, 16, 3), {}, "reference: zero size 0x16"),
    (torch.rand(1, 16, 16, 3), torch.rand(2, 16, 0, 3), {}, "driving: zero size 16x0"),
    (torch.rand(1, 16, 16, 3), torch.rand(16, 16, 3), {}, "driving: expected an IMAGE batch"),
    (torch.rand(1, 16, 16, 3), torch.zeros(1, 16, 16, 3, dtype=torch.uint8), {}, "driving: expected float pixels"),
    (torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), {"reference_transparency": torch.ones(1, 8, 16)},
     "reference_mask: shape"),
    (torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), {"width": -16}, "width/height"),
    (torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), {"multiple": 0}, "multiple"),
    (torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), {"fit": "stretch"}, "fit"),
    (torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), {"frame_rule": "loop"}, "frame_rule"),
    (torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), {"transition": True, "fps": 0.0}, "fps"),
])
def test_bad_inputs_name_the_input(reference, driving, kwargs, names):
    with pytest.raises(DreamActorError) as error:
        build_canvas(reference, driving, **kwargs)
    assert names in str(error.value)


def test_bad_background_names_the_input():
    with pytest.raises(DreamActorError, match="background"):
        parse_color("red")
