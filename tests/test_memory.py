"""The core's memory policy: sizes, the placement decision, block streaming, and that the engine
holds every model through the policy while it computes, also when a progress hook interrupts."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from engine_fixtures import canvas_frames, canvas_mask

from dreamactor_core import sampling
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import memory
from dreamactor_core.models.loading import load_transformer, load_vae
from dreamactor_core.models.lora import load_lora
from dreamactor_core.models.vae import encode_video
from dreamactor_core.testing.tiny_models import tiny_text_conditioning, write_tiny_models

GIB = memory.GIB
LATENT = (1, 32, 3, 4, 8)


class Toy(torch.nn.Module):
    """An embedder, three blocks of different widths and a head: what block streaming sees."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 8)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(8, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)])
        self.head = torch.nn.Linear(8, 2)
        self.register_buffer("scale", torch.ones(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x) * self.scale
        for block in self.blocks:
            x = torch.relu(block(x))
        return self.head(x)


def _nbytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def test_sizes_count_shared_weights_once_and_streaming_keeps_one_block():
    toy = Toy()
    whole = memory.model_bytes(toy)
    assert whole == sum(t.numel() * 4 for t in toy.state_dict().values())
    toy.blocks[2].weight = toy.blocks[1].weight  # tied: one tensor, counted once
    assert memory.model_bytes(toy) == whole - 8 * 8 * 4
    fresh = Toy()
    block = _nbytes(fresh.blocks[0])
    assert memory.streamed_bytes(fresh) == _nbytes(fresh) - 3 * block + block
    assert memory.streamed_bytes(torch.nn.Linear(4, 4)) == _nbytes(torch.nn.Linear(4, 4))  # no blocks: whole


def _place(stream: str, available: float, size: float = 10, streamed: float = 3, reserve: float = 1) -> str:
    return memory.choose_placement("transformer 'big.safetensors'", size=int(size * GIB), streamed=int(streamed * GIB),
                                   available=int(available * GIB), reserve=int(reserve * GIB), stream=stream,
                                   device="cuda:0")


def test_placement_loads_whole_when_it_fits_and_streams_when_it_does_not():
    assert _place("auto", available=11) == memory.FULL
    assert _place("auto", available=10.9) == memory.STREAMED
    assert _place("auto", available=4) == memory.STREAMED
    assert _place("always", available=100) == memory.STREAMED
    assert _place("never", available=0) == memory.FULL  # no budget: as ComfyUI on --highvram / --cpu
    assert _place("always", available=100, streamed=10) == memory.FULL  # nothing to stream


def test_a_model_that_does_not_fit_even_streamed_is_refused_with_its_numbers():
    with pytest.raises(DreamActorError) as error:
        _place("auto", available=3.5)
    message = str(error.value)
    assert "transformer 'big.safetensors'" in message and "cuda:0" in message
    assert "even streamed" in message and "needs 4.00 GiB" in message and "found 3.50 GiB" in message
    assert "10.00 GiB of weights in all" in message
    with pytest.raises(DreamActorError, match="no blocks to stream.*needs 11.00 GiB"):
        _place("always", available=5, streamed=10)


def test_block_streaming_computes_the_same_and_is_removed_cleanly():
    toy, x = Toy().eval(), torch.randn(2, 4)
    expected = toy(x)
    assert memory.streaming_device(toy) is None
    memory.stream_blocks(toy, torch.device("cpu"), torch.device("cpu"))
    assert memory.streaming_device(toy) == torch.device("cpu")
    assert memory.compute_device(toy) == torch.device("cpu")
    assert torch.allclose(toy(x), expected, atol=0, rtol=0)  # CPU to CPU: the same kernels on the same weights
    memory.stop_streaming(toy, torch.device("cpu"))
    assert memory.streaming_device(toy) is None
    assert all(not getattr(m, "_diffusers_hook", None) or not m._diffusers_hook.hooks for m in toy.modules())
    assert torch.equal(toy(x), expected)


class Recording(memory.MemoryPolicy):
    """The plain policy plus a log of what the engine holds, entered and left."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    @contextmanager
    def resident(self, module, name):
        self.log.append(("enter", name))
        try:
            with super().resident(module, name) as device:
                yield device
        finally:
            self.log.append(("leave", name))


@pytest.fixture
def recording():
    policy = Recording()
    previous = memory.set_policy(policy)
    yield policy
    memory.set_policy(previous)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"))


def _sample(model, condition, progress=None):
    return sampling.sample(model, tiny_text_conditioning(), condition, canvas_mask(condition), seed=3, steps=3,
                           cfg=4.0, negative=tiny_text_conditioning(seed=1), progress=progress)


def test_sampler_holds_the_transformer_through_the_policy_and_lets_go_on_interrupt(files, recording):
    model = load_transformer(files["transformer"])
    model = model.with_lora(load_lora(files["lora"], model), 0.8)
    condition = torch.randn(LATENT, generator=torch.Generator().manual_seed(1))
    expected = _sample(model, condition)
    assert recording.log == [("enter", "transformer"), ("leave", "transformer")]

    def interrupt(done, total):
        if done == 2:
            raise KeyboardInterrupt("cancel")

    recording.log.clear()
    with pytest.raises(KeyboardInterrupt):
        _sample(model, condition, progress=interrupt)
    assert recording.log == [("enter", "transformer"), ("leave", "transformer")]
    assert all(not m._forward_hooks for m in model.transformer.modules())  # the LoRA hooks are gone
    # Usable afterwards: the same run gives the same latent (CPU, same kernels; 1e-6 covers nothing but
    # accumulated float32 rounding, while a LoRA applied twice or left off moves it by >1e-3).
    assert torch.allclose(_sample(model, condition), expected, atol=1e-6, rtol=0)


def test_vae_computes_under_the_policy(files, recording):
    vae = load_vae(files["vae"])
    encode_video(vae, canvas_frames(), tile_frames=4, tile_overlap_frames=0, tile_size=0)
    assert recording.log == [("enter", "VAE"), ("leave", "VAE")]


def test_engine_inputs_follow_the_policys_compute_device(files):
    """The sampler puts its inputs where the policy says the model computes, not where its first
    weight happens to be (with block streaming the weights wait on the CPU)."""
    seen = []

    class Elsewhere(memory.MemoryPolicy):
        def compute_device(self, module):
            seen.append(type(module).__name__)
            return torch.device("meta")

    model = load_transformer(files["transformer"])
    previous = memory.set_policy(Elsewhere())
    try:
        with pytest.raises((NotImplementedError, RuntimeError)):  # meta inputs cannot meet CPU weights
            _sample(model, torch.randn(LATENT))
    finally:
        memory.set_policy(previous)
    assert seen == [type(model.transformer).__name__]
