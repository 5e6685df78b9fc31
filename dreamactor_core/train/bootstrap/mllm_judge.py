"""``mllm_judge``: the bootstrap filter's scorer on the paper's kind of judge, a multimodal LLM
(``conditioning/judge.py`` on a local Qwen2.5-VL-Instruct) rating V_o 1-5 on the four Video-Bench
qualities; the score is their mean, on the scale the 4.5 threshold reads.

The model loads on first use (a run with nothing left to score loads none) and stays for the run.
An aspect the model answers unreadably twice stops the run with both answers (the report keeps
what was written; a re-run resumes): a score is never guessed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...conditioning.captioner import Captioner, load_captioner
from ...conditioning.judge import judge_video
from ...errors import DreamActorError
from .scoring import ScoringInputs


class MllmJudgeScorer:
    """A scorer ``(ScoringInputs) -> 1..5`` backed by the judge; ``model`` is a Qwen2.5-VL-Instruct
    folder or single file (None: the scorer explains how to name one)."""

    def __init__(self, model: str | Path | None = None, *, tokenizer_dir: str | Path | None = None,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", frames: int = 8) -> None:
        self.model, self.tokenizer_dir, self.dtype, self.device, self.frames = model, tokenizer_dir, dtype, device, frames
        self._captioner: Captioner | None = None

    @property
    def captioner(self) -> Captioner:
        if self.model is None:
            raise DreamActorError("scorer 'mllm_judge': no judge model; name a Qwen2.5-VL-Instruct folder or file "
                                  "with --judge-model")
        if self._captioner is None:
            self._captioner = load_captioner(self.model, tokenizer_dir=self.tokenizer_dir, dtype=self.dtype,
                                             device=self.device)
        return self._captioner

    def __call__(self, inputs: ScoringInputs) -> float:
        verdict = judge_video(self.captioner, inputs.identity, inputs.generated, fps=inputs.fps, frames=self.frames)
        if verdict.mean is None:
            raise DreamActorError(f"scorer 'mllm_judge' on {inputs.source_name} x {inputs.identity_name}: "
                                  f"{verdict.problem()}")
        return verdict.mean
