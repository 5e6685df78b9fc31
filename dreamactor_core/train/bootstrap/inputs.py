"""What the bootstrap reads: source videos, new identities, and how a video is cut into clips.

A folder-level problem (a folder that is missing or holds nothing usable, an identity picture that
cannot be read, two identities with one name) stops the run before any generation, with a
``DreamActorError``: it is the user's to fix and nothing sensible can be made without it. A
per-video problem (see ``job.py``) only skips that video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...canvas.placement import resize_frames
from ...errors import DreamActorError
from ...video_io import read_image, to_unit_frames

VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv", ".webp", ".gif"})
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


@dataclass(frozen=True)
class Identity:
    """A new reference identity: its picture (``[H, W, C]`` 0..1, C = 3 or 4) and the appearance
    text from a ``<picture name>.txt`` beside it ("" when there is none)."""

    name: str
    path: Path
    picture: torch.Tensor
    appearance: str


@dataclass(frozen=True)
class ClipOptions:
    """How source videos are read and cut: every ``stride``-th frame, at most ``max_frames`` of
    them, in consecutive clips of ``clip_frames`` (a shorter tail is dropped)."""

    clip_frames: int = 49
    stride: int = 1
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.clip_frames < 2:
            raise DreamActorError(f"clip frames: at least 2 needed for motion, got {self.clip_frames}")
        if self.stride < 1:
            raise DreamActorError(f"stride: at least 1, got {self.stride}")
        if self.max_frames is not None and self.max_frames < self.clip_frames:
            raise DreamActorError(f"max frames ({self.max_frames}) is below the clip length ({self.clip_frames}): "
                                  "no clip could be cut")

    def spans(self, frames: int) -> list[range]:
        """The frame ranges of the clips of a video with ``frames`` (already strided) frames."""
        return [range(start, start + self.clip_frames)
                for start in range(0, frames - self.clip_frames + 1, self.clip_frames)]

    def clip_name(self, span: range) -> str:
        """A clip's name in the video's own frame numbers, e.g. ``frames0-96step2``: it names the
        frames exactly, so a re-run with another stride or clip length never mistakes old clips
        for its own."""
        return f"frames{span.start * self.stride}-{(span.stop - 1) * self.stride}step{self.stride}"


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DreamActorError(f"{what} folder '{path}' does not exist or is not a folder")
    return path


def find_videos(folder: str | Path) -> list[Path]:
    """Every video under ``folder`` (subfolders too), in a stable order."""
    folder = _folder(Path(folder), "sources")
    videos = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DreamActorError(f"sources folder '{folder}' holds no video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return videos


def sidecar_text(path: Path) -> str:
    """The text of ``<path>.txt`` with the suffix replaced (e.g. ``dance.txt`` for ``dance.mp4``), or ""."""
    text = path.with_suffix(".txt")
    return text.read_text(encoding="utf-8").strip() if text.is_file() else ""


def _within(picture: torch.Tensor, panel: tuple[int, int] | None) -> torch.Tensor:
    """``picture`` shrunk (aspect kept) to fit a (width, height) panel. The canvas would shrink it
    anyway, and V_o comes back at the picture's size: a 12-megapixel photo would otherwise make
    gigabytes of frames per clip."""
    height, width = picture.shape[:2]
    if panel is None or (width <= panel[0] and height <= panel[1]):
        return picture
    scale = min(panel[0] / width, panel[1] / height)
    size = max(1, round(height * scale)), max(1, round(width * scale))
    return resize_frames(picture[None], *size)[0].clamp(0, 1)


def load_identities(folder: str | Path, panel: tuple[int, int] | None = None) -> list[Identity]:
    """Every picture directly in ``folder``, read now so a bad one stops the run before any work;
    pictures larger than the (width, height) ``panel`` are shrunk to fit it."""
    folder = _folder(Path(folder), "identities")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)
    if not paths:
        raise DreamActorError(f"identities folder '{folder}' holds no picture ({', '.join(sorted(PICTURE_SUFFIXES))})")
    identities, seen = [], {}
    for path in paths:
        if path.stem in seen:
            raise DreamActorError(f"identities '{seen[path.stem].name}' and '{path.name}' share the name "
                                  f"'{path.stem}': rename one (the name keys the outputs)")
        seen[path.stem] = path
        try:
            picture = to_unit_frames(read_image(path).copy())  # Pillow's array is read-only; torch warns
        except DreamActorError:
            raise
        except Exception as error:  # Pillow raises several types for broken files; name the file either way
            raise DreamActorError(f"identity picture '{path}' could not be read: {error}") from error
        identities.append(Identity(path.stem, path, _within(picture, panel), sidecar_text(path)))
    return identities
