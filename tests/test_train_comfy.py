"""A LoRA trained with ``python -m dreamactor_core train pose`` works in ComfyUI: dropped into
models/loras, the shipped pose workflow's LoRA node loads every layer of it, and it changes the
generated canvas (against the same workflow at strength 0)."""

from __future__ import annotations

import pytest
import torch
from repo_scripts import load_script
from train_fixtures import video_folder

from dreamactor_core.app.cli import main
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins

pytestmark = pytest.mark.comfy

TRAINED = "dreamactor_m2/trained_pose_lora.safetensors"


@pytest.fixture(scope="module")
def trained_lora(comfy, tmp_path_factory):
    root = tmp_path_factory.mktemp("train_for_comfy")
    write_tiny_stand_ins(comfy.models_dir, root / "tiny")  # the same seeded tiny transformer --tiny trains
    out = comfy.models_dir / "loras" / TRAINED
    code = main(["train", "pose", "--tiny", "--videos", str(video_folder(root / "videos", frames=9)),
                 "--out", str(out), "--max-steps", "3", "--learning-rate", "0.01", "--cache-dir", str(root / "cache")])
    assert code == 0 and out.is_file()
    return out


def _run_with_lora(comfy, job, strength: float, tag: str) -> tuple[torch.Tensor, str]:
    prompt = job.api_prompt(comfy.object_info(), "pose", tiny=True)
    lora = next(ident for ident, node in prompt.items() if node["class_type"] == "DreamActorM2_LoadLora")
    sampler = next(ident for ident, node in prompt.items() if node["class_type"] == "DreamActorM2_Sampler")
    prompt[lora]["inputs"].update(lora_name=TRAINED, strength=strength)
    prompt["probe_samples"] = {"class_type": "DreamActorTest_Probe", "inputs": {"value": [sampler, 0], "name": f"samples_{tag}"}}
    prompt["probe_report"] = {"class_type": "DreamActorTest_Probe", "inputs": {"value": [lora, 1], "name": f"report_{tag}"}}
    comfy.run(prompt, timeout=1200)
    return comfy.probe(f"samples_{tag}")["samples"], comfy.probe(f"report_{tag}")


def test_trained_lora_loads_in_the_lora_node_and_changes_the_result(comfy, trained_lora):
    job = load_script("run_workflows")
    job.prepare_inputs(comfy.input_dir)
    with_lora, report = _run_with_lora(comfy, job, 1.0, "on")
    without, _ = _run_with_lora(comfy, job, 0.0, "off")
    assert "4 layers matched, 0 unmatched" in report
    assert not torch.allclose(with_lora, without, atol=1e-4)
