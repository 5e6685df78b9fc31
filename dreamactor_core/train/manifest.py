"""The RGB stage's dataset: a JSON Lines manifest of self-bootstrapped triplets.

One object per kept triplet (paper: V_src, its pose-driven re-rendering V_o with a new identity,
and the reference V_src[0]); the bootstrap generator appends to it, the RGB stage reads it.
Paths are stored relative to the manifest's folder so a dataset folder can be moved or copied to a
training machine as a whole. Lines are only ever appended, never rewritten, so a generator that is
interrupted (or several runs one after another) never loses kept triplets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DreamActorError

_PATH_FIELDS = ("driving", "target", "reference", "identity")


@dataclass(frozen=True)
class Triplet:
    """One training example of the RGB stage; paths are absolute once read from a manifest."""

    driving: Path  # V_o: the source motion re-rendered with a new identity (the model's input)
    target: Path  # V_src: the video to reconstruct
    reference: Path  # V_src[0] saved as png (the reference picture)
    prompt: str
    score: float  # the automatic quality score the filter kept it for
    scores: dict[str, float] = field(default_factory=dict)  # per-criterion scores
    identity: Path | None = None  # the new-identity picture used to make V_o (provenance only)
    source: str = ""  # where V_src came from (provenance only)


def _line_error(path: Path, number: int, problem: str) -> DreamActorError:
    return DreamActorError(f"manifest '{path}', line {number}: {problem}")


def _parse(path: Path, number: int, line: str) -> Triplet:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise _line_error(path, number, f"not valid JSON ({error.msg})") from error
    if not isinstance(item, dict):
        raise _line_error(path, number, "expected a JSON object")
    missing = [key for key in ("driving", "target", "reference", "prompt", "score") if key not in item]
    if missing:
        raise _line_error(path, number, f"missing field(s) {', '.join(missing)}")
    if not isinstance(item["prompt"], str):
        raise _line_error(path, number, "'prompt' must be a string")
    scores = item.get("scores") or {}
    if not isinstance(scores, dict):
        raise _line_error(path, number, "'scores' must be an object of name -> number")
    try:
        score = float(item["score"])
        scores = {str(name): float(value) for name, value in scores.items()}
    except (TypeError, ValueError) as error:
        raise _line_error(path, number, f"scores must be numbers ({error})") from error
    files: dict[str, Path | None] = {}
    for key in _PATH_FIELDS:
        value = item.get(key)
        if value is None and key == "identity":
            files[key] = None
            continue
        if not isinstance(value, str) or not value:
            raise _line_error(path, number, f"'{key}' must be a file path")
        resolved = (path.parent / value).resolve()
        if not resolved.is_file():
            raise _line_error(path, number, f"{key} file '{resolved}' does not exist")
        files[key] = resolved
    return Triplet(files["driving"], files["target"], files["reference"], item["prompt"], score, scores,
                   files["identity"], str(item.get("source", "")))


def read_manifest(path: str | Path) -> list[Triplet]:
    """All triplets of a manifest, checked: every named file exists, every line is well formed.

    Blank lines are skipped; unknown fields are ignored (later generators may record more).
    """
    path = Path(path)
    if not path.is_file():
        raise DreamActorError(f"manifest '{path}' does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    triplets = [_parse(path, number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not triplets:
        raise DreamActorError(f"manifest '{path}' holds no triplets: run 'train bootstrap' first")
    return triplets


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def append_triplet(path: str | Path, triplet: Triplet) -> None:
    """Append one triplet as one line, paths made relative to the manifest's folder.

    The line is written with a single ``write`` on a file opened for appending (O_APPEND) and
    flushed to disk, so existing lines are never rewritten and a crash leaves at most one partial
    last line; a missing final newline (from such a crash) is closed first so lines never merge.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent
    item = {
        "driving": _relative(triplet.driving, folder),
        "target": _relative(triplet.target, folder),
        "reference": _relative(triplet.reference, folder),
        "prompt": triplet.prompt,
        "score": float(triplet.score),
        "scores": {name: float(value) for name, value in triplet.scores.items()},
        "identity": _relative(triplet.identity, folder) if triplet.identity is not None else None,
        "source": triplet.source,
    }
    line = json.dumps(item, ensure_ascii=False) + "\n"
    needs_newline = path.is_file() and path.stat().st_size > 0 and not _ends_with_newline(path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(("\n" if needs_newline else "") + line)
        handle.flush()
        os.fsync(handle.fileno())
