"""Video reading and writing on real clips made by nobody here, and a variable-frame-rate file
written here with PyAV (irregular timestamps)."""

import fractions
import warnings

import numpy as np
import pytest
import torch
from real_data import CARTOON_CLIP, opencv_sample, template_clip

from dreamactor_core.errors import DreamActorError
from dreamactor_core.video_io import rate_from_timestamps, read_clip, read_image, to_unit_frames, write_video


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


@pytest.mark.parametrize("fps", [30000 / 1001, 12.5, 0.5])
def test_fractional_frame_rates_are_written_as_they_are(tmp_path, fps):
    """NTSC, a 25 fps clip taken every other frame, and the slowest rate a transition allows."""
    path = write_video(tmp_path / "out.mp4", torch.rand(4, 16, 16, 3), fps=fps)
    assert read_clip(path).fps == pytest.approx(fps, rel=1e-4)  # mp4 time bases are exact for these


def test_a_rate_that_is_not_positive_is_refused(tmp_path):
    with pytest.raises(DreamActorError, match="frame rate must be positive"):
        write_video(tmp_path / "out.mp4", torch.rand(2, 16, 16, 3), fps=0.0)


def test_image_keeps_alpha_only_when_present():
    assert read_image(opencv_sample("messi5.jpg")).shape[-1] == 3


def test_an_image_converts_without_numpy_writability_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns "The given NumPy array is not writable"
        frames = to_unit_frames(read_image(opencv_sample("messi5.jpg")))
        read_only = np.full((2, 3, 3), 51, np.uint8)
        read_only.flags.writeable = False
        assert float(to_unit_frames(read_only).max()) == pytest.approx(0.2)
    assert frames.dtype == torch.float32 and 0 <= float(frames.min()) < float(frames.max()) <= 1


def _write_vfr(path, times_ms, rate=24):
    """A Matroska file whose header says ``rate`` fps but whose frames carry ``times_ms``."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for index, time in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = time, fractions.Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_variable_frame_rate_video_uses_its_timestamps_not_the_header_rate(tmp_path):
    times = [0, 40, 200, 240, 400, 440, 600, 640, 800, 840, 1000, 1040, 1200]  # irregular, 12 gaps in 1.2 s
    path = _write_vfr(tmp_path / "vfr.mkv", times)
    import av

    with av.open(str(path)) as container:  # the header rate the pack used to take
        assert float(container.streams.video[0].average_rate) == 24
    clip = read_clip(path)
    assert len(clip.frames) == 13 and clip.fps == pytest.approx(12 / 1.2)
    assert read_clip(path, stride=2).fps == pytest.approx(12 / 1.2 / 2)
    assert read_clip(path, max_frames=5).fps == pytest.approx(4 / 0.4)  # the rate of the frames read


def test_constant_rate_timestamps_give_the_nominal_rate():
    assert rate_from_timestamps([0.0, 0.5, 1.0], 30.0) == pytest.approx(2.0)
    assert rate_from_timestamps([0.0], 30.0) == 30.0  # one frame: nothing to measure
    assert rate_from_timestamps([0.0, None, 1.0], 30.0) == 30.0  # a frame without time: header rate
    assert rate_from_timestamps([1.0, 1.0], 30.0) == 30.0


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
