"""Canvas masks: the pixel mask M = [M_r | M_m] and its packings to each backbone's latent grid."""

from __future__ import annotations

import pytest
import torch

from dreamactor_core.canvas.composite import build_canvas
from dreamactor_core.canvas.masks import FOLDED_TEMPORAL, MASK_LAYOUTS, PER_LATENT_FRAME, canvas_mask, pack_latent_mask
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models.backbones import ADAPTERS


def _layout(frames: int, height: int = 32, width: int = 48, transition: bool = False):
    return build_canvas(torch.rand(1, height, width, 3), torch.rand(frames, height, width, 3),
                        transition=transition, fps=4)[1]


@pytest.mark.parametrize("frames, transition", [(1, False), (5, False), (7, True)])
def test_pixel_mask_marks_the_reference_on_frame_0_and_the_motion_always(frames, transition):
    layout = _layout(frames, transition=transition)
    mask = canvas_mask(layout)
    total = layout.total_frames
    assert mask.shape == (total, 32, 96) and mask.dtype == torch.float32
    assert torch.equal(mask[0], torch.ones(32, 96))
    assert torch.equal(mask[1:, :, :48], torch.zeros(total - 1, 32, 48))
    assert torch.equal(mask[:, :, 48:], torch.ones(total, 32, 48))


def test_per_latent_frame_packing_of_the_canvas_mask():
    mask = canvas_mask(_layout(9))  # 9 x 32 x 96 -> 3 latent frames of 2 x 6 at 16x
    packed = pack_latent_mask(mask, 16, 4, PER_LATENT_FRAME)
    assert packed.shape == (1, 3, 2, 6)
    assert torch.equal(packed[0, 0], torch.ones(2, 6))
    assert torch.equal(packed[0, 1:, :, :3], torch.zeros(2, 2, 3))
    assert torch.equal(packed[0, 1:, :, 3:], torch.ones(2, 2, 3))


def test_folded_temporal_packing_of_the_canvas_mask():
    mask = canvas_mask(_layout(9))  # Wan: 8x -> 3 latent frames of 4 x 12, 4 channels
    packed = pack_latent_mask(mask, 8, 4, FOLDED_TEMPORAL)
    assert packed.shape == (4, 3, 4, 12)
    assert torch.equal(packed[:, 0], torch.ones(4, 4, 12))
    assert torch.equal(packed[:, 1:, :, :6], torch.zeros(4, 2, 4, 6))
    assert torch.equal(packed[:, 1:, :, 6:], torch.ones(4, 2, 4, 6))


def test_one_frame_canvas_packs_to_one_latent_frame():
    mask = canvas_mask(_layout(1))
    assert torch.equal(pack_latent_mask(mask, 16, 4, PER_LATENT_FRAME), torch.ones(1, 1, 2, 6))
    assert torch.equal(pack_latent_mask(mask, 16, 4, FOLDED_TEMPORAL), torch.ones(4, 1, 2, 6))


def test_reduction_is_a_max_over_the_cell_and_the_frame_group():
    # One conditioned pixel in frame 3 at (5, 20): latent frame 1 (frames 1..4), cell row 0, column 2 at 8x.
    mask = torch.zeros(9, 16, 32)
    mask[3, 5, 20] = 0.7
    per_frame = pack_latent_mask(mask, 8, 4, PER_LATENT_FRAME)
    expected = torch.zeros(1, 3, 2, 4)
    expected[0, 1, 0, 2] = 0.7
    assert torch.equal(per_frame, expected)
    folded = pack_latent_mask(mask, 8, 4, FOLDED_TEMPORAL)
    expected = torch.zeros(4, 3, 2, 4)
    expected[2, 1, 0, 2] = 0.7  # frame 3 is the third frame (channel 2) of its group
    assert torch.equal(folded, expected)


def test_folded_temporal_equals_diffusers_wan_image_to_video_mask():
    from diffusers import WanImageToVideoPipeline

    from dreamactor_core.testing.tiny_models import build_tiny_vae

    pipe = WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=build_tiny_vae("wan_i2v"), scheduler=None)
    image = torch.zeros(1, 3, 32, 64)
    with torch.no_grad():
        for last_image in (None, image):
            _, condition = pipe.prepare_latents(image, 1, 16, 32, 64, 9, torch.float32, "cpu", None,
                                                last_image=last_image)
            given = torch.zeros(9, 32, 64)  # the frames diffusers conditions on: first (and last)
            given[0] = 1.0
            if last_image is not None:
                given[-1] = 1.0
            assert torch.equal(pack_latent_mask(given, 8, 4, FOLDED_TEMPORAL), condition[0, :4])


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_packing_gives_the_channels_each_backbone_adapter_expects(name):
    adapter = ADAPTERS[name]
    mask = canvas_mask(_layout(5, height=64, width=64))
    packed = pack_latent_mask(mask, adapter.spatial_compression, adapter.temporal_compression, adapter.mask_layout)
    grid = 64 // adapter.spatial_compression
    assert packed.shape == (adapter.mask_channels(), 2, grid, 2 * grid)


def test_dtype_and_device_follow_the_mask():
    packed = pack_latent_mask(torch.ones(5, 16, 16, dtype=torch.float16), 8, 4, PER_LATENT_FRAME)
    assert packed.dtype == torch.float16


def test_every_exported_layout_packs_and_every_adapter_uses_one_with_its_channel_count():
    """A layout exported but not packed, or an adapter whose layout gives other channels than it
    declares, fails here (the sampler would then feed the transformer a wrong channel count)."""
    mask = canvas_mask(_layout(5))
    channels = {layout: pack_latent_mask(mask, 8, 4, layout).shape[0] for layout in MASK_LAYOUTS}
    assert channels == {PER_LATENT_FRAME: 1, FOLDED_TEMPORAL: 4}
    for adapter in ADAPTERS.values():
        assert channels[adapter.mask_layout] == adapter.mask_channels()


@pytest.mark.parametrize("mask, layout, message", [
    (torch.ones(6, 16, 16), PER_LATENT_FRAME, r"4k\+1 frames"),
    (torch.ones(5, 12, 16), FOLDED_TEMPORAL, "divisible by 8"),
    (torch.ones(16, 16), PER_LATENT_FRAME, "expected a non-empty MASK"),
    (torch.ones(0, 16, 16), PER_LATENT_FRAME, "expected a non-empty MASK"),
    (torch.ones(5, 16, 16), "channels_last", "mask layout"),
])
def test_bad_masks_are_refused(mask, layout, message):
    with pytest.raises(DreamActorError, match=message):
        pack_latent_mask(mask, 8, 4, layout)
