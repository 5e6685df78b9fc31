"""A Video-Bench-style judge on the captioner's Qwen2.5-VL: the four qualities DreamActor-M2 reports
(imaging quality, motion smoothness, temporal consistency, appearance consistency), each asked as
one question and answered 1-5.

The answers are read strictly: exactly one whole number 1-5 (a "/5" or "out of 5" denominator is
not a second number; "4.5", "3 or 4", "high" or "N/A" are malformed). A malformed answer is asked
once more; a second one is reported with both answers and the aspect has no score: a score is
never guessed. Only the result video (and, for appearance, the reference) is shown: the four
qualities are properties of the result, and motion fidelity to the driving clip is the pose
agreement measure's job (``evaluation``/bootstrap scorers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ..errors import DreamActorError
from .captioner import Captioner, GenerationSettings, sample_indices

SCALE = "Answer with one whole number from 1 (very poor) to 5 (excellent) and nothing else."
QUESTIONS: dict[str, str] = {
    "imaging_quality": (
        "Rate the imaging quality of this generated video: sharpness, absence of noise, blur, artifacts "
        "and distorted anatomy or objects. " + SCALE),
    "motion_smoothness": (
        "Rate the motion smoothness of this generated video: movements are fluid and physically plausible, "
        "without jitter, sudden jumps or stuttering. " + SCALE),
    "temporal_consistency": (
        "Rate the temporal consistency of this generated video: the subject, its shape, clothing and the "
        "background stay the same from frame to frame, without flicker or morphing. " + SCALE),
    "appearance_consistency": (
        "The picture is the reference; the video animates it. Rate how consistently the video keeps the "
        "reference subject's appearance: identity, face, colours, clothing and body shape. " + SCALE),
}
ASPECTS = tuple(QUESTIONS)
RETRY_NOTE = "Your previous answer could not be read. "
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?!\w|[.,]\d)")
_DENOMINATOR = re.compile(r"(?:/|\bout of|\bof)\s*5\b", re.IGNORECASE)
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def parse_score(answer: str) -> int | None:
    """The 1-5 score an answer gives, or None when it gives no single whole number 1-5."""
    text = _DENOMINATOR.sub(" ", answer.replace("**", " "))
    numbers = set(_NUMBER.findall(text))
    numbers |= {str(_WORDS[word]) for word in re.findall(r"[a-z]+", text.lower()) if word in _WORDS}
    if len(numbers) != 1:
        return None
    (number,) = numbers
    return int(number) if number.isdigit() and 1 <= int(number) <= 5 else None


@dataclass
class Verdict:
    """Per aspect: the score (None when unreadable) and every answer the model gave."""

    scores: dict[str, int | None] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [aspect for aspect, score in self.scores.items() if score is None]

    @property
    def mean(self) -> float | None:
        """The average of the four scores; None while any aspect is unanswered."""
        if self.failed or not self.scores:
            return None
        return sum(self.scores.values()) / len(self.scores)

    def problem(self) -> str:
        return "; ".join(f"{aspect}: unreadable answers {self.answers[aspect]}" for aspect in self.failed)


def judge_video(captioner: Captioner, reference: torch.Tensor, result: torch.Tensor, *, fps: float = 24.0,
                frames: int = 8, questions: dict[str, str] | None = None, max_new_tokens: int = 16) -> Verdict:
    """Ask each question about ``result`` (``[T, H, W, C]``; ``reference`` ``[H, W, C]`` or an IMAGE)
    and read the 1-5 answers, retrying a malformed one once."""
    if not isinstance(result, torch.Tensor) or result.ndim != 4 or len(result) == 0:
        raise DreamActorError("result video: expected frames [frames, height, width, 3], "
                              f"got {tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__}")
    reference = reference[0] if reference.ndim == 4 else reference
    picks = sample_indices(len(result), frames)
    video = result[picks]
    sampled_fps = max(fps * len(picks) / len(result), 1e-3) if len(result) > 1 else fps
    settings = GenerationSettings(**{**captioner.settings.__dict__, "max_new_tokens": max_new_tokens})
    verdict = Verdict()
    for aspect, question in (questions or QUESTIONS).items():
        images = [reference] if aspect == "appearance_consistency" else []
        answers: list[str] = []
        score = None
        for attempt in range(2):
            asked = question if attempt == 0 else RETRY_NOTE + question
            answers.append(captioner.ask(asked, images=images, video=video, fps=sampled_fps, settings=settings).text)
            score = parse_score(answers[-1])
            if score is not None:
                break
        verdict.scores[aspect], verdict.answers[aspect] = score, answers
    return verdict
