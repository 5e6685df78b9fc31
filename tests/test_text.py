"""Text (and reference-image) conditioning for HunyuanVideo 1.5: tiny real encoders on CPU."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from numerics import TINY_MODEL_REDUCTION, assert_float32_close

from dreamactor_core.conditioning import text_encoder
from dreamactor_core.conditioning.embedding_cache import EmbeddingCache
from dreamactor_core.conditioning.from_comfy import from_comfy_conditioning
from dreamactor_core.conditioning.image_encoder import load_image_encoder, to_uint8_rgb
from dreamactor_core.conditioning.text_encoder import glyph_text, load_text_encoder
from dreamactor_core.conditioning.types import TEXT_KEYS, Conditioning
from dreamactor_core.errors import DreamActorError, MissingModelFile
from dreamactor_core.testing.tiny_encoders import write_tiny_encoders

PROMPT = 'a gray bird with colorful feathers is waving its wings'
GLYPH_PROMPT = 'a robot holds a sign that says "HELLO" and “世界”'


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return write_tiny_encoders(root / "text_encoders", root / "clip_vision")


@pytest.fixture(scope="module")
def encoder(files):
    return load_text_encoder(files["pipeline"])


def _pipeline_class():
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import (
        HunyuanVideo15ImageToVideoPipeline,
    )
    return HunyuanVideo15ImageToVideoPipeline


def _fresh(encoder, cache: EmbeddingCache | None = None):
    """The same models with a private cache, so a test sees its own hits and misses."""
    return text_encoder.HunyuanVideo15TextEncoder(encoder.mllm, encoder.tokenizer, encoder.glyph, encoder.glyph_tokenizer,
                                          identity=encoder.identity, cache=cache or EmbeddingCache())


# ----- shapes, masks and equality with diffusers' pipeline -----

def test_shapes_and_masks(encoder):
    conditioning = encoder.encode(PROMPT)
    tensors = conditioning.tensors
    assert conditioning.backbone == "hunyuan_video_15" and conditioning.prompt == PROMPT
    assert tensors["encoder_hidden_states"].shape == (1, text_encoder.MLLM_MAX_TOKENS, 32)
    mask = tensors["encoder_attention_mask"]
    assert mask.shape == (1, text_encoder.MLLM_MAX_TOKENS)
    # One token per byte: the prompt, then the template's tail "<|im_end|>\n<|im_start|>assistant\n".
    valid = len(PROMPT.encode()) + len("\nassistant\n") + 2
    assert mask.sum() == valid and mask[0, :valid].all() and not mask[0, valid:].any()
    # No quoted text: zero glyph embeddings with an all-zero mask, as the pipeline feeds.
    assert tensors["encoder_hidden_states_2"].shape == (1, text_encoder.GLYPH_MAX_TOKENS, 16)
    assert not tensors["encoder_hidden_states_2"].any() and not tensors["encoder_attention_mask_2"].any()


def test_glyph_text_matches_diffusers():
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import extract_glyph_texts

    for prompt in (PROMPT, GLYPH_PROMPT, 'say "A" then "A"', 'two "x" and "y" signs', '"" empty quotes'):
        assert glyph_text(prompt) == extract_glyph_texts(prompt)
    assert glyph_text(GLYPH_PROMPT) == 'Text "HELLO". Text "世界". '


def test_template_crop_matches_the_pipeline_constants(encoder):
    pipeline = _pipeline_class()
    defaults = inspect.signature(pipeline._get_mllm_prompt_embeds).parameters
    assert text_encoder.SYSTEM_MESSAGE == defaults["system_message"].default
    assert text_encoder.HIDDEN_LAYERS_TO_SKIP == defaults["num_hidden_layers_to_skip"].default
    # The crop is the template's token count before the prompt, whatever the tokenizer.
    messages = [{"role": "system", "content": text_encoder.SYSTEM_MESSAGE}, {"role": "user", "content": "x"}]
    ids = encoder.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=True).input_ids
    assert encoder.tokenizer.decode(ids[encoder.crop_start:]).startswith("x<|im_end|>")


@pytest.mark.parametrize("prompt", [PROMPT, GLYPH_PROMPT, ""])
def test_identical_to_diffusers_encode_prompt(encoder, prompt):
    """The pipeline's own encode_prompt on the same models gives bit-identical tensors."""
    pipeline = _pipeline_class()
    hidden, mask = pipeline._get_mllm_prompt_embeds(
        encoder.mllm, encoder.tokenizer, prompt, torch.device("cpu"), crop_start=encoder.crop_start)
    hidden_2, mask_2 = pipeline._get_byt5_prompt_embeds(encoder.glyph_tokenizer, encoder.glyph, prompt, torch.device("cpu"))
    ours = encoder.encode(prompt).tensors
    assert torch.equal(ours["encoder_hidden_states"], hidden)
    assert torch.equal(ours["encoder_attention_mask"], mask)
    assert torch.equal(ours["encoder_hidden_states_2"], hidden_2)
    assert torch.equal(ours["encoder_attention_mask_2"], mask_2)


def test_real_qwen_tokenizer_crop_is_diffusers_108_and_keeps_comfyuis_token_span():
    """With the real Qwen2.5 tokenizer (ComfyUI ships it) the computed crop is the pipeline's constant,
    and what survives the crop is the span ComfyUI keeps: the prompt and the template's tail."""
    from transformers import Qwen2Tokenizer

    from comfy_harness.provision import ensure_comfyui

    tokenizer = Qwen2Tokenizer.from_pretrained(str(ensure_comfyui() / "comfy" / "text_encoders" / "qwen25_tokenizer"),
                                               local_files_only=True)
    diffusers_crop = inspect.signature(_pipeline_class()._get_mllm_prompt_embeds).parameters["crop_start"].default
    assert text_encoder.template_prefix_length(tokenizer) == diffusers_crop == 108
    messages = [{"role": "system", "content": text_encoder.SYSTEM_MESSAGE}, {"role": "user", "content": PROMPT}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True).input_ids
    tail = tokenizer(PROMPT + "<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False).input_ids
    assert ids[108:] == tail


def test_glyph_prompt_encodes_quoted_text(encoder):
    tensors = encoder.encode(GLYPH_PROMPT).tensors
    mask = tensors["encoder_attention_mask_2"]
    assert mask.sum() == len(glyph_text(GLYPH_PROMPT).encode()) + 1  # bytes + </s>
    assert tensors["encoder_hidden_states_2"][0, : int(mask.sum())].abs().sum() > 0


def test_same_prompt_gives_identical_tensors(encoder):
    first, second = _fresh(encoder).encode(PROMPT), _fresh(encoder).encode(PROMPT)
    assert first.tensors.keys() == second.tensors.keys()
    assert all(torch.equal(first.tensors[key], second.tensors[key]) for key in first.tensors)
    other = _fresh(encoder).encode("a cat is jumping")
    assert not torch.equal(first.tensors["encoder_hidden_states"], other.tensors["encoder_hidden_states"])


# ----- cache -----

def test_cache_hit_does_not_call_the_encoders(encoder, monkeypatch):
    fresh = _fresh(encoder)
    first = fresh.encode(GLYPH_PROMPT)
    calls = []
    for module in (fresh.mllm, fresh.glyph):
        monkeypatch.setattr(module, "forward", lambda *a, **k: calls.append(1) or pytest.fail("encoder ran"))
    again = fresh.encode(GLYPH_PROMPT)
    assert calls == [] and fresh.cache.hits == 2 and fresh.cache.misses == 2
    assert again.tensors["encoder_hidden_states"] is first.tensors["encoder_hidden_states"]


def test_cache_is_keyed_by_encoder_identity_and_text():
    cache = EmbeddingCache(max_entries=2)
    computed = []
    for key in (("a", "x"), ("b", "x"), ("a", "x"), ("c", "y"), ("b", "x")):
        cache.get_or_compute(key, lambda key=key: computed.append(key) or key)
    # ("a","x") hit once; ("b","x") was evicted by the size bound and recomputed.
    assert computed == [("a", "x"), ("b", "x"), ("c", "y"), ("b", "x")] and len(cache) == 2


def test_reloaded_files_share_the_cache_and_another_dtype_does_not(files):
    load_text_encoder(files["pipeline"]).encode("shared cache prompt")
    misses = text_encoder.SHARED_CACHE.misses
    load_text_encoder(files["pipeline"]).encode("shared cache prompt")
    assert text_encoder.SHARED_CACHE.misses == misses  # the reloaded files are the same encoder
    a = load_text_encoder(files["qwen"], tokenizer_dir=files["tokenizer"]).identity
    b = load_text_encoder(files["qwen"], tokenizer_dir=files["tokenizer"], dtype=torch.float64).identity
    assert a != b


# ----- loading -----

def test_single_files_equal_the_diffusers_folder(files, encoder):
    single = load_text_encoder(files["qwen"], files["byt5"], tokenizer_dir=files["tokenizer"])
    for prompt in (PROMPT, GLYPH_PROMPT):
        expected, got = encoder.encode(prompt).tensors, single.encode(prompt).tensors
        assert expected.keys() == got.keys()
        for key in expected:  # the same weights from other files: equal up to float32 summation order
            assert_float32_close(got[key].float(), expected[key].float(), TINY_MODEL_REDUCTION)


def test_tokenizer_folder_beside_the_file_is_found(files):
    assert load_text_encoder(files["qwen"]).crop_start > 0  # text_encoders/tokenizer/


def test_fp8_scaled_file_is_dequantized(files, encoder):
    fp8 = load_text_encoder(files["qwen_fp8"]).encode(PROMPT).tensors["encoder_hidden_states"]
    full = encoder.encode(PROMPT).tensors["encoder_hidden_states"]
    assert torch.allclose(fp8, full, atol=0.05) and not torch.equal(fp8, full)


def test_without_glyph_encoder_plain_prompts_encode_and_quotes_are_refused(files):
    plain = load_text_encoder(files["qwen"], tokenizer_dir=files["tokenizer"])
    assert set(plain.encode(PROMPT).tensors) == {"encoder_hidden_states", "encoder_attention_mask"}
    with pytest.raises(DreamActorError, match="glyph"):
        plain.encode(GLYPH_PROMPT)


def test_missing_text_encoder_file_names_file_and_folder(files):
    with pytest.raises(MissingModelFile) as error:
        load_text_encoder(files["qwen"].parent / "qwen_2.5_vl_7b.safetensors")
    assert error.value.model_file == "qwen_2.5_vl_7b.safetensors" and error.value.folder == "text_encoders"
    assert "qwen_2.5_vl_7b.safetensors" in str(error.value) and "text_encoders" in str(error.value)
    with pytest.raises(MissingModelFile) as error:
        load_text_encoder(files["qwen"], files["qwen"].parent / "byt5_small_glyphxl_fp16.safetensors")
    assert error.value.model_file == "byt5_small_glyphxl_fp16.safetensors"


def test_missing_tokenizer_names_the_file_and_where_it_looked(files, tmp_path):
    lonely = tmp_path / "text_encoders" / "qwen.safetensors"
    lonely.parent.mkdir()
    lonely.write_bytes(files["qwen"].read_bytes())
    lonely.with_suffix(".json").write_text(files["qwen"].with_suffix(".json").read_text())
    with pytest.raises(MissingModelFile) as error:
        load_text_encoder(lonely)
    assert error.value.model_file == "tokenizer_config.json" and error.value.folder == "text_encoders"
    assert str(lonely.parent / "tokenizer") in error.value.args[0]
    assert load_text_encoder(lonely, tokenizer_dir=files["tokenizer"]).crop_start > 0  # the fallback


def test_wrong_files_are_clear_errors(files, tmp_path):
    with pytest.raises(DreamActorError, match="not a Qwen2.5-VL text encoder"):
        load_text_encoder(files["byt5"], tokenizer_dir=files["tokenizer"])
    with pytest.raises(DreamActorError, match="not a ByT5 glyph encoder"):
        load_text_encoder(files["qwen"], files["siglip"], tokenizer_dir=files["tokenizer"])
    # The tiny weights against the shipped 7B config: a size mismatch that says what to do.
    bare = tmp_path / "qwen_no_config.safetensors"
    bare.write_bytes(files["qwen"].read_bytes())
    with pytest.raises(DreamActorError, match="qwen_no_config.json"):
        load_text_encoder(bare, tokenizer_dir=files["tokenizer"])
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(files["qwen"].read_bytes()[:1000])
    with pytest.raises(DreamActorError, match="truncated"):
        load_text_encoder(truncated, tokenizer_dir=files["tokenizer"])


def test_bad_prompt_is_a_clear_error(encoder):
    with pytest.raises(DreamActorError, match="prompt"):
        encoder.encode(None)  # type: ignore[arg-type]


# ----- negative / unconditional and the transformer -----

def test_negative_shares_the_reference_image_embedding(encoder):
    positive, negative = encoder.encode_pair(PROMPT)
    assert negative.prompt == "" and torch.equal(negative.tensors["encoder_hidden_states"],
                                                 encoder.encode("").tensors["encoder_hidden_states"])
    image = torch.randn(1, 5, 16)
    unconditional = positive.with_image_embeds(image).unconditional_like(negative)
    assert unconditional.tensors["image_embeds"] is image and unconditional.prompt == ""
    assert "image_embeds" not in negative.tensors  # frozen: the original is untouched
    assert "image_embeds" not in positive.with_image_embeds(image).with_image_embeds(None).tensors
    with pytest.raises(DreamActorError, match="image_embeds"):
        positive.with_image_embeds(torch.zeros(5, 16))


def test_conditioning_drives_the_transformer_through_the_sampler_path(encoder, files):
    """The sampler's own conversion and the adapter's preparation feed the real transformer class."""
    from diffusers import HunyuanVideo15Transformer3DModel

    from dreamactor_core import sampling
    from dreamactor_core.models.backbones import get_adapter
    from dreamactor_core.testing.tiny_models import TINY_TRANSFORMER_CONFIGS

    torch.manual_seed(0)
    transformer = HunyuanVideo15Transformer3DModel(**TINY_TRANSFORMER_CONFIGS["hunyuan_video_15"]).eval()
    image = load_image_encoder(files["pipeline"]).encode(torch.rand(1, 24, 24, 3))
    conditioning = encoder.encode(GLYPH_PROMPT).with_image_embeds(image)
    kwargs = get_adapter("hunyuan_video_15").prepare_conditioning(
        transformer, sampling.conditioning_kwargs(conditioning), 1, torch.device("cpu"), torch.float32)
    assert set(kwargs) == set(TEXT_KEYS) | {"image_embeds"}
    latent = torch.randn(1, 65, 1, 2, 2)
    with torch.inference_mode():
        out = transformer(hidden_states=latent, timestep=torch.tensor([500.0]), return_dict=False, **kwargs)[0]
    assert out.shape == (1, 32, 1, 2, 2) and torch.isfinite(out).all()


# ----- reference image (SigLIP) -----

def test_image_embeds_match_diffusers_and_single_file(files):
    from PIL import Image

    image = torch.rand(3, 40, 50, 3)
    folder = load_image_encoder(files["pipeline"])
    expected = _pipeline_class()._get_image_embeds(folder.model, folder.processor,
                                                   Image.fromarray(to_uint8_rgb(image)), torch.device("cpu"))
    got = folder.encode(image)
    assert got.shape == (1, 16, 16) and torch.equal(got, expected)  # one model object, the same pixels: exact
    # the same weights loaded from another file sit in other storage: equal up to float32 summation order
    assert_float32_close(load_image_encoder(files["siglip"]).encode(image), got, TINY_MODEL_REDUCTION)


def test_gray_and_alpha_references_are_embedded_as_the_canvas_shows_them(files):
    """Build Canvas takes 1 to 4 channels; so does the embedding, converting them the same way."""
    encoder = load_image_encoder(files["pipeline"])
    encoder.cache = EmbeddingCache()
    gray = torch.rand(1, 24, 24, 1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(encoder.encode(gray), encoder.encode(gray.expand(-1, -1, -1, 3)))
    rgb, alpha = torch.rand(1, 24, 24, 3), (torch.rand(1, 24, 24, 1) > 0.5).float()
    over_black = encoder.encode(rgb * alpha)  # transparent pixels show Build Canvas's default black
    assert torch.equal(encoder.encode(torch.cat([rgb, alpha], dim=-1)), over_black)
    assert not torch.equal(encoder.encode(rgb), over_black)
    gray_alpha = torch.cat([gray, alpha], dim=-1)
    assert torch.equal(encoder.encode(gray_alpha), encoder.encode((gray * alpha).expand(-1, -1, -1, 3)))


def test_image_embeds_are_cached_by_content(files, monkeypatch):
    encoder = load_image_encoder(files["pipeline"])
    encoder.cache = EmbeddingCache()
    image = torch.rand(1, 20, 20, 3)
    first = encoder.encode(image)
    monkeypatch.setattr(encoder.model, "forward", lambda *a, **k: pytest.fail("image encoder ran"))
    assert encoder.encode(image.clone()) is first


def test_image_bad_inputs(files):
    encoder = load_image_encoder(files["pipeline"])
    with pytest.raises(DreamActorError, match="IMAGE"):
        encoder.encode(torch.rand(20, 20))
    with pytest.raises(MissingModelFile) as error:
        load_image_encoder(files["siglip"].parent / "sigclip_vision_patch14_384.safetensors")
    assert error.value.folder == "clip_vision" and error.value.model_file == "sigclip_vision_patch14_384.safetensors"
    with pytest.raises(DreamActorError, match="not a SigLIP"):
        load_image_encoder(files["byt5"])


# ----- ComfyUI CONDITIONING -----

def test_comfy_conditioning_is_converted():
    cond, glyph, vision = torch.randn(1, 7, 32), torch.randn(1, 4, 16), torch.randn(1, 9, 16)

    class ClipVisionOutput:  # ComfyUI's comfy.clip_vision.Output: attributes
        last_hidden_state = vision

    converted = from_comfy_conditioning([[cond, {"pooled_output": None, "conditioning_byt5small": glyph,
                                                 "clip_vision_output": ClipVisionOutput()}]], prompt="p")
    tensors = converted.tensors
    assert isinstance(converted, Conditioning) and converted.backbone == "hunyuan_video_15"
    assert tensors["encoder_hidden_states"] is cond and tensors["encoder_attention_mask"].tolist() == [[1] * 7]
    assert tensors["encoder_hidden_states_2"] is glyph and tensors["encoder_attention_mask_2"].tolist() == [[1] * 4]
    assert tensors["image_embeds"] is vision
    masked = from_comfy_conditioning([[cond, {"attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0, 0]])}]])
    assert masked.tensors["encoder_attention_mask"].sum() == 5 and "encoder_hidden_states_2" not in masked.tensors


@pytest.mark.parametrize("bad, message", [
    ("text", "expected ComfyUI CONDITIONING"),
    ([], "expected ComfyUI CONDITIONING"),
    ([[torch.randn(1, 3, 8), {}], [torch.randn(1, 3, 8), {}]], "2 combined entries"),
    ([[torch.randn(3, 8), {}]], "tokens, width"),
    ([(torch.randn(1, 3, 8),)], "entry"),
    ([[torch.randn(1, 3, 8), {"attention_mask": torch.ones(1, 4)}]], "attention_mask"),
    ([[torch.randn(1, 3, 8), {"clip_vision_output": object()}]], "last_hidden_state"),
])
def test_comfy_conditioning_bad_inputs(bad, message):
    with pytest.raises(DreamActorError, match=message):
        from_comfy_conditioning(bad)


# ----- inside real ComfyUI -----

def _comfy_graph() -> dict:
    return {
        "load": {"class_type": "DreamActorM2_LoadTextEncoder", "inputs": {
            "text_encoder_name": "tiny_qwen.safetensors", "glyph_encoder_name": "tiny_byt5.safetensors",
            "precision": "fp32"}},
        "encode": {"class_type": "DreamActorM2_TextEncode", "inputs": {
            "text_encoder": ["load", 0], "prompt": GLYPH_PROMPT, "negative_prompt": ""}},
        "load_image": {"class_type": "DreamActorM2_LoadImageEncoder", "inputs": {
            "image_encoder_name": "tiny_siglip.safetensors", "precision": "fp32"}},
        "reference": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "reference"}},
        "embed": {"class_type": "DreamActorM2_ReferenceImageEmbed", "inputs": {
            "positive": ["encode", 0], "negative": ["encode", 1], "image_encoder": ["load_image", 0],
            "reference": ["reference", 0]}},
        "native": {"class_type": "DreamActorTest_Feed", "inputs": {"name": "native"}},
        "convert": {"class_type": "DreamActorM2_FromComfyConditioning", "inputs": {
            "positive": ["native", 0], "negative": ["native", 0]}},
        "probe_positive": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["embed", 0], "name": "positive"}},
        "probe_negative": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["embed", 1], "name": "negative"}},
        "probe_converted": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["convert", 0], "name": "converted"}},
    }


@pytest.mark.comfy
def test_text_nodes_inside_comfyui(comfy):
    paths = write_tiny_encoders(comfy.models_dir / "text_encoders", comfy.models_dir / "clip_vision")
    info = comfy.object_info("DreamActorM2_LoadTextEncoder")["DreamActorM2_LoadTextEncoder"]["input"]["required"]
    assert {"tiny_qwen.safetensors", "tiny_hunyuan_video_15_pipeline"} <= set(info["text_encoder_name"][0])
    assert not any("/" in name for name in info["text_encoder_name"][0])  # no files from inside the pipeline folder
    reference = torch.rand(1, 24, 24, 3)
    native = [[torch.randn(1, 6, 32), {"pooled_output": None, "conditioning_byt5small": torch.randn(1, 3, 16)}]]
    comfy.feed("reference", reference)
    comfy.feed("native", native)
    comfy.run(_comfy_graph())

    # Exactly what the engine makes from the same files.
    encoder = load_text_encoder(paths["qwen"], paths["byt5"])
    image = load_image_encoder(paths["siglip"]).encode(reference)
    expected_positive = encoder.encode(GLYPH_PROMPT).with_image_embeds(image)
    expected_negative = expected_positive.unconditional_like(encoder.encode(""))
    for name, expected in (("positive", expected_positive), ("negative", expected_negative)):
        probed = comfy.probe(name)["fields"]
        assert probed["backbone"] == "hunyuan_video_15" and probed["prompt"] == expected.prompt
        assert probed["tensors"].keys() == expected.tensors.keys()
        assert all(torch.equal(probed["tensors"][key], expected.tensors[key]) for key in expected.tensors)
    converted = comfy.probe("converted")["fields"]["tensors"]
    assert torch.equal(converted["encoder_hidden_states"], native[0][0])
    assert torch.equal(converted["encoder_hidden_states_2"], native[0][1]["conditioning_byt5small"])
    assert converted["encoder_attention_mask"].tolist() == [[1] * 6]


@pytest.mark.comfy
def test_text_node_errors_inside_comfyui(comfy):
    from comfy_harness.server import PromptFailed

    paths = write_tiny_encoders(comfy.models_dir / "text_encoders", comfy.models_dir / "clip_vision")
    graph = _comfy_graph()
    graph = {"load": graph["load"] | {"inputs": graph["load"]["inputs"] | {"glyph_encoder_name": "none"}},
             "encode": graph["encode"],
             "probe": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["encode", 0], "name": "refused"}}}
    with pytest.raises(PromptFailed, match="glyph"):
        comfy.run(graph)
    assert paths["byt5"].is_file()
