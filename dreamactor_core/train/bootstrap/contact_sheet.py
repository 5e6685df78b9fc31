"""Contact sheets for the paper's manual check of the bootstrapped videos.

Each scored pair gets one row picture, drawn while its frames are still in memory: the identity
picture, a few V_src frames, the same moments of V_o, and the scores (green panel: kept, red:
rejected). Sheets are then stacked from those row pictures, so redrawing them after every run
(the report keeps growing) decodes no video.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...errors import DreamActorError
from ...video_io import to_uint8_frames

TEXT_WIDTH = 260  # room for "temporal_stability 4.87" in PIL's default font, plus margins
BACKGROUND = (24, 24, 24)
PANEL = {"kept": (28, 72, 36), "rejected": (84, 30, 30)}
SHEET_PREFIX = "contact_sheet_"


def row_size(thumb: int, frames: int) -> tuple[int, int]:
    """(width, height) of one row: identity, ``frames`` V_src and ``frames`` V_o thumbnails, text."""
    return thumb * (1 + 2 * frames) + TEXT_WIDTH, thumb


def _thumbnail(picture: torch.Tensor, thumb: int):
    """One ``[H, W, C]`` 0..1 picture fitted into a ``thumb`` square (aspect kept, centred)."""
    from PIL import Image

    image = Image.fromarray(to_uint8_frames(picture[..., :3]))
    image.thumbnail((thumb, thumb))
    square = Image.new("RGB", (thumb, thumb), BACKGROUND)
    square.paste(image, ((thumb - image.width) // 2, (thumb - image.height) // 2))
    return square


def render_row(identity: torch.Tensor, source: torch.Tensor, generated: torch.Tensor, lines: Sequence[str],
               kept: bool, thumb: int = 96, frames: int = 4):
    """The row picture of one pair (a PIL image of ``row_size(thumb, frames)``); V_src and V_o
    thumbnails are taken at the same evenly spaced moments so their poses can be compared."""
    from PIL import Image, ImageDraw

    if thumb < 16 or frames < 1:
        raise DreamActorError(f"contact sheet: thumbnails of at least 16 px and 1 frame needed, got {thumb} px, "
                              f"{frames} frames")
    row = Image.new("RGB", row_size(thumb, frames), BACKGROUND)
    row.paste(_thumbnail(identity, thumb), (0, 0))
    count = min(len(source), len(generated))
    moments = np.linspace(0, count - 1, frames).round().astype(int)
    for column, moment in enumerate(moments):
        row.paste(_thumbnail(source[moment], thumb), (thumb * (1 + column), 0))
        row.paste(_thumbnail(generated[moment], thumb), (thumb * (1 + frames + column), 0))
    left = thumb * (1 + 2 * frames)
    draw = ImageDraw.Draw(row)
    draw.rectangle((left, 0, row.width, thumb), fill=PANEL["kept" if kept else "rejected"])
    draw.multiline_text((left + 6, 4), "\n".join(lines), fill=(235, 235, 235), spacing=2)
    return row


def write_sheets(rows: Sequence[Path], folder: Path, rows_per_sheet: int = 50) -> list[Path]:
    """Stack row pictures into ``contact_sheet_001.png``, ``_002`` ... in ``folder`` (older sheets
    there are replaced); rows of different widths are left-aligned."""
    from PIL import Image

    if rows_per_sheet < 1:
        raise DreamActorError(f"contact sheet: rows per sheet must be at least 1, got {rows_per_sheet}")
    for old in folder.glob(f"{SHEET_PREFIX}*.png"):
        old.unlink()
    sheets = []
    for start in range(0, len(rows), rows_per_sheet):
        pictures = []
        for path in rows[start:start + rows_per_sheet]:
            with Image.open(path) as picture:
                pictures.append(picture.convert("RGB"))
        sheet = Image.new("RGB", (max(p.width for p in pictures), sum(p.height for p in pictures)), BACKGROUND)
        top = 0
        for picture in pictures:
            sheet.paste(picture, (0, top))
            top += picture.height
        sheets.append(folder / f"{SHEET_PREFIX}{len(sheets) + 1:03d}.png")
        sheet.save(sheets[-1])
    return sheets
