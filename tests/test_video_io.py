"""Video reading and writing on real clips made by nobody here."""

import numpy as np
import pytest
from real_data import CARTOON_CLIP, opencv_sample, template_clip

from dreamactor_core.errors import DreamActorError
from dreamactor_core.video_io import read_clip, read_image, to_unit_frames, write_video


def test_animated_webp_keeps_every_frame_and_its_rate():
    clip = read_clip(template_clip())
    assert clip.frames.shape == (45, 350, 350, 3)
    assert clip.frames.dtype == np.uint8
    assert 5 <= clip.fps <= 60
    assert clip.frames.std() > 10  # a real picture, not a blank


def test_stride_and_limit():
    full = read_clip(template_clip(CARTOON_CLIP), max_frames=20)
    strided = read_clip(template_clip(CARTOON_CLIP), max_frames=10, stride=2)
    assert len(full.frames) == 20 and len(strided.frames) == 10
    np.testing.assert_array_equal(strided.frames[3], full.frames[6])
    assert strided.fps == pytest.approx(full.fps / 2)


def test_avi_through_pyav():
    clip = read_clip(opencv_sample("vtest.avi"), max_frames=5)
    assert clip.frames.shape == (5, 576, 768, 3)
    assert clip.fps == pytest.approx(10, abs=0.5)


def test_write_then_read_round_trips_size_count_and_content(tmp_path):
    frames = read_clip(template_clip(), max_frames=9).frames[:, :101, :99]  # odd sizes get padded
    path = write_video(tmp_path / "out.mp4", to_unit_frames(frames), fps=12)
    back = read_clip(path)
    assert back.frames.shape == (9, 102, 100, 3)
    assert back.fps == pytest.approx(12)
    assert np.abs(back.frames[:, :101, :99].astype(int) - frames.astype(int)).mean() < 6


def test_image_keeps_alpha_only_when_present():
    assert read_image(opencv_sample("messi5.jpg")).shape[-1] == 3


def test_bad_paths_and_arguments_are_named(tmp_path):
    with pytest.raises(DreamActorError, match="nothing.mp4"):
        read_clip(tmp_path / "nothing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(DreamActorError, match="broken.mp4"):
        read_clip(broken)
    with pytest.raises(DreamActorError, match="stride"):
        read_clip(template_clip(), stride=0)
    with pytest.raises(DreamActorError, match="expected frames"):
        write_video(tmp_path / "x.mp4", np.zeros((0, 4, 4, 3), np.uint8), 8)
