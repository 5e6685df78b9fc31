"""Captions for training clips that have none, from the local Qwen2.5-VL captioner
(``conditioning.captioner``), so a folder of raw videos trains without hand-written captions.

Pose stage: the clip's motion and its first frame's subject, fused into the target-oriented prompt.
Bootstrap: a source video's motion, and an identity picture's look. Each answer is computed once
and kept on disk under ``cache_dir/captions``, keyed by the clip's content digest, the captioner's
files (path, size, modification time of each) and dtype, the instructions and decoding settings:
re-runs and epochs never caption again, and a re-run with everything cached loads no captioner.
The captioner (a 3-7B model) is loaded on the first clip that needs it and freed on leaving the
``with`` block, before training or generation loads its own models.
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from ..conditioning import captioner as instructions
from ..conditioning.captioner import Captioner, GenerationSettings, load_captioner
from ..conditioning.captioner_files import FOLDER
from ..conditioning.encoder_files import file_identity, must_exist
from ..errors import DreamActorError
from ..video_io import read_clip, to_unit_frames
from .files import file_digest, replacing, settings_key

CAPTION_FORMAT = "dreamactor-caption-1"
Log = Callable[[str], None]
Frames = tuple[torch.Tensor, float]  # [T, H, W, 3] in 0..1, fps


class UnreadableClip(DreamActorError):
    """The clip to caption could not be decoded (the caller skips it as it skips it elsewhere)."""


def captioner_identity(path: Path) -> str:
    """The captioner's files as the cache sees them: the file, or every file of a model folder (a
    weight replaced inside the folder changes it, which the folder's own time may not show)."""
    if path.is_dir():
        return "|".join(file_identity(p) for p in sorted(path.rglob("*")) if p.is_file())
    return file_identity(path)


def default_runtime() -> tuple[str, torch.dtype]:
    """(device, dtype) for captioning before training: this process's GPU in bf16 when there is one
    (``LOCAL_RANK``: under ``accelerate launch`` each process uses its own GPU, not all the first)."""
    if not torch.cuda.is_available():
        return "cpu", torch.float32
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}", torch.bfloat16


class ClipCaptions:
    """Cached captions from the captioner at ``path`` (a model folder or single file); use it as a
    context manager so the captioner is freed when captioning is done."""

    def __init__(self, path: str | Path, cache_dir: Path, *, tokenizer_dir: str | Path | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 settings: GenerationSettings | None = None, log: Log = print) -> None:
        self.path = Path(path)
        must_exist(self.path, FOLDER)  # a wrong path stops the run before any clip is read
        default_device, default_dtype = default_runtime()
        self.device, self.dtype = device or default_device, dtype or default_dtype
        self.tokenizer_dir, self.settings, self.log = tokenizer_dir, settings or GenerationSettings(), log
        self.folder = Path(cache_dir) / "captions"
        self.identity = f"{captioner_identity(self.path)}|{self.dtype}"
        self.captioned: list[str] = []  # names captioned now (the rest came from the cache)
        self._captioner: Captioner | None = None

    def __enter__(self) -> "ClipCaptions":
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def release(self) -> None:
        """Drop the captioner and give its memory back before the next model loads."""
        if self._captioner is not None:
            self._captioner = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.log(f"captioner freed after captioning {len(self.captioned)} clip(s): {', '.join(self.captioned)}")

    def _model(self) -> Captioner:
        if self._captioner is None:
            self.log(f"loading the captioner {self.path.name}")
            self._captioner = load_captioner(self.path, tokenizer_dir=self.tokenizer_dir, dtype=self.dtype,
                                             device=self.device, settings=self.settings)
        return self._captioner

    def _cached(self, name: str, key: tuple[Any, ...], decode: Callable[[], Any],
                answer: Callable[[Captioner, Any], dict[str, str]]) -> dict[str, str]:
        """The entry for ``key`` from the cache, else ``answer(captioner, decode())`` written to it."""
        path = self.folder / f"{settings_key(CAPTION_FORMAT, self.identity, asdict(self.settings), *key)}.json"
        if path.is_file():
            entry = json.loads(path.read_text(encoding="utf-8"))
            self.log(f"caption of {name} from the cache: {entry['caption']!r}")
            return entry
        try:
            pictures = decode()
        except DreamActorError as error:
            raise UnreadableClip(str(error)) from error
        captioner = self._model()
        try:
            entry = {**answer(captioner, pictures), "source": name}
        except DreamActorError as error:
            raise DreamActorError(f"captioning {name}: {error}") from error
        with replacing(path) as temporary:
            temporary.write_text(json.dumps(entry, indent=1), encoding="utf-8")
        self.captioned.append(name)
        self.log(f"captioned {name}: {entry['caption']!r}")
        return entry

    def pose_prompt(self, video: Path, stride: int) -> str:
        """The target-oriented prompt of a pose-stage video: its motion and its first frame's
        subject, fused (the video decoded with the training's frame stride)."""
        def answer(captioner: Captioner, clip: Frames) -> dict[str, str]:
            frames, fps = clip
            motion = captioner.describe_motion(frames, fps=fps).text
            appearance = captioner.describe_reference(frames[0]).text
            return {"motion": motion, "appearance": appearance, "caption": captioner.fuse(motion, appearance).text}

        key = ("pose", file_digest(video), stride, instructions.MOTION_INSTRUCTION,
               instructions.REFERENCE_INSTRUCTION, instructions.FUSE_INSTRUCTION, instructions.FEW_SHOT)
        return self._cached(video.name, key, lambda: _decode(video, stride), answer)["caption"]

    def motion(self, video: Path, stride: int, max_frames: int | None) -> str:
        """A source video's motion with a generic subject (the bootstrap's motion text)."""
        key = ("motion", file_digest(video), stride, max_frames, instructions.MOTION_INSTRUCTION)
        return self._cached(video.name, key, lambda: _decode(video, stride, max_frames),
                            lambda captioner, clip: {"caption": captioner.describe_motion(clip[0], fps=clip[1]).text})["caption"]

    def appearance(self, picture_path: Path, picture: torch.Tensor) -> str:
        """An identity picture's subject and look (``picture`` as the bootstrap uses it, ``[H, W, C]``)."""
        key = ("appearance", file_digest(picture_path), tuple(picture.shape), instructions.REFERENCE_INSTRUCTION)
        return self._cached(picture_path.name, key, lambda: picture,
                            lambda captioner, image: {"caption": captioner.describe_reference(image).text})["caption"]


def _decode(video: Path, stride: int, max_frames: int | None = None) -> Frames:
    clip = read_clip(video, max_frames=max_frames, stride=stride)
    return to_unit_frames(clip.frames), clip.fps


def caption_pose_videos(videos: list[Path], captioner: str | Path, cache_dir: Path, stride: int, *,
                        tokenizer_dir: str | Path | None = None, log: Log = print) -> dict[Path, str]:
    """The prompts of pose-stage ``videos`` that have no caption file, from the captioner (cached);
    the captioner is freed before this returns."""
    with ClipCaptions(captioner, cache_dir, tokenizer_dir=tokenizer_dir, log=log) as captions:
        return {video: captions.pose_prompt(video, stride) for video in videos}
