"""The streamed long-video path: window plan, the driving stream, exact stitching against an
analytic answer (an oracle model and a block-averaging stand-in VAE), the whole-clip equivalence of
a one-window run on tiny real models, and a 10,000-frame clip at default settings."""

from __future__ import annotations

import logging
import time

import pytest
import torch

from dreamactor_core.errors import DreamActorError
from dreamactor_core.long_video import StreamSettings, animate_stream, plan_windows
from dreamactor_core.long_video import stream as stream_module
from dreamactor_core.long_video.driving import DrivingFrames
from dreamactor_core.long_video.video_stream import open_video
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.loading import DreamActorModel
from dreamactor_core.pipeline import (
    AnimationModels,
    AnimationSettings,
    animate,
    available_memory,
    check_whole_clip_memory,
    load_models,
)
from dreamactor_core.testing.stand_ins import write_tiny_model_files
from dreamactor_core.testing.tiny_models import build_tiny_transformer

SPATIAL, TEMPORAL, CHANNELS = 16, 4, 32  # HunyuanVideo 1.5's VAE factors and latent channels
LIFT = 0.25


# --- the plan --------------------------------------------------------------------------------------
@pytest.mark.parametrize("latent_frames, window, context", [(40, 8, 2), (9, 5, 0), (31, 10, 7), (12, 12, 3)])
def test_windows_generate_every_latent_frame_once_and_continue_the_frames_just_made(latent_frames, window, context):
    windows = plan_windows(latent_frames, window, context)
    made = [j for w in windows for j in w.new]
    assert made == list(range(1, latent_frames))  # each once, in order
    for before, after in zip(windows, windows[1:]):
        assert after.context == tuple(range(after.new[0] - context, after.new[0]))
        assert after.context[-1] == before.new[-1] if context else True
    assert all(len(w.latent_frames) <= window for w in windows)
    assert all(w.latent_frames[0] == 0 for w in windows)


def test_window_settings_that_leave_no_new_frame_are_refused():
    with pytest.raises(DreamActorError, match="context_frames"):
        plan_windows(40, 5, 3)


# --- the driving stream ----------------------------------------------------------------------------
def test_driving_frames_serve_transition_video_and_repeats_holding_one_window():
    video = torch.arange(30.0).view(30, 1, 1, 1).expand(30, 2, 2, 3)
    chunks = (video[i:i + 4] for i in range(0, 30, 4))
    driving = DrivingFrames(chunks, 30, transition=3)
    assert torch.equal(driving.first, torch.zeros(1, 2, 2, 3))
    got = [driving.get(0, 9), driving.get(5, 17), driving.get(13, 37)]
    values = torch.cat([got[0], got[1][4:], got[2][4:]])[:, 0, 0, 0]
    expected = [0.0] * 3 + list(range(30)) + [29.0] * 4  # black second, the video, repeats of its last frame
    assert values.tolist() == expected
    assert len(driving._held) == 30 - 10  # from the last window's first frame on, never what came before
    with pytest.raises(DreamActorError, match="released"):
        driving.get(4, 8)


def test_videos_that_cannot_stream_are_refused_naming_the_file_and_why(tmp_path):
    import av

    with av.open(str(tmp_path / "header_only.mp4"), mode="w") as container:  # muxers drop a stream without samples
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    (tmp_path / "text.mp4").write_text("this is text, not a video")
    cases = {"header_only.mp4": "holds no video stream", "text.mp4": "could not be read",
             "missing.mp4": "does not exist"}
    for name, reason in cases.items():
        with pytest.raises(DreamActorError, match=reason) as error:
            open_video(tmp_path / name)
        assert name in str(error.value)
    with pytest.raises(DreamActorError, match="stride"):
        open_video(tmp_path / "text.mp4", stride=0)


# --- exact stitching: an oracle model on a block-averaging VAE -----------------------------------
def _pool_encode(vae, frames, **_):
    """Latent frame j = mean of its pixel frames (frame 0 alone, then groups of 4), 16x16 blocks."""
    groups = torch.cat([frames[:1], frames[1:].reshape(-1, TEMPORAL, *frames.shape[1:]).mean(dim=1)])
    pooled = torch.nn.functional.avg_pool2d(groups.permute(0, 3, 1, 2), SPATIAL)  # [L, 3, h, w]
    latent = torch.zeros(1, CHANNELS, *pooled.shape[:1], *pooled.shape[2:])
    latent[0, :3] = pooled.permute(1, 0, 2, 3)
    return latent


def _pool_decode(vae, latent, **_):
    """Each latent frame's block means back as pixels, repeated over its frames."""
    pixels = latent[0, :3].permute(1, 0, 2, 3).repeat_interleave(SPATIAL, 2).repeat_interleave(SPATIAL, 3)
    counts = torch.tensor([1] + [TEMPORAL] * (len(pixels) - 1))
    return pixels.repeat_interleave(counts, 0).permute(0, 2, 3, 1).contiguous()


class _Texts:
    def encode_pair(self, prompt, negative):
        return {}, {}


@pytest.fixture(scope="module")
def transformer():
    return build_tiny_transformer()


def _oracle_models(transformer, seen: list) -> AnimationModels:
    """A model whose velocity lands exactly on the canvas latent with its driving half, lifted by
    ``LIFT`` (so the halves differ), copied onto the reference half, wherever that half is not given (mask 1: the reference frame, the context);
    it records what each window was given."""
    class Oracle(type(get_adapter("hunyuan_video_15"))):
        def predict_velocity(self, transformer, model_input, timestep, conditioning):
            x, condition, mask = model_input[:, :CHANNELS], model_input[:, CHANNELS:2 * CHANNELS], model_input[:, -1:]
            half = condition.shape[-1] // 2
            target = condition.clone()
            free = mask[..., :half] == 0
            target[..., :half] = torch.where(free, condition[..., half:] + LIFT, condition[..., :half])
            if float(timestep[0]) == 1000.0:
                seen.append((condition[..., :half].clone(), mask[..., :half].clone()))
            return (x - target) / (float(timestep[0]) / 1000.0)

    return AnimationModels(DreamActorModel(transformer, Oracle(), "oracle"), vae=None, text_encoder=_Texts())


def _expected(video: torch.Tensor) -> torch.Tensor:
    """The oracle's exact answer for canvas frames 1..: each driving frame's latent group (in the whole
    clip's grid, the last frame repeated to 4k+1) block-averaged."""
    padded = (TEMPORAL - (len(video) - 1) % TEMPORAL) % TEMPORAL
    frames = torch.cat([video, video[-1:].expand(padded, *video.shape[1:])])
    return _pool_decode(None, _pool_encode(None, frames))[1:]


@pytest.mark.parametrize("window, context", [(4, 1), (5, 2), (0, 0)])
def test_streamed_windows_give_the_oracles_exact_answer_and_carry_their_context(transformer, monkeypatch,
                                                                               window, context):
    monkeypatch.setattr(stream_module, "encode_video", _pool_encode)
    monkeypatch.setattr(stream_module, "decode_latent", _pool_decode)
    count = 36  # no transition: canvas 37 frames = 10 latent frames
    video = torch.rand(count, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    reference = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(4))
    seen, written = [], []
    settings = AnimationSettings(width=64, height=64, transition=False, steps=3, cfg=1.0)
    report = animate_stream(_oracle_models(transformer, seen), reference, (video[i:i + 5] for i in range(0, count, 5)),
                            count, 24.0, mode="rgb", prompt="", write=lambda chunk: written.append(chunk),
                            settings=settings, stream=StreamSettings(window, context, 5))
    result = torch.cat([chunk.result for chunk in written])
    assert report.frames == count == len(result)  # frame 0 (the reference, at driving frame 0), then the rest
    torch.testing.assert_close(result[0], _pool_decode(None, _pool_encode(None, reference))[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(result[1:], _expected(video)[:count - 1] + LIFT, atol=1e-5, rtol=0)
    assert len(seen) == len(report.windows) == (1 if window == 0 else len(plan_windows(10, window, context)))
    for (condition, mask), planned in zip(seen, report.windows):
        given = len(planned.context)
        assert mask[0, 0, :1 + given].eq(1).all() and mask[0, 0, 1 + given:].eq(0).all()
        for position, j in enumerate(planned.context, 1):  # the context is what was generated for frame j
            group = _expected(video)[TEMPORAL * (j - 1):TEMPORAL * j].mean(0)
            expected_cells = torch.nn.functional.avg_pool2d(group.permute(2, 0, 1), SPATIAL)
            torch.testing.assert_close(condition[0, :3, position], expected_cells + LIFT, atol=1e-5, rtol=0)
    canvas = torch.cat([chunk.canvas for chunk in written])
    assert len(canvas) == count + 1  # every canvas frame once (36 driving frames + 1 repeat = 4k+1)


# --- a one-window run is the whole-clip pipeline ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return load_models(write_tiny_model_files(folder, image_encoder=False))


def test_a_clip_that_fits_one_window_streams_to_the_whole_clip_result(tiny):
    video = torch.rand(11, 48, 64, 3, generator=torch.Generator().manual_seed(1))
    reference = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    settings = AnimationSettings(width=64, height=64, transition=True, steps=2, cfg=3.0)
    whole = animate(tiny, reference, video, 2.0, mode="rgb", prompt="a test", settings=settings)
    written = []
    animate_stream(tiny, reference, iter([video[:4], video[4:]]), len(video), 2.0, mode="rgb", prompt="a test",
                   write=written.append, settings=settings, stream=StreamSettings(8, 2, 4))
    streamed = torch.cat([chunk.result for chunk in written])
    # Same computation in the same order (one window = the whole canvas): float32 noise level only.
    torch.testing.assert_close(streamed, whole.frames, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([chunk.canvas for chunk in written]), whole.canvas, atol=0, rtol=0)


# --- 10,000 frames at default settings ---------------------------------------------------------------
def test_ten_thousand_frames_at_default_settings_stream_with_the_estimate_logged_first(transformer, monkeypatch,
                                                                                         caplog):
    monkeypatch.setattr(stream_module, "encode_video", _pool_encode)
    monkeypatch.setattr(stream_module, "decode_latent", _pool_decode)
    count, frame = 10_000, torch.full((1, 32, 32, 3), 0.5)
    pulled = []

    def chunks():
        for start in range(0, count, 16):
            pulled.append(start)
            yield frame.expand(min(16, count - start), 32, 32, 3)

    written, held = [], []
    settings = AnimationSettings(width=32, height=32, steps=1, cfg=1.0)  # panel small; frames and windows default

    def write(chunk):
        written.append(len(chunk.result))
        held.append(len(pulled))  # chunks decoded so far: the stream must stay just ahead of the writer

    with caplog.at_level(logging.INFO, logger="dreamactor_core.long_video"):
        report = animate_stream(_oracle_models(transformer, []), frame, chunks(), count, 24.0, mode="rgb",
                                prompt="", write=write, settings=settings)
    assert sum(written) == count and report.frames == count
    defaults = StreamSettings()
    assert all(w <= (defaults.window_frames - 1) * TEMPORAL + 1 for w in written)
    assert all(16 * pulled_chunks <= 24 + sum(written[:i + 1]) + 2 * defaults.window_frames * TEMPORAL
               for i, pulled_chunks in enumerate(held))
    lines = [r.getMessage() for r in caplog.records]
    assert "10000 frames" in lines[0] and f"{report.forwards} transformer forwards" in lines[0]
    assert any("first forward took" in line for line in lines[1:])


def test_the_time_estimate_counts_the_forward_not_the_window_encode_before_it(transformer, monkeypatch):
    """The estimate multiplies the first forward's time by thousands: a second of VAE encode counted
    into it would inflate an hour-long estimate many times over."""
    def slow_encode(vae, frames, **kwargs):
        time.sleep(1.0)
        return _pool_encode(vae, frames, **kwargs)

    monkeypatch.setattr(stream_module, "encode_video", slow_encode)
    monkeypatch.setattr(stream_module, "decode_latent", _pool_decode)
    frame = torch.full((1, 32, 32, 3), 0.5)
    report = animate_stream(_oracle_models(transformer, []), frame, iter([frame.expand(8, 32, 32, 3)]), 8, 24.0,
                            mode="rgb", prompt="", write=lambda chunk: None,
                            settings=AnimationSettings(width=32, height=32, steps=1, cfg=1.0, transition=False))
    assert report.seconds_per_forward is not None and report.seconds_per_forward < 0.5  # a tiny forward: ms


def test_the_whole_clip_path_refuses_ten_thousand_frames_it_cannot_hold_and_names_the_streamed_one(tiny):
    source = torch.zeros(10_000, 8, 8, 3)  # tiny source frames: the canvas is at panel size whatever they are
    with pytest.raises(DreamActorError, match="10000 frames.*streamed path"):
        animate(tiny, torch.zeros(1, 64, 64, 3), source, 24.0, mode="rgb", prompt="", settings=AnimationSettings(),
                progress=None) if available_memory() else check_whole_clip_memory(10_000, 24.0, AnimationSettings(),
                                                                                  available=24 * 2**30)
    check_whole_clip_memory(121, 24.0, AnimationSettings(), available=24 * 2**30)  # a paper-length clip passes
