"""Tiny stand-ins: under the shipped workflows' own file names, so the workflows run unchanged in
seconds with nothing downloaded (the demo and the ComfyUI tests), and as the pipeline's
``ModelFiles`` (``--tiny``, tests, benchmarks)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..app.default_models import DEFAULT_MODELS
from ..pipeline import ModelFiles
from .tiny_encoders import write_tiny_encoders
from .tiny_models import write_tiny_models


def write_tiny_model_files(folder: str | Path, *, image_encoder: bool = True,
                           loras: tuple[tuple[Path, float], ...] = ()) -> ModelFiles:
    """Tiny seeded transformer, VAE, text encoders and (``image_encoder``) SigLIP written under
    ``folder``, named as the pipeline loads them: the same bytes on every call."""
    folder = Path(folder)
    models = write_tiny_models(folder)
    encoders = write_tiny_encoders(folder / "text_encoders", folder / "clip_vision")
    return ModelFiles(models["transformer"], models["vae"], encoders["pipeline"],
                      image_encoder=encoders["siglip"] if image_encoder else None, loras=loras)


def write_tiny_stand_ins(models_dir: str | Path, scratch: str | Path) -> dict[str, Path]:
    """Tiny random-weight models of the same classes and file layouts, saved under the default names
    in ``models_dir`` (made in ``scratch`` first): the shipped workflows then run unchanged, in
    seconds, with nothing downloaded. Config sidecars (``<stem>.json``) and a ``tokenizer`` folder go
    beside the text files, as the loaders look for them there before the released configs."""
    scratch = Path(scratch)
    tiny = write_tiny_models(scratch / "models")
    encoders = write_tiny_encoders(scratch / "text_encoders", scratch / "clip_vision")
    sources = {"transformer": tiny["transformer"], "vae": tiny["vae"], "text_encoder": encoders["qwen_fp8"],
               "glyph_encoder": encoders["byt5"], "image_encoder": encoders["siglip"],
               "pose_lora": tiny["lora"], "rgb_lora": tiny["lora"]}
    written = {}
    for role, source in sources.items():
        target = DEFAULT_MODELS[role].path(models_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        if source.with_suffix(".json").is_file():
            shutil.copyfile(source.with_suffix(".json"), target.with_suffix(".json"))
        written[role] = target
    tokenizer = DEFAULT_MODELS["text_encoder"].path(models_dir).parent / "tokenizer"
    shutil.copytree(encoders["tokenizer"], tokenizer, dirs_exist_ok=True)
    return written
