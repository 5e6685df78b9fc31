"""HunyuanVideo 1.5 variants: which release a transformer is, and the sampling defaults it needs.

Facts followed (Tencent's HunyuanVideo-1.5 README "Optimal Inference Configurations" table, its
``hunyuan_video_pipeline.py``, and diffusers' ``HunyuanVideo15ImageToVideoPipeline``):

| release                      | cfg | flow shift | steps (Tencent)        |
|------------------------------|-----|------------|------------------------|
| 480p i2v                     | 6   | 5          | 50                     |
| 720p i2v                     | 6   | 7          | 50                     |
| 480p / 720p i2v cfg-distilled| 1   | 5 / 7      | 50                     |
| 480p i2v step-distilled      | 1   | 7          | 8 or 12                |

- Every release has "Embedded CFG Scale: None": no guidance embedder (``guidance_in``); Tencent's
  pipeline asserts ``not guidance_embed`` then, and diffusers' class has none. A file that has one is
  no released variant and is refused.
- The step-distilled model is a MeanFlow model: its file carries ``time_r_in`` (diffusers:
  ``time_embed.timestep_embedder_r``, ``use_meanflow``) and every forward also takes the level the
  step lands on, ``timestep_r`` = next sigma x 1000 (0 on the last step). The noise levels are the
  usual shifted linear schedule (``sampling.schedules``).
- cfg-distilled and base files, 480p and 720p files, have the same keys and shapes: only the file or
  folder name (Comfy-Org's ``..._cfg_distilled_...``, Tencent's ``480p_i2v_distilled``) or a diffusers
  config's ``target_size`` (960 at 720p) tells them apart.

The pack's own step default stays 30 (what its workflows ship) where Tencent uses 50.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import DreamActorError

PACK_STEPS = 30
STEP_DISTILLED_STEPS = 8
BASE_CFG = 6.0


@dataclass(frozen=True)
class Variant:
    """One transformer release and its sampling defaults."""

    name: str
    shift: float
    cfg: float = BASE_CFG
    steps: int = PACK_STEPS
    meanflow: bool = False  # forwards take timestep_r (step-distilled)

    @property
    def distilled(self) -> bool:
        return self.cfg == 1.0


def _has(keys: Iterable[str], *markers: str) -> bool:
    return any(marker in key for key in keys for marker in markers)


def check_hunyuan_video_15(keys: Iterable[str], in_channels: int) -> None:
    """Refuse HunyuanVideo 1.5 files no image-to-video release is: a guidance embedder, or the
    super-resolution model (98 input channels)."""
    keys = list(keys)
    if _has(keys, "guidance_in.", "guidance_embedder."):
        raise DreamActorError("transformer: this HunyuanVideo 1.5 file has a guidance embedder (guidance_in), which no "
                              "released variant has and diffusers' model cannot take; choose an i2v, cfg_distilled "
                              "or step_distilled file")
    if in_channels != 65:
        raise DreamActorError(f"transformer: this HunyuanVideo 1.5 file takes {in_channels} input channels, not the "
                              "65 of image-to-video (98 is the super-resolution model); choose an i2v file")


def hunyuan_video_15_variant(name: str, keys: Iterable[str] = (), config: Mapping[str, Any] | None = None) -> Variant:
    """The release a HunyuanVideo 1.5 transformer is, from its weights' names, its config and its
    file or folder name (the only signal between base and cfg-distilled, 480p and 720p)."""
    config = config or {}
    lowered = name.lower()
    meanflow = bool(config.get("use_meanflow")) or _has(keys, "time_r_in.", "timestep_embedder_r.")
    hd = "720p" in lowered or config.get("target_size") == 960
    if meanflow:
        return Variant(f"{'720p' if hd else '480p'}_i2v_step_distilled", shift=7.0, cfg=1.0,
                       steps=STEP_DISTILLED_STEPS, meanflow=True)
    distilled = re.search(r"distill", lowered) is not None
    resolution = "720p" if hd else "480p"
    return Variant(f"{resolution}_i2v" + ("_cfg_distilled" if distilled else ""), shift=7.0 if hd else 5.0,
                   cfg=1.0 if distilled else BASE_CFG)


def model_variant(model: Any) -> Variant:
    """The variant of a loaded ``DreamActorModel`` (other backbones: their one default)."""
    adapter, transformer = model.adapter, model.transformer
    if adapter.name != "hunyuan_video_15":
        return Variant(adapter.name, shift=adapter.default_shift)
    source = Path(model.source)
    # A diffusers folder may be the pipeline root or its transformer/ subfolder: both names count.
    name = "/".join(source.parts[-2:])
    return hunyuan_video_15_variant(name, config=dict(transformer.config))


def resolve(variant: Variant, steps: int | None, cfg: float | None, shift: float | None) -> tuple[int, float, float]:
    """The user's steps, cfg and shift, with the variant's default where left at None (auto)."""
    return (variant.steps if steps is None else steps, variant.cfg if cfg is None else cfg,
            variant.shift if shift is None else shift)


def resolved_settings(settings: Any, model: Any) -> Any:
    """A settings dataclass (``pipeline.AnimationSettings``) with steps, cfg and shift left at None
    filled from ``model``'s release, for code that needs them before sampling (forward counts)."""
    steps, cfg, shift = resolve(model_variant(model), settings.steps, settings.cfg, settings.shift)
    return replace(settings, steps=steps, cfg=cfg, shift=shift)
