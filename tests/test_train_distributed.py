"""Two CPU processes (DDP over gloo, started by ``accelerate launch --multi_gpu``, which runs
torchrun; without a GPU the loop's Accelerator joins over gloo) train the same LoRA layout as one
process: the multi-GPU path runs end to end without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from train_fixtures import tiny_config, tiny_model_paths, video_folder

from dreamactor_core.models import checkpoints
from dreamactor_core.train.loop import train
from dreamactor_core.train.stages import pose_stage

REPO = Path(__file__).resolve().parents[1]


def test_two_gloo_processes_train_the_same_lora_layout(tmp_path, train_cache):
    videos = video_folder(tmp_path / "clips", frames=5)
    config = tiny_config(min_frames=5, max_frames=5, max_steps=1)
    pose_stage(videos, config, train_cache, print)  # extract once here, so the two processes only read the cache
    single = train(pose_stage(videos, config, train_cache, print), tiny_model_paths(tmp_path), config,
                   tmp_path / "single.safetensors", cache_dir=train_cache, log=print)
    out = tmp_path / "ddp.safetensors"
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "dreamactor_core", "train", "pose",
               "--tiny", "--videos", str(videos), "--out", str(out), "--cache-dir", str(train_cache),
               "--min-frames", "5", "--max-frames", "5", "--max-steps", "2", "--batch-size", "1", "--rank", "8"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 process(es)" in run.stdout, run.stdout
    keys, metadata = checkpoints.read_header(out)
    expected, _ = checkpoints.read_header(single.lora)
    assert keys == expected and len(keys) == 8
    assert metadata["step"] == "2"
