"""Target-oriented text guidance from a local multimodal LLM (DreamActor-M2, method.md): a
Qwen2.5-VL-Instruct describes the driving motion ("a person is waving both hands") and the
reference's subject and look ("a gray bird with colorful feathers"), then fuses the two, as a
plain LLM, into the prompt the video model gets ("a gray bird with colorful feathers is waving
its wings"): the subject is the reference's and the motion is adapted to its body, which the
template fusion of ``prompt.py`` (the no-model fallback) cannot do.

Every call is deterministic by default (greedy decoding; a seed fixes sampling when a temperature
is set), and returns the exact text it sent with the answer, so nodes and the command line can
show and edit the instructions. Frames are ``[T, H, W, C]`` floats in 0..1 (ComfyUI's IMAGE).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DreamActorError
from ..video_io import to_uint8_frames

SYSTEM = "You are a helpful assistant."
MOTION_INSTRUCTION = (
    "Describe only the motion of the main subject in this video, in one short sentence with a generic "
    "subject, for example: 'a person is waving both hands'. Do not describe clothing, colours, identity "
    "or the background.")
SKELETON_INSTRUCTION = (
    "This video shows a rendered pose skeleton of a moving body: coloured lines are limbs, dots are joints, "
    "the black background is empty. Describe only the motion in one short sentence with a generic "
    "subject, for example: 'a person is waving both hands'.")
REFERENCE_INSTRUCTION = (
    "Describe the main subject of this image and its look in one short noun phrase, for example: "
    "'a gray bird with colorful feathers'. Do not describe an action or the background.")
FUSE_INSTRUCTION = (
    "You write the prompt for a video model that animates a reference subject with a driving motion. "
    "Given the motion, described with a generic subject, and the reference's appearance, write one "
    "sentence in which the reference subject performs that motion, adapted to its body (a bird waves its "
    "wings, not hands). Answer with the sentence only.")
# (motion, appearance, fused): the paper's example first; the others are ours.
FEW_SHOT = (
    ("a person is waving both hands", "a gray bird with colorful feathers",
     "a gray bird with colorful feathers is waving its wings"),
    ("a person is jumping up and down", "a cartoon robot with round blue eyes",
     "a cartoon robot with round blue eyes is jumping up and down"),
    ("two people are dancing side by side", "two golden retrievers wearing party hats",
     "two golden retrievers wearing party hats are dancing side by side on their hind legs"),
)
IMAGE_SLOT = "<|vision_start|><|image_pad|><|vision_end|>"
VIDEO_SLOT = "<|vision_start|><|video_pad|><|vision_end|>"


@dataclass(frozen=True)
class Reply:
    """The model's answer and the exact text it was sent (chat template applied)."""

    text: str
    prompt: str


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are decoded and how much of each picture the model sees.

    ``temperature`` 0 is greedy (deterministic); above 0, sampling seeded with ``seed``.
    ``image_pixels`` and ``frame_pixels`` cap the pixels per picture / per video frame (Qwen2.5-VL
    resizes to multiples of 28 within the cap): 1280x28x28 is the released default for pictures,
    360x420 the Qwen examples' budget per frame.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    image_pixels: int = 1280 * 28 * 28
    frame_pixels: int = 360 * 420


def sample_indices(total: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``total`` frames, an even number of them (Qwen2.5-VL
    patches video two frames at a time): short clips repeat their last frame."""
    if total < 1:
        raise DreamActorError("video: it has no frames; the captioner needs at least one")
    if count < 1:
        raise DreamActorError(f"frames: at least 1 frame must be sampled, got {count}")
    indices = np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()
    return indices + indices[-1:] if len(indices) % 2 else indices


def _frames(frames: Any, what: str) -> torch.Tensor:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise DreamActorError(f"{what}: expected frames [frames, height, width, 3] in 0..1, got {shape}")
    if len(frames) == 0:
        raise DreamActorError(f"{what}: it has no frames")
    return frames[..., :3]


def clean_answer(text: str, what: str) -> str:
    """The first line of an answer without quotes, list marks or a final full stop; an empty answer
    is an error (never replaced by a default)."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = line.strip().lstrip("-*• ").strip().strip("\"'“”`").strip().rstrip(".").strip()
    if not line:
        raise DreamActorError(f"captioner: the model gave no {what} (answer {text!r}); check the model files "
                              "or the instruction")
    return line


class Captioner:
    """A Qwen2.5-VL-Instruct with its processor: ``describe_motion``, ``describe_reference``, ``fuse``
    and the general ``ask`` the judge uses."""

    def __init__(self, model: torch.nn.Module, processor: Any, identity: str = "",
                 settings: GenerationSettings | None = None) -> None:
        self.model, self.processor = model.eval(), processor
        self.identity = identity or f"{type(model).__name__}@{id(model):x}"
        self.settings = settings or GenerationSettings()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def render(self, question: str, *, images: int = 0, video: bool = False, system: str = SYSTEM,
               examples: Sequence[tuple[str, str]] = ()) -> str:
        """The text sent for a question: chat template, few-shot turns, picture and video slots."""
        messages = [{"role": "system", "content": system}]
        for asked, answered in examples:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        slots = IMAGE_SLOT * images + (VIDEO_SLOT if video else "")
        messages.append({"role": "user", "content": slots + question})
        return self.processor.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def ask(self, question: str, *, images: Sequence[torch.Tensor] = (), video: torch.Tensor | None = None,
            fps: float = 24.0, system: str = SYSTEM, examples: Sequence[tuple[str, str]] = (),
            settings: GenerationSettings | None = None) -> Reply:
        """One answer to ``question`` about ``images`` (each ``[H, W, C]``) and/or a ``video`` of
        already sampled frames at ``fps``."""
        settings = settings or self.settings
        if settings.max_new_tokens < 1:
            raise DreamActorError(f"max_new_tokens: at least 1, got {settings.max_new_tokens}")
        prompt = self.render(question, images=len(images), video=video is not None, system=system, examples=examples)
        inputs = self.processor(
            text=[prompt], return_tensors="pt",
            images=[to_uint8_frames(image[..., :3]) for image in images] or None,
            videos=[to_uint8_frames(video[..., :3])] if video is not None else None,
            images_kwargs={"size": self._size(self.processor.image_processor, settings.image_pixels)},
            videos_kwargs={"size": self._size(self.processor.video_processor, settings.frame_pixels), "fps": fps,
                           "do_sample_frames": False},
        ).to(self.device)
        sampling = settings.temperature > 0
        tokenizer = self.processor.tokenizer
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(settings.seed)
            tokens = self.model.generate(
                **inputs, max_new_tokens=settings.max_new_tokens, do_sample=sampling,
                temperature=settings.temperature if sampling else None, top_p=None, top_k=None,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
        answer = tokenizer.decode(tokens[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return Reply(answer.strip(), prompt)

    @staticmethod
    def _size(processor: Any, pixels: int) -> dict[str, int]:
        """Qwen2-VL's pixel budget as its processors take it (``longest_edge`` is the pixel cap)."""
        shortest = processor.size["shortest_edge"]
        return {"shortest_edge": min(shortest, pixels), "longest_edge": pixels}

    def describe_motion(self, frames: torch.Tensor, *, fps: float = 24.0, count: int = 8, skeleton: bool = False,
                        instruction: str | None = None) -> Reply:
        """The driving clip's motion with a generic subject, from ``count`` frames sampled over its
        length (``skeleton``: the frames are rendered pose skeletons, pose mode)."""
        frames = _frames(frames, "driving video")
        picks = sample_indices(len(frames), count)
        sampled_fps = fps * len(picks) / len(frames) if len(frames) > 1 else fps
        reply = self.ask(instruction or (SKELETON_INSTRUCTION if skeleton else MOTION_INSTRUCTION),
                         video=frames[picks], fps=max(sampled_fps, 1e-3))
        return Reply(clean_answer(reply.text, "motion description"), reply.prompt)

    def describe_reference(self, image: torch.Tensor, *, instruction: str | None = None) -> Reply:
        """The reference's subject and look as a noun phrase (first frame of an IMAGE)."""
        if isinstance(image, torch.Tensor) and image.ndim == 3:
            image = image[None]
        image = _frames(image, "reference image")
        reply = self.ask(instruction or REFERENCE_INSTRUCTION, images=[image[0]])
        return Reply(clean_answer(reply.text, "reference description"), reply.prompt)

    def fuse(self, motion: str, appearance: str, *, instruction: str | None = None,
             examples: Sequence[tuple[str, str, str]] = FEW_SHOT) -> Reply:
        """The target-oriented prompt from the two descriptions, the model used as a plain LLM with
        ``examples`` (motion, appearance, fused) as few-shot turns."""
        motion, appearance = " ".join(motion.split()), " ".join(appearance.split())
        if not motion or not appearance:
            raise DreamActorError("fuse: both the motion and the appearance descriptions are needed "
                                  f"(got motion {motion!r}, appearance {appearance!r})")
        turns = [(fuse_question(m, a), fused) for m, a, fused in examples]
        reply = self.ask(fuse_question(motion, appearance), system=instruction or FUSE_INSTRUCTION, examples=turns)
        return Reply(clean_answer(reply.text, "fused prompt") + ".", reply.prompt)


def fuse_question(motion: str, appearance: str) -> str:
    return f"Motion: {motion}\nAppearance: {appearance}\nPrompt:"


def load_captioner(path: str | Path, *, tokenizer_dir: str | Path | None = None, dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu", settings: GenerationSettings | None = None) -> Captioner:
    """A captioner from a Qwen2.5-VL-Instruct folder or single file (``captioner_files``)."""
    from .captioner_files import load_captioner_parts

    model, processor, identity = load_captioner_parts(path, tokenizer_dir=tokenizer_dir, dtype=dtype, device=device)
    return Captioner(model, processor, identity, settings)
