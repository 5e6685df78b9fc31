"""Resumable checkpoints: ``accelerator.save_state`` folders holding only what changes.

accelerate saves the optimizer, the learning-rate scheduler, every process's RNG states and the
registered ``Progress`` (the step; the data position follows from it, since each step's clips are
drawn from a generator seeded by the seed and the step). Its model file would hold the whole
frozen backbone (16 GB for HunyuanVideo 1.5), so the hooks here swap it for the LoRA pairs alone and
load them back strictly. A checkpoint is written under a hidden name and renamed when complete, so
an interrupted save is never taken for one to resume from.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..errors import DreamActorError
from .lora_peft import load_lora_tensors, lora_tensors

STEP_FOLDER = re.compile(r"^step_(\d{8})$")


class Progress:
    """The optimizer step count, saved with every checkpoint (accelerate's custom-object protocol)."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def register_lora_hooks(accelerator) -> None:
    """Make ``save_state``/``load_state`` store and restore only the LoRA pairs of the model."""
    from safetensors.torch import load_file

    def save(models, weights, output_dir) -> None:
        for index in range(len(weights)):
            weights[index] = lora_tensors(weights[index])

    def load(models, input_dir) -> None:
        while models:
            index = len(models) - 1
            name = "model.safetensors" if index == 0 else f"model_{index}.safetensors"
            load_lora_tensors(accelerator.unwrap_model(models.pop()), load_file(str(Path(input_dir) / name)))

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def checkpoints_in(root: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and STEP_FOLDER.match(p.name))


def resolve_resume(resume: str, root: Path) -> Path:
    """``latest`` (the newest complete checkpoint under ``root``) or a checkpoint folder."""
    if resume == "latest":
        found = checkpoints_in(root)
        if not found:
            raise DreamActorError(f"--resume latest: no checkpoint in '{root}'")
        return found[-1]
    path = Path(resume)
    if not (path / "custom_checkpoint_0.pkl").is_file():
        raise DreamActorError(f"--resume '{path}' is not a training checkpoint folder (step_NNNNNNNN)")
    return path


def save_checkpoint(accelerator, root: Path, step: int, keep: int) -> Path:
    """Save the full training state as ``root/step_NNNNNNNN`` and keep the newest ``keep``."""
    final = root / f"step_{step:08d}"
    partial = root / f".step_{step:08d}.partial"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        for old in checkpoints_in(root)[:-max(1, keep)]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final
