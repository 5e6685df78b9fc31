"""The captioner and the judge on a tiny random-weight Qwen2.5-VL of transformers' real classes,
loaded from a model folder and from ComfyUI-layout single files (bf16-free fp32, fp8 scaled, and the
incomplete kinds a text-encoder file may be). ``script_answers`` makes the real model answer a chosen
text, so the whole path (frames in, tokens out, answer parsed) is checked on what it returns."""

from __future__ import annotations

import pytest
import torch

from dreamactor_core.conditioning.captioner import (
    FEW_SHOT,
    VIDEO_SLOT,
    GenerationSettings,
    load_captioner,
    sample_indices,
)
from dreamactor_core.conditioning.captioner_files import inspect_file
from dreamactor_core.conditioning.judge import ASPECTS, judge_video, parse_score
from dreamactor_core.errors import DreamActorError, MissingModelFile
from dreamactor_core.testing.tiny_captioner import script_answers, write_tiny_captioner
from dreamactor_core.train.bootstrap.mllm_judge import MllmJudgeScorer

SMALL = GenerationSettings(max_new_tokens=12, image_pixels=32 * 32, frame_pixels=32 * 32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_tiny_captioner(tmp_path_factory.mktemp("captioner"))


@pytest.fixture()
def captioner(files):
    return load_captioner(files["file"], settings=SMALL)


def _video(frames: int = 10) -> torch.Tensor:
    return torch.rand(frames, 40, 48, 3, generator=torch.Generator().manual_seed(frames))


def test_a_single_file_loads_exactly_the_folders_weights(files):
    from_folder = load_captioner(files["folder"]).model.state_dict()
    from_file = load_captioner(files["file"]).model.state_dict()
    assert from_folder.keys() == from_file.keys()
    assert all(torch.equal(from_folder[key], from_file[key]) for key in from_folder)


def test_fp8_scaled_weights_stay_fp8_and_compute_the_files_values(files):
    exact = load_captioner(files["file"]).model
    model = load_captioner(files["fp8"]).model
    layer = model.model.language_model.layers[0].self_attn.q_proj
    reference = exact.model.language_model.layers[0].self_attn.q_proj.weight
    assert layer.weight.dtype == torch.float8_e4m3fn
    effective = layer.weight.float() * layer.scale_weight
    # e4m3 keeps 3 mantissa bits: within 2^-4 relative, plus half a subnormal step near zero
    assert ((effective - reference).abs() <= reference.abs() / 16 + layer.scale_weight * 2.0**-9).all()
    # an fp8 weight of a layer that is not a Linear (the patch embedding's Conv3d) is dequantised while loading
    conv, conv_exact = model.model.visual.patch_embed.proj.weight, exact.model.visual.patch_embed.proj.weight
    assert conv.dtype == torch.float32 and not torch.equal(conv, conv_exact)
    assert ((conv - conv_exact).abs() <= conv_exact.abs() / 16 + conv_exact.abs().max() / 448 * 2.0**-9).all()
    assert torch.equal(model.model.visual.blocks[0].norm1.weight, exact.model.visual.blocks[0].norm1.weight)


def test_the_file_header_tells_what_a_text_encoder_file_lacks(files):
    assert inspect_file(files["file"]).vision_tower and inspect_file(files["file"]).lm_head
    assert inspect_file(files["fp8"]).fp8_scaled and not inspect_file(files["file"]).fp8_scaled
    with pytest.raises(DreamActorError, match=r"without the LM head \(lm_head.weight\).*models/LLM"):
        load_captioner(files["no_head"])
    with pytest.raises(DreamActorError, match=r"without the vision tower \(visual\.\*\) and the LM head"):
        load_captioner(files["text_only"])
    with pytest.raises(MissingModelFile, match="nothing.safetensors"):
        load_captioner(files["file"].parent / "nothing.safetensors")


def test_a_folder_of_another_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(DreamActorError, match="'llama' model, not Qwen2.5-VL"):
        load_captioner(tmp_path)


def test_the_whole_path_on_the_real_model_frames_in_answer_out(captioner):
    tokenizer = captioner.processor.tokenizer
    script_answers(captioner.model, tokenizer, "he jumps")
    reply = captioner.describe_motion(_video(10), fps=10.0, count=4)
    assert reply.text == "he jumps"
    assert VIDEO_SLOT in reply.prompt and "generic subject" in reply.prompt
    skeleton = captioner.describe_motion(_video(10), count=4, skeleton=True)
    assert "pose skeleton" in skeleton.prompt
    reference = captioner.describe_reference(torch.rand(1, 30, 30, 3))
    assert reference.text == "he jumps" and "<|image_pad|>" in reference.prompt
    script_answers(captioner.model, tokenizer, "fox jumps")
    fused = captioner.fuse("a person is jumping", "a blue fox")
    assert fused.text == "fox jumps."
    # the paper's example is a few-shot turn, the asked pair the last user turn
    motion, appearance, answer = FEW_SHOT[0]
    assert f"Motion: {motion}\nAppearance: {appearance}\nPrompt:<|im_end|>\n<|im_start|>assistant\n{answer}" in fused.prompt
    assert fused.prompt.rstrip().endswith("Motion: a person is jumping\nAppearance: a blue fox\nPrompt:<|im_end|>\n"
                                          "<|im_start|>assistant")


def test_an_edited_instruction_is_what_is_sent(captioner):
    reply = captioner.describe_reference(torch.rand(30, 30, 3), instruction="Name the animal.")
    assert "Name the animal.<|im_end|>" in reply.prompt


def test_greedy_answers_repeat_and_sampling_follows_the_seed(files):
    captioner = load_captioner(files["file"], settings=SMALL)
    video = _video(6)
    first = captioner.ask("What moves?", video=video).text
    assert captioner.ask("What moves?", video=video).text == first
    hot = GenerationSettings(**{**SMALL.__dict__, "temperature": 1.5, "seed": 3})
    sampled = captioner.ask("What moves?", video=video, settings=hot).text
    assert captioner.ask("What moves?", video=video, settings=hot).text == sampled


def test_frames_are_sampled_evenly_in_pairs_and_an_empty_video_is_refused(captioner):
    assert sample_indices(100, 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert sample_indices(3, 8) == [0, 1, 2, 2]
    assert sample_indices(1, 8) == [0, 0]
    with pytest.raises(DreamActorError, match="no frames"):
        captioner.describe_motion(torch.zeros(0, 32, 32, 3))
    with pytest.raises(DreamActorError, match="no frames"):
        sample_indices(0, 8)


def test_an_empty_answer_is_an_error_not_a_default(captioner):
    script_answers(captioner.model, captioner.processor.tokenizer, "")
    with pytest.raises(DreamActorError, match="gave no motion description"):
        captioner.describe_motion(_video(4))


@pytest.mark.parametrize("answer, score", [
    ("4", 4), ("Score: 4", 4), ("**5**", 5), ("3/5", 3), ("I would rate it 2 out of 5.", 2), ("Rating: four", 4),
    ("The video deserves a 3. The motion is mostly fluid.", 3), ("1", 1),
    ("4.5", None), ("3 or 4", None), ("between 3 and 4", None), ("high", None), ("N/A", None), ("6", None),
    ("0", None), ("", None), ("10/10", None), ("Score: 4.0", None),
])
def test_judge_answers_are_read_strictly(answer, score):
    assert parse_score(answer) == score


def test_the_judge_reads_four_scores_from_the_model(captioner):
    script_answers(captioner.model, captioner.processor.tokenizer, "Score: 4")
    verdict = judge_video(captioner, torch.rand(30, 30, 3), _video(6), frames=4)
    assert verdict.scores == dict.fromkeys(ASPECTS, 4) and verdict.mean == 4.0
    assert all(answers == ["Score: 4"] for answers in verdict.answers.values())


def test_an_unreadable_answer_is_asked_again_once_then_reported(captioner):
    script_answers(captioner.model, captioner.processor.tokenizer, "no idea")
    verdict = judge_video(captioner, torch.rand(30, 30, 3), _video(6), frames=4)
    assert verdict.scores == dict.fromkeys(ASPECTS) and verdict.mean is None
    assert verdict.answers["imaging_quality"] == ["no idea", "no idea"]
    assert "imaging_quality: unreadable answers ['no idea', 'no idea']" in verdict.problem()


def test_the_bootstrap_scorer_uses_the_judge_and_never_guesses(files, monkeypatch):
    from dreamactor_core.pose.types import PoseSequence
    from dreamactor_core.train.bootstrap.scorers import BUILTIN_SCORERS
    from dreamactor_core.train.bootstrap.scoring import ScoringInputs

    inputs = ScoringInputs(_video(6), _video(6), torch.rand(30, 30, 3), PoseSequence((), 48, 40), lambda f: None)
    with pytest.raises(DreamActorError, match="--judge-model"):
        BUILTIN_SCORERS["mllm_judge"](inputs)
    scorer = MllmJudgeScorer(files["folder"], frames=4)
    script_answers(scorer.captioner.model, scorer.captioner.processor.tokenizer, "Score: 4")
    assert scorer(inputs) == 4.0
    script_answers(scorer.captioner.model, scorer.captioner.processor.tokenizer, "no idea")
    with pytest.raises(DreamActorError, match="unreadable answers"):
        scorer(inputs)
