"""Backbone adapters: loading every checkpoint layout, detection, conversion tables, bad files."""

from __future__ import annotations

import pytest
import torch
from numerics import TINY_MODEL_REDUCTION, assert_float32_close
from safetensors.torch import save_file

from dreamactor_core.errors import DreamActorError, MissingModelFile
from dreamactor_core.models.backbones import detect, get_adapter
from dreamactor_core.models.backbones.hunyuan_video_15 import rope_axes_for
from dreamactor_core.models.checkpoints import read_header
from dreamactor_core.models.loading import load_transformer, load_vae
from dreamactor_core.testing.tiny_models import (
    TINY_TRANSFORMER_CONFIGS,
    build_tiny_transformer,
    tiny_text_conditioning,
    write_tiny_models,
)

ADAPTER = get_adapter("hunyuan_video_15")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("models"))


def _forward(model) -> torch.Tensor:
    hidden = torch.randn(1, 65, 3, 4, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return model.adapter.predict_velocity(model.transformer, hidden, torch.tensor([700.0]), model.adapter.prepare_conditioning(
            model.transformer, tiny_text_conditioning(), 1, torch.device("cpu"), torch.float32))


def test_folder_original_and_comfy_files_give_identical_outputs(tiny):
    models = [load_transformer(tiny[key]) for key in ("transformer_folder", "transformer", "transformer_comfy")]
    states = [model.transformer.state_dict() for model in models]
    assert all(state.keys() == states[0].keys() for state in states)
    assert all(torch.equal(state[k], states[0][k]) for state in states[1:] for k in state)  # stored weights: exact
    outputs = [_forward(model) for model in models]
    assert outputs[0].shape == (1, 32, 3, 4, 8) and torch.isfinite(outputs[0]).all()
    # The same weights from three layouts may sit at other storage offsets and take other GEMM
    # kernels: equal up to float32 summation order (numerics.py), not bit for bit.
    assert_float32_close(outputs[1], outputs[0], TINY_MODEL_REDUCTION)
    assert_float32_close(outputs[2], outputs[0], TINY_MODEL_REDUCTION)


def test_vae_folder_and_single_file_hold_identical_weights(tiny):
    folder, single = load_vae(tiny["vae_folder"]).vae.state_dict(), load_vae(tiny["vae"]).vae.state_dict()
    assert folder.keys() == single.keys() and all(torch.equal(folder[k], single[k]) for k in folder)  # stored


def test_fp8_storage_and_block_offload_keep_the_model_usable(tiny):
    reference = _forward(load_transformer(tiny["transformer"]))
    offloaded = _forward(load_transformer(tiny["transformer"], block_offload=True))
    fp8 = load_transformer(tiny["transformer"], fp8_weights=True)
    assert_float32_close(offloaded, reference, TINY_MODEL_REDUCTION)  # weights moved between devices: other storage
    assert torch.float8_e4m3fn in {p.dtype for p in fp8.transformer.parameters()}
    assert float((_forward(fp8) - reference).norm() / reference.norm()) < 0.05


def test_single_file_config_is_read_from_shapes(tiny):
    config = load_transformer(tiny["transformer"]).transformer.config
    for key, value in TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"].items():
        assert tuple(config[key]) == tuple(value) if isinstance(value, tuple) else config[key] == value


def test_original_names_round_trip():
    state = build_tiny_transformer().state_dict()
    original = ADAPTER.to_original_names(state)
    assert "double_blocks.0.img_mlp.fc1.weight" in original and "txt_in.individual_token_refiner.blocks.0.self_attn_qkv.weight" in original
    back, _ = ADAPTER.transformer_to_diffusers(ADAPTER.to_comfy_names(original))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)  # stored weights


def test_rope_split_matches_shipped_and_tiny_configs():
    assert rope_axes_for(128) == [16, 56, 56]
    assert rope_axes_for(16) == [4, 6, 6]


def test_visual_ffn_modules_are_the_image_stream_only():
    names = ADAPTER.visual_ffn_modules(build_tiny_transformer())
    assert len(names) == 2 * TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"]["num_layers"]
    assert all(".ff.net." in name and "ff_context" not in name for name in names)
    assert ADAPTER.foreign_module_names("transformer_blocks.1.ff.net.2") == {
        "original": "double_blocks.1.img_mlp.fc2", "comfy": "double_blocks.1.img_mlp.2"}


def test_detect_names_the_wrong_kind_of_file(tiny, tmp_path):
    with pytest.raises(DreamActorError, match="HunyuanVideo 1.5 VAE"):
        load_transformer(tiny["vae"])
    with pytest.raises(DreamActorError, match="a LoRA"):
        load_transformer(tiny["lora_kohya"])
    wan = tmp_path / "wan.safetensors"
    save_file({"patch_embedding.weight": torch.zeros(4, 16, 1, 2, 2), "head.modulation": torch.zeros(1, 2, 4)}, str(wan))
    with pytest.raises(DreamActorError, match="a Wan transformer"):  # text-to-video: no canvas channels
        load_transformer(wan)
    with pytest.raises(DreamActorError, match="HunyuanVideo 1.5 transformer"):
        load_vae(tiny["transformer"])
    keys, _ = read_header(tiny["transformer_comfy"])
    assert detect(keys, "transformer") is ADAPTER


def test_truncated_and_non_safetensors_files_are_clear_errors(tiny, tmp_path):
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(tiny["transformer"].read_bytes()[:100_000])
    with pytest.raises(DreamActorError, match="truncated"):
        load_transformer(truncated)
    tiny_file = tmp_path / "empty.safetensors"
    tiny_file.write_bytes(b"abc")
    with pytest.raises(DreamActorError, match="truncated or empty"):
        load_transformer(tiny_file)
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04")
    with pytest.raises(DreamActorError, match="no pickle"):
        load_transformer(pickle)
    with pytest.raises(MissingModelFile) as missing:
        load_transformer(tmp_path / "absent.safetensors")
    assert missing.value.folder == "diffusion_models"
