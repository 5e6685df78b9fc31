"""Two CPU processes (DDP over gloo, started by ``accelerate launch --multi_gpu``, which runs
torchrun; without a GPU the loop's Accelerator joins over gloo) with batch 1 each reach the LoRA
weights one process reaches with batch 2: the same clips (the loop seeds clip draws by their index
over all processes), gradients averaged by DDP's all-reduce instead of accumulation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from train_fixtures import tiny_model_paths, video_folder

from dreamactor_core.app.cli import main
from dreamactor_core.models import checkpoints
from dreamactor_core.train.config import make_config
from dreamactor_core.train.loop import train
from dreamactor_core.train.stages import pose_stage

REPO = Path(__file__).resolve().parents[1]
STEPS, LEARNING_RATE = 2, 1e-3


def _train_command(videos: Path, out: Path, cache: Path, batch: int) -> list[str]:
    return ["train", "pose", "--tiny", "--videos", str(videos), "--out", str(out), "--cache-dir", str(cache),
            "--min-frames", "5", "--max-frames", "5", "--max-steps", str(STEPS), "--batch-size", str(batch),
            "--rank", "8", "--learning-rate", str(LEARNING_RATE), "--bone-scale-probability", "0.5", "--seed", "7"]


def test_two_gloo_processes_of_batch_1_equal_one_process_of_batch_2(tmp_path, train_cache):
    videos = video_folder(tmp_path / "clips", frames=9)
    # Extract the poses once here, so the two processes only read the cache.
    pose_stage(videos, make_config({"min_frames": 5, "max_frames": 5}), train_cache, print)
    single = tmp_path / "single.safetensors"
    assert main(_train_command(videos, single, train_cache, batch=2)) == 0
    out = tmp_path / "ddp.safetensors"
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "dreamactor_core",
               *_train_command(videos, out, train_cache, batch=1)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 process(es)" in run.stdout, run.stdout
    assert checkpoints.read_header(out)[1]["step"] == str(STEPS)
    expected, got = checkpoints.load_state_dict(single), checkpoints.load_state_dict(out)
    assert expected.keys() == got.keys()
    # Tolerance: the two runs differ only in float rounding (an all-reduce mean against a sum of
    # halves), ~1e-7 relative in the gradients; AdamW's step is about lr per element, so rounding
    # moves a weight by far less than 1e-6 over 2 steps. Unsynchronised gradients (each process
    # stepping on its own clip) differ by ~lr = 1e-3 per step.
    difference = max((expected[key] - got[key]).abs().max().item() for key in expected)
    assert difference < 1e-6, difference
    # ... and training moved the weights far beyond that (the up matrices start at zero).
    ups = [key for key in expected if "lora_up" in key]
    assert ups, sorted(expected)
    assert min(expected[key].abs().max().item() for key in ups) > 1e-4


def test_fsdp_on_cpu_processes_says_it_does_not_shard(tmp_path, train_cache):
    """accelerate applies its FSDP plugin to GPU processes only: a CPU run trains unsharded and says so."""
    videos = video_folder(tmp_path / "clips", frames=5)
    config = make_config({"min_frames": 5, "max_frames": 5, "max_steps": 1, "rank": 4, "fsdp": True,
                          "gradient_checkpointing": False, "checkpoint_every": 0, "sample_every": 0,
                          "width": 64, "height": 64, "driving_mask_seconds": 0.25})
    messages: list[str] = []
    result = train(pose_stage(videos, config, train_cache, messages.append), tiny_model_paths(tmp_path), config,
                   tmp_path / "fsdp.safetensors", cache_dir=train_cache, log=messages.append)
    assert result.step == 1
    assert any(m.startswith("--fsdp: not sharding (NO run") for m in messages), messages
