"""The pack's models under ComfyUI's model management, inside real ComfyUI (--cpu), running the
shipped pose workflow on the tiny stand-ins.

What ComfyUI's model management holds is read at the moment each model computes (a test-only
``DreamActorTest_Watch`` node hooks the model's first forward) and between runs (the probe pack's
``/dreamactor_test/memory`` route). Without a GPU the CPU is the compute device: every byte stays
in the same RAM, so these tests prove the bookkeeping and the decisions (what ComfyUI loads,
evicts, streams and refuses, and that results do not change), not GPU memory. The eviction,
streaming and refusal decisions are exercised with a simulated device (the probe pack's
``simulate_device_budget``): ComfyUI then counts loaded bytes against a budget as it counts a
GPU's, in the VRAM state a GPU would have. ComfyUI refuses --lowvram/--novram/--highvram beside
--cpu, so those flags are tested through the states they set (LOW_VRAM, HIGH_VRAM).
"""

from __future__ import annotations

import time

import pytest
import torch
from repo_scripts import load_script

from comfy_harness.server import PromptFailed
from dreamactor_core.app.default_models import DEFAULT_MODELS
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins

pytestmark = pytest.mark.comfy

NAMES = {role: DEFAULT_MODELS[role].name for role in ("transformer", "vae", "text_encoder", "image_encoder")}
# Where each model computes in the workflow: (consumer node, its input, the module to watch).
POINTS = {
    "text_encoder": ("DreamActorM2_TextEncode", "text_encoder", "mllm"),
    "image_encoder": ("DreamActorM2_ReferenceImageEmbed", "image_encoder", "model"),
    "vae_encode": ("DreamActorM2_EncodeCanvas", "vae", "vae.encoder"),
    "transformer": ("DreamActorM2_Sampler", "model", "transformer"),
    "vae_decode": ("DreamActorM2_DecodeLatent", "vae", "vae.decoder"),
}


@pytest.fixture(scope="module")
def job(comfy_fresh, tmp_path_factory):
    job = load_script("run_workflows")
    write_tiny_stand_ins(comfy_fresh.models_dir, tmp_path_factory.mktemp("tiny"))
    job.prepare_inputs(comfy_fresh.input_dir)
    return job


def _prompt(server, job, tag: str, watch: tuple[str, ...], *, text: str = "", seed: int = 42,
            interrupt: bool = False, decode: bool = True) -> dict:
    """The shipped pose workflow (tiny sizes) with Watch nodes before ``watch`` points, the prompt's
    appearance made unique by ``text`` (so the text encoder computes again) and a probe on the
    sampled latent (``<tag>_latent``). ``decode=False`` drops the saving nodes, so the run ends at
    the sampler (ComfyUI runs only what its outputs need)."""
    prompt = job.api_prompt(server.object_info(), "pose", tiny=True)
    if not decode:
        prompt = {ident: node for ident, node in prompt.items() if node["class_type"] != "SaveVideo"}
    by_class = {node["class_type"]: ident for ident, node in prompt.items()}
    prompt[by_class["DreamActorM2_TargetOrientedPrompt"]]["inputs"]["appearance"] += text
    prompt[by_class["DreamActorM2_Sampler"]]["inputs"]["seed"] = seed
    for number, point in enumerate(watch):
        consumer, input_name, attribute = POINTS[point]
        inputs = prompt[by_class[consumer]]["inputs"]
        ident = f"90{number}"
        prompt[ident] = {"class_type": "DreamActorTest_Watch", "inputs": {
            "value": inputs[input_name], "name": f"{tag}_{point}", "attribute": attribute,
            "interrupt": interrupt and point == "transformer"}}
        inputs[input_name] = [ident, 0]
    prompt["999"] = {"class_type": "DreamActorTest_Probe",
                     "inputs": {"value": [by_class["DreamActorM2_Sampler"], 0], "name": f"{tag}_latent"}}
    return prompt


def _memory(server) -> dict:
    return server.get("/dreamactor_test/memory")


def _pack(models: list[dict]) -> dict[str, dict]:
    return {model["name"]: model for model in models if model["pack"]}


def _budget(server, count: int | None, state: str = "NORMAL_VRAM") -> None:
    server.post("/dreamactor_test/device_budget", {"bytes": count, "state": state})


def _free(server) -> dict:
    """POST /free {"unload_models": true} until ComfyUI has acted on it: its worker takes the flag
    when woken, and a wake-up sent while it is busy after a prompt (collecting garbage) is lost."""
    deadline = time.monotonic() + 30
    while _pack(_memory(server)["models"]) and time.monotonic() < deadline:
        server.post("/free", {"unload_models": True})
        time.sleep(0.5)
    return _memory(server)


def test_each_node_loads_its_own_model_and_free_unloads_every_pack_model(comfy_fresh, job):
    server = comfy_fresh
    assert _pack(_memory(server)["models"]) == {}
    server.run(_prompt(server, job, "a", tuple(POINTS)), timeout=1200)
    seen = {point: server.probe(f"a_{point}") for point in POINTS}
    at = {point: _pack(snapshot["loaded"]) for point, snapshot in seen.items()}
    # Each model is loaded whole on the compute device when its node computes, and not before.
    expected = {"text_encoder": NAMES["text_encoder"], "image_encoder": NAMES["image_encoder"],
                "vae_encode": NAMES["vae"], "transformer": NAMES["transformer"], "vae_decode": NAMES["vae"]}
    for point, name in expected.items():
        model = at[point][name]
        assert (model["device"], model["placement"]) == ("cpu", "full"), point
        assert model["loaded"] == model["size"] > 0, point
        assert not seen[point]["streaming"]
    assert NAMES["transformer"] not in at["text_encoder"]  # the loaders loaded nothing
    assert NAMES["transformer"] not in at["vae_encode"]
    # ComfyUI's /free unloads every pack model (it knows them all).
    assert set(_pack(_memory(server)["models"])) >= set(NAMES.values())
    assert _pack(_free(server)["models"]) == {}


def test_encoders_make_room_for_the_sampler_which_streams_or_refuses_by_the_device_budget(comfy_fresh, job):
    server = comfy_fresh
    server.run(_prompt(server, job, "b1", ("transformer",), text=" b", decode=False), timeout=1200)
    sizes = {name: model["size"] for name, model in _pack(_memory(server)["models"]).items()}
    reserve = _memory(server)["reserve"]
    streamed = _streamed_transformer_bytes(server)
    assert 0 < streamed < sizes[NAMES["transformer"]]
    _free(server)
    try:
        # Room for the transformer or the text encoder, not both: loading the transformer evicts the
        # text encoder, whole although half of it would make room (a half-loaded module cannot run).
        both = sizes[NAMES["transformer"]], sizes[NAMES["text_encoder"]]
        _budget(server, reserve + max(both) + min(both) // 2)
        server.run(_prompt(server, job, "b2", ("text_encoder", "transformer"), text=" b2", seed=7, decode=False), timeout=1200)
        assert _pack(server.probe("b2_text_encoder")["loaded"])[NAMES["text_encoder"]]["placement"] == "full"
        sampling = _pack(server.probe("b2_transformer")["loaded"])
        assert NAMES["text_encoder"] not in sampling
        assert sampling[NAMES["transformer"]]["loaded"] == sizes[NAMES["transformer"]]

        # Room for the transformer's non-block weights and one block: it streams, same latent.
        _budget(server, reserve + streamed + 1)
        server.run(_prompt(server, job, "b3", ("transformer",), text=" b2", seed=7, decode=False), timeout=1200)
        snapshot = server.probe("b3_transformer")
        assert snapshot["streaming"] and snapshot["weights_on"] == ["cpu"]
        assert NAMES["transformer"] not in _pack(snapshot["loaded"])  # nothing of it stays loaded
        # Same kernels on the same CPU weights; 1e-6 is float32 rounding, a wrong block order or a
        # skipped block moves the latent by far more.
        assert torch.allclose(server.probe("b3_latent")["samples"], server.probe("b2_latent")["samples"],
                              atol=1e-6, rtol=0)

        # No room even streamed: a clear refusal, and nothing was loaded or evicted for it.
        _budget(server, reserve + streamed - 1)
        before = _pack(_memory(server)["models"])
        with pytest.raises(PromptFailed) as failure:
            server.run(_prompt(server, job, "b4", ("transformer",), text=" b2", seed=8, decode=False), timeout=1200)
        message = failure.value.exception_message
        assert f"transformer '{NAMES['transformer']}'" in message and "does not fit" in message
        assert "even streamed" in message and "needs" in message and "found" in message
        assert _pack(_memory(server)["models"]) == before
    finally:
        _budget(server, None)


def _streamed_transformer_bytes(server) -> int:
    """The transformer's bytes when streamed (non-block weights + its largest block), from the file."""
    from dreamactor_core.models.loading import load_transformer
    from dreamactor_core.models.memory import streamed_bytes

    path = server.models_dir / DEFAULT_MODELS["transformer"].folder / NAMES["transformer"]
    return streamed_bytes(load_transformer(path).transformer)


def test_an_interrupt_inside_the_sampler_unloads_the_transformer_and_leaves_it_usable(comfy_fresh, job):
    server = comfy_fresh
    server.run(_prompt(server, job, "c1", ("transformer",), text=" c", seed=11, decode=False), timeout=1200)
    _free(server)
    with pytest.raises(PromptFailed, match="execution_interrupted"):
        server.run(_prompt(server, job, "c2", ("transformer",), text=" c", seed=11, interrupt=True, decode=False), timeout=1200)
    assert NAMES["transformer"] in _pack(server.probe("c2_transformer")["loaded"])  # it was loaded when hit
    assert NAMES["transformer"] not in _pack(_memory(server)["models"])  # and unloaded by the interrupt
    server.run(_prompt(server, job, "c3", ("transformer",), text=" c", seed=11, decode=False), timeout=1200)
    # The same latent as before the interrupt: the LoRA hooks were removed (not doubled) and the
    # weights are intact (float32 rounding tolerance, as above).
    assert torch.allclose(server.probe("c3_latent")["samples"], server.probe("c1_latent")["samples"],
                          atol=1e-6, rtol=0)


def test_lowvram_streams_the_block_models_and_highvram_loads_whole_without_a_budget(comfy_fresh, job):
    """LOW_VRAM is the state --lowvram sets (ComfyUI refuses the flag beside --cpu, so the state is set)."""
    server = comfy_fresh
    try:
        _budget(server, 1 << 50, "LOW_VRAM")
        server.run(_prompt(server, job, "d1", ("text_encoder", "transformer", "vae_decode"), text=" d"), timeout=1200)
        for point, name in (("transformer", NAMES["transformer"]), ("text_encoder", NAMES["text_encoder"])):
            snapshot = server.probe(f"d1_{point}")
            assert snapshot["streaming"] and snapshot["weights_on"] == ["cpu"], point
            assert name not in _pack(snapshot["loaded"]), point  # ComfyUI holds none of it on the device
        decode = _pack(server.probe("d1_vae_decode")["loaded"])[NAMES["vae"]]
        assert not server.probe("d1_vae_decode")["streaming"]  # no blocks to stream: loaded whole
        assert decode["loaded"] == decode["size"] and decode["placement"] == "full"
        assert NAMES["transformer"] not in _pack(_memory(server)["models"])
        # HIGH_VRAM (--highvram, --gpu-only): whole, never streamed, no budget check (as ComfyUI).
        _free(server)
        _budget(server, 0, "HIGH_VRAM")
        server.run(_prompt(server, job, "d2", ("transformer",), text=" d", seed=5, decode=False), timeout=1200)
        snapshot = server.probe("d2_transformer")
        assert not snapshot["streaming"] and _pack(snapshot["loaded"])[NAMES["transformer"]]["placement"] == "full"
    finally:
        _budget(server, None)
