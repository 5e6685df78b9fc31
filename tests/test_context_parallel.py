"""Context-parallel sampling (``models/parallel.py``): two CPU processes over gloo, started by
torchrun, give the single process's velocity and 2-step sample on the tiny HunyuanVideo 1.5.

Run as a script (``torchrun --standalone --nproc_per_node 2 tests/test_context_parallel.py OUT``) this
file is the worker: every process computes the single-process results itself, then the same under
``context_parallel``, and process 0 saves both. Token and text counts are odd, so the shares are
uneven (diffusers' "Ulysses anything"), and the velocity batch has padded text, so the key mask
is split and all-gathered too.

Tolerance: fp32. Each process attends over all keys for half the heads; the only differences from
one process are the order of the keys in the softmax sums (the tokens come back grouped by
process: video and text of process 0, then of process 1) and matrix products over fewer rows,
i.e. float rounding: measured max |difference| 4.2e-7 on a velocity of magnitude up to 2.1 and
7.2e-7 after 2 sampling steps on a latent up to 4.5 (rounding carried through 4 forwards). ``TOL`` = 1e-5 leaves room;
any token missing from a process's attention, or tokens gathered in the wrong order, moves the
result by more than 1e-2 (the mutations in the report).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamactor_core.app.cli import main
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import attention, parallel
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.loading import DreamActorModel
from dreamactor_core.testing.tiny_models import build_tiny_transformer, tiny_text_conditioning

REPO = Path(__file__).resolve().parents[1]
ADAPTER = get_adapter("hunyuan_video_15")
TOL = dict(rtol=1e-5, atol=1e-5)
VELOCITY_LATENT = (2, 65, 3, 3, 5)  # 45 video tokens: shares of 23 and 22
SAMPLE_LATENT = (1, 32, 3, 3, 6)  # 54 video tokens


def _padded_conditioning() -> dict[str, torch.Tensor]:
    """A batch of 2 prompts of 7 and 5 valid text tokens (of 8) and 3 and 2 glyph tokens (of 4): the
    batch keeps 7 + 3 = 10 text tokens, the second row padded, so the key mask is in play."""
    generator = torch.Generator().manual_seed(3)
    return {"encoder_hidden_states": torch.randn(2, 8, 32, generator=generator),
            "encoder_attention_mask": torch.stack([torch.arange(8) < 7, torch.arange(8) < 5]).long(),
            "encoder_hidden_states_2": torch.randn(2, 4, 16, generator=generator),
            "encoder_attention_mask_2": torch.stack([torch.arange(4) < 3, torch.arange(4) < 2]).long()}


def _velocity(model: DreamActorModel) -> torch.Tensor:
    latent = torch.randn(VELOCITY_LATENT, generator=torch.Generator().manual_seed(1))
    cpu = torch.device("cpu")
    text = ADAPTER.prepare_conditioning(model.transformer, _padded_conditioning(), 2, cpu, torch.float32)
    with torch.inference_mode():
        return ADAPTER.predict_velocity(model.transformer, latent, torch.tensor([700.0, 300.0]), text)


def _sample(model: DreamActorModel) -> torch.Tensor:
    from dreamactor_core.sampling import sample

    condition = torch.randn(SAMPLE_LATENT, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 1, *SAMPLE_LATENT[2:])
    mask[:, :, 0, :, :3] = 1
    mask[:, :, :, :, 3:] = 1
    return sample(model, tiny_text_conditioning(), condition, mask, negative=tiny_text_conditioning(seed=1),
                  seed=4, steps=2, cfg=2.0, shift=5.0)


def _worker(out: Path) -> None:
    """One of the torchrun processes: single-process results, then the context-parallel ones."""
    import torch.distributed as dist

    dist.init_process_group("cpu:gloo")
    model = DreamActorModel(build_tiny_transformer(), ADAPTER, "tiny")
    transformer = model.transformer
    shares: list[int] = []
    with attention.configured(transformer, "sdpa"):
        single = {"velocity": _velocity(model), "sample": _sample(model)}
        with parallel.context_parallel(transformer) as world:
            hook = transformer.transformer_blocks[0].register_forward_hook(
                lambda module, args, output: shares.append(output[0].shape[1]))
            split = {"velocity": _velocity(model)}
            hook.remove()
            split["sample"] = _sample(model)
        after = _velocity(model)
    processor = transformer.transformer_blocks[0].attn.processor
    if dist.get_rank() == 0:
        torch.save({"single": single, "split": split, "after": after, "world": world, "shares": shares,
                    "hooks_left": sum(len(m._diffusers_hook.hooks) for m in transformer.modules()
                                      if hasattr(m, "_diffusers_hook")) + len(transformer.proj_out._forward_hooks),
                    "config_left": processor._parallel_config is not None}, out / "results.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("context-parallel")
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", __file__, str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]
    return torch.load(out / "results.pt", weights_only=True)


def test_two_gloo_processes_give_one_process_velocity(results):
    assert results["world"] == 2
    # Each process ran the blocks on its share of the 45 video tokens only (23 on process 0) ...
    assert results["shares"] and set(results["shares"]) == {23}, results["shares"]
    expected, got = results["single"]["velocity"], results["split"]["velocity"]
    assert got.shape == expected.shape == (2, 32, 3, 3, 5)
    # ... and still returns the whole velocity, equal to one process's.
    torch.testing.assert_close(got, expected, **TOL)


def test_two_gloo_processes_give_one_process_sample(results):
    expected, got = results["single"]["sample"], results["split"]["sample"]
    assert got.shape == expected.shape == SAMPLE_LATENT
    torch.testing.assert_close(got, expected, **TOL)
    assert (expected - torch.randn(SAMPLE_LATENT, generator=torch.Generator().manual_seed(4))).abs().max() > 0.1


def test_the_model_is_unchanged_after_the_parallel_run(results):
    assert results["hooks_left"] == 0 and not results["config_left"]
    torch.testing.assert_close(results["after"], results["single"]["velocity"], **TOL)


def test_without_a_process_group_it_says_how_to_start():
    model = build_tiny_transformer()
    with pytest.raises(DreamActorError, match="torchrun"), parallel.context_parallel(model):
        pass
    assert model.transformer_blocks[0].attn.processor._parallel_config is None


def test_torchrun_group_outside_torchrun_says_how_to_start(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(DreamActorError, match="torchrun --nproc_per_node"), parallel.torchrun_group("cpu"):
        pass


def test_a_model_without_a_plan_is_named():
    with pytest.raises(DreamActorError, match="Linear"):
        parallel.plan_for(torch.nn.Linear(2, 2))


def test_animate_under_torchrun_writes_the_video_once(tmp_path):
    """The launch as artists type it; the values are checked above (the mp4 path is not bit-stable:
    two single-process runs of this command already differ by up to 28 levels)."""
    from PIL import Image
    from real_data import skimage_photo, template_clip

    from dreamactor_core.video_io import read_clip

    Image.fromarray(skimage_photo("chelsea")).save(tmp_path / "cat.png")
    out = tmp_path / "out.mp4"
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2",
               "-m", "dreamactor_core", "animate", "--reference", str(tmp_path / "cat.png"), "--driving",
               str(template_clip()), "--mode", "rgb", "--out", str(out), "--width", "64", "--height", "64",
               "--max-frames", "9", "--steps", "2", "--no-transition", "--tiny", "--context-parallel"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.count("wrote ") == 1, run.stdout  # process 0 writes, process 1 stays silent
    assert len(read_clip(out).frames) == 9


@pytest.mark.parametrize("flag", [["--cache-threshold", "0.2"], ["--compile"]])
def test_cli_refuses_context_parallel_with_per_process_choices(tmp_path, capsys, flag):
    code = main(["animate", "--reference", str(tmp_path / "missing.png"), "--driving", str(tmp_path / "missing.mp4"),
                 "--out", str(tmp_path / "out.mp4"), "--tiny", "--context-parallel", *flag])
    assert code == 2
    assert "--context-parallel: not with --cache-threshold or --compile" in capsys.readouterr().err


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
