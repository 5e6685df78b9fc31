"""The bootstrap's report: one JSON line per outcome (kept, rejected, or skipped with a reason).

The manifest holds only the kept triplets, which is what training needs; the report holds every
scored pair with its scores (the manual check, and tuning the threshold, need the rejected ones
too) and every video or clip that could not be used, with why. Like the manifest it is only ever
appended to and flushed to disk line by line, so an interrupted run loses nothing it wrote, and a
re-run reads it to skip the pairs already scored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ...errors import DreamActorError

Status = Literal["kept", "rejected", "skipped"]
STATUSES: tuple[str, ...] = ("kept", "rejected", "skipped")


@dataclass(frozen=True)
class Outcome:
    """What became of one (source clip, identity) pair, or of a whole source video when skipped.

    Paths are relative to the report's folder; ``identity`` is empty for a skipped video or clip.
    """

    source: str  # "<video path relative to the sources folder>#<clip name>", or the video alone
    identity: str  # the identity picture's name
    status: Status
    score: float | None = None  # the combined score (1-5), None when skipped
    scores: dict[str, float] = field(default_factory=dict)
    driving: str | None = None  # V_o
    target: str | None = None  # the V_src clip
    sheet_row: str | None = None  # this pair's contact-sheet row picture
    reason: str = ""  # why it was skipped


def append_outcome(path: str | Path, outcome: Outcome) -> None:
    """Append one line with a single write on an O_APPEND file, fsynced; a torn last line left by a
    crash is closed with a newline first so it cannot merge with this one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.is_file() and path.stat().st_size > 0:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(("\n" if torn else "") + json.dumps(asdict(outcome), ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_report(path: str | Path) -> list[Outcome]:
    """Every outcome of a report ([] when there is none yet). A line that is not JSON was torn by a
    crash mid-write and is ignored (that pair is simply done again); a JSON line that is not an
    outcome is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        return []
    outcomes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            item = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if item is None:
            continue
        try:
            outcome = Outcome(**item)
        except TypeError as error:
            raise DreamActorError(f"report '{path}', line {number}: not an outcome ({error})") from None
        if outcome.status not in STATUSES:
            raise DreamActorError(f"report '{path}', line {number}: status '{outcome.status}', expected one of "
                                  f"{', '.join(STATUSES)}")
        outcomes.append(outcome)
    return outcomes
