"""Where pose-estimator weights are looked for: the pack's own ``dreamactor_pose`` models folder, and
the sub-folders comfyui_controlnet_aux keeps them in under its ``ckpts/`` (so files artists already
have are used as they are). Nothing is downloaded: a missing file is a ``MissingModelFile``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import MissingModelFile

POSE_FOLDER = "dreamactor_pose"
DWPOSE_LAYOUT = Path("yzd-v") / "DWPose"
ANNOTATORS_LAYOUT = Path("lllyasviel") / "Annotators"


def find_model_file(filename: str, search_dirs: Iterable[str | Path], layout: Path) -> Path:
    """``filename`` in the first search dir that has it, directly or under ``layout`` (the
    comfyui_controlnet_aux sub-folder of that file's repository)."""
    dirs = [Path(d) for d in search_dirs]
    for directory in dirs:
        for candidate in (directory / filename, directory / layout / filename):
            if candidate.is_file():
                return candidate
    searched = ", ".join(str(d) for d in dirs) or "no folder"
    raise MissingModelFile(filename, POSE_FOLDER, hint=f"comfyui_controlnet_aux's ckpts/{layout.as_posix()}/ "
                                                       f"layout is accepted too. Searched: {searched}")
