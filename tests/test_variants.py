"""HunyuanVideo 1.5 releases recognised from their files, and the sampler's defaults for each:
cfg 1 for the distilled ones, 8 steps, shift 7 and the MeanFlow ``timestep_r`` for step-distilled."""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import canvas_mask
from safetensors.torch import save_file

from dreamactor_core import sampling
from dreamactor_core.errors import DreamActorError
from dreamactor_core.models import variants
from dreamactor_core.models.backbones import get_adapter
from dreamactor_core.models.loading import DreamActorModel, load_transformer
from dreamactor_core.sampling.schedules import sigma_schedule
from dreamactor_core.testing.tiny_models import TINY_TRANSFORMER_CONFIGS, tiny_text_conditioning

LATENT = (1, 32, 3, 4, 8)
ADAPTER = get_adapter("hunyuan_video_15")


def _write(path, meanflow=False, extra=None):
    """A tiny HunyuanVideo 1.5 transformer file in the original (Tencent/Comfy-Org) key names."""
    cls = ADAPTER.transformer_cls()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = cls(**TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"], use_meanflow=meanflow)
    original = ADAPTER.to_original_names(transformer.state_dict())
    save_file({k: v.contiguous() for k, v in {**original, **(extra or {})}.items()}, str(path))
    return path


# Comfy-Org's repackaged names, Tencent's folder names and diffusers' community folder names.
@pytest.mark.parametrize("name, meanflow, expected", [
    ("hunyuanvideo1.5_480p_i2v_fp16.safetensors", False, ("480p_i2v", 6.0, 5.0, 30)),
    ("hunyuanvideo1.5_720p_i2v_fp8_scaled.safetensors", False, ("720p_i2v", 6.0, 7.0, 30)),
    ("hunyuanvideo1.5_480p_i2v_cfg_distilled_fp16.safetensors", False, ("480p_i2v_cfg_distilled", 1.0, 5.0, 30)),
    ("transformer/720p_i2v_distilled", False, ("720p_i2v_cfg_distilled", 1.0, 7.0, 30)),
    ("hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors", True, ("480p_i2v_step_distilled", 1.0, 7.0, 8)),
    ("renamed_by_the_artist.safetensors", True, ("480p_i2v_step_distilled", 1.0, 7.0, 8)),  # the weights say it
])
def test_release_names_and_weights_give_the_defaults(name, meanflow, expected):
    keys = ["img_in.proj.weight", *(["time_r_in.mlp.0.weight"] if meanflow else [])]
    variant = variants.hunyuan_video_15_variant(name, keys)
    assert (variant.name, variant.cfg, variant.shift, variant.steps) == expected
    assert variant.meanflow == meanflow


def test_a_diffusers_720p_config_is_720p_without_a_telling_name():
    variant = variants.hunyuan_video_15_variant("transformer", config={"target_size": 960, "use_meanflow": False})
    assert (variant.name, variant.shift) == ("720p_i2v", 7.0)


def test_loaded_files_are_recognised(tmp_path):
    step = load_transformer(_write(tmp_path / "my_fast_model.safetensors", meanflow=True))
    cfg = load_transformer(_write(tmp_path / "hunyuanvideo1.5_480p_i2v_cfg_distilled_fp16.safetensors"))
    assert variants.model_variant(step).name == "480p_i2v_step_distilled"
    assert variants.model_variant(cfg).name == "480p_i2v_cfg_distilled"


def test_files_no_release_is_are_refused(tmp_path):
    guidance = {"guidance_in.mlp.0.weight": torch.zeros(32, 256), "guidance_in.mlp.0.bias": torch.zeros(32)}
    with pytest.raises(DreamActorError, match="guidance embedder"):
        load_transformer(_write(tmp_path / "guided.safetensors", extra=guidance))
    with pytest.raises(DreamActorError, match="98 input channels|super-resolution"):
        variants.check_hunyuan_video_15(["img_in.proj.weight"], 98)


class Recorder(type(ADAPTER)):
    """The real adapter, recording what each forward receives."""

    def __init__(self):
        self.calls = []

    def predict_velocity(self, transformer, model_input, timestep, conditioning):
        self.calls.append((float(timestep[0]), conditioning.get("timestep_r")))
        return super().predict_velocity(transformer, model_input, timestep, conditioning)


@pytest.fixture(scope="module")
def step_distilled(tmp_path_factory):
    return load_transformer(_write(tmp_path_factory.mktemp("m") / "hv15_480p_i2v_step_distilled.safetensors", True))


def _sample(model, **kwargs):
    condition = torch.randn(LATENT, generator=torch.Generator().manual_seed(1))
    return sampling.sample(model, tiny_text_conditioning(), condition, canvas_mask(condition), seed=3, **kwargs)


def test_step_distilled_defaults_and_timestep_r(step_distilled):
    """No negative needed (cfg 1), 8 steps at shift 7, and each forward told the level its step
    lands on, x 1000 like the timestep (0 on the last step), as Tencent's and diffusers' pipelines do."""
    recorder = Recorder()
    _sample(DreamActorModel(step_distilled.transformer, recorder, step_distilled.source))
    sigmas = sigma_schedule(8, 7.0)
    assert [t for t, _ in recorder.calls] == pytest.approx([s * 1000 for s in sigmas[:-1]], rel=1e-6)
    assert [float(r[0]) for _, r in recorder.calls] == pytest.approx([s * 1000 for s in sigmas[1:]], rel=1e-6, abs=1e-6)


def test_heun_corrector_lands_on_the_following_level(step_distilled):
    recorder = Recorder()
    _sample(DreamActorModel(step_distilled.transformer, recorder, step_distilled.source), steps=3, solver="heun")
    sigmas = sigma_schedule(3, 7.0)
    landing = dict(zip(sigmas[:-1], sigmas[1:]))
    for t, r in recorder.calls:
        level = min(landing, key=lambda s: abs(s * 1000 - t))
        assert float(r[0]) == pytest.approx(landing[level] * 1000, rel=1e-6, abs=1e-6)


def test_timestep_r_changes_the_result(step_distilled):
    """The MeanFlow input is used by the model: leaving it out gives another video."""
    fed = _sample(step_distilled, steps=2)

    class Dropping(type(ADAPTER)):
        def predict_velocity(self, transformer, model_input, timestep, conditioning):
            return super().predict_velocity(transformer, model_input, timestep,
                                            {k: v for k, v in conditioning.items() if k != "timestep_r"})

    dropped = _sample(DreamActorModel(step_distilled.transformer, Dropping(), step_distilled.source), steps=2)
    assert float((fed - dropped).norm() / fed.norm()) > 1e-3


def test_explicit_settings_win_and_base_files_keep_cfg(step_distilled, tmp_path):
    recorder = Recorder()
    _sample(DreamActorModel(step_distilled.transformer, recorder, step_distilled.source), steps=3, shift=2.0)
    assert [t for t, _ in recorder.calls] == pytest.approx([s * 1000 for s in sigma_schedule(3, 2.0)[:-1]], rel=1e-6)
    base = load_transformer(_write(tmp_path / "hunyuanvideo1.5_480p_i2v_fp16.safetensors"))
    with pytest.raises(DreamActorError, match="negative"):  # the base release defaults to cfg 6
        _sample(base, steps=2)
    base_recorder = Recorder()
    _sample(DreamActorModel(base.transformer, base_recorder, base.source), steps=2, cfg=1.0)
    assert all(r is None for _, r in base_recorder.calls)
