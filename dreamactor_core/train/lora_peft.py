"""The trainable LoRA: peft adapters on the visual-stream FFN linears of a frozen backbone, saved in
ComfyUI's LoRA layout, which core ``LoraLoaderModelOnly`` and the pack's own loader
(``dreamactor_core.models.lora.load_lora``, the LoadLora node) both read.

Paper: the backbone stays frozen and only the feed-forward layers of the visual stream get LoRA
(rank 256); the text branch is untouched. The targets are ``adapter.visual_ffn_modules``, the same
list the loader and the tiny test LoRAs use.

File layout: ComfyUI's LoRA names (``diffusion_model.<ComfyUI module>.lora_down.weight`` /
``lora_up.weight`` / ``.alpha``), so core ``LoraLoaderModelOnly`` applies every layer and the pack's
``load_lora`` reads the same file; the alpha also in diffusers' ``lora_adapter_metadata`` JSON, plus
plain metadata naming backbone, rank, alpha, stage, step and target modules (diffusers names), so a warm start can refuse a LoRA made for something else before touching weights,
and ``image_embeds`` ("siglip" or "none"): whether the reference's SigLIP embedding conditioned the
training, which a warm start only warns about (the weights still fit; the conditioning shifts).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import torch

from ..errors import DreamActorError
from ..models import checkpoints
from ..models.backbones import get_adapter
from ..models.loading import DreamActorModel
from ..models.lora import LoraLayer, load_lora
from .files import replacing

IMAGE_EMBEDS = "image_embeds"  # metadata key: "siglip" or "none"
PEFT_KEY = re.compile(r"^(?:module\.)?(?P<module>.+)\.lora_(?P<kind>[AB])(?:\.default)?\.weight$")


def add_lora(transformer: torch.nn.Module, targets: list[str], rank: int, alpha: float, seed: int) -> None:
    """Freeze ``transformer`` and inject trainable float32 LoRA pairs into ``targets`` (B starts at
    zero, so training starts from the unchanged backbone; A is random, drawn with ``seed`` so a run
    is reproducible whatever ran before it in the process). float32 keeps small updates from
    rounding away when the frozen weights are bf16."""
    from peft import LoraConfig, inject_adapter_in_model

    if not targets:
        raise DreamActorError("LoRA: the backbone has no visual feed-forward layers to train")
    transformer.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0),
                                transformer)
    for name, parameter in transformer.named_parameters():
        if ".lora_" in name:
            parameter.data = parameter.data.float()
            parameter.requires_grad_(True)


def lora_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The LoRA pairs of a model state dict (plain, peft- or DDP-prefixed), keyed by module name
    plus ``.lora_A`` / ``.lora_B``, detached on the CPU."""
    out = {}
    for key, value in state_dict.items():
        match = PEFT_KEY.match(key)
        if match:
            out[f"{match['module']}.lora_{match['kind']}"] = value.detach().float().cpu().contiguous()
    return out


def load_lora_tensors(transformer: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy ``lora_tensors`` output back into an injected model; every pair must match exactly."""
    own = {f"{m['module']}.lora_{m['kind']}": parameter for name, parameter in transformer.named_parameters()
           if (m := PEFT_KEY.match(name))}
    if set(own) != set(tensors):
        missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        raise DreamActorError(f"LoRA state does not match the model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for key, parameter in own.items():
            if parameter.shape != tensors[key].shape:
                raise DreamActorError(f"LoRA state: '{key}' is {list(tensors[key].shape)}, the model's "
                                      f"{list(parameter.shape)}")
            parameter.copy_(tensors[key])


def lora_metadata(backbone: str, rank: int, alpha: float, stage: str, step: int, targets: list[str],
                  image_embeds: str) -> dict[str, str]:
    return {
        "format": "pt", "backbone": backbone, "rank": str(rank), "alpha": repr(float(alpha)), "stage": stage,
        "step": str(step), "target_modules": json.dumps(targets), IMAGE_EMBEDS: image_embeds,
        "lora_adapter_metadata": json.dumps({"r": rank, "lora_alpha": float(alpha), "target_modules": targets}),
    }


def comfy_lora_keys(tensors: dict[str, torch.Tensor], backbone: str, alpha: float) -> dict[str, torch.Tensor]:
    """``lora_tensors`` output -> ComfyUI's LoRA names: ``diffusion_model.<ComfyUI module>.lora_down.weight``
    (A), ``.lora_up.weight`` (B) and ``.alpha``, which core ``LoraLoaderModelOnly`` maps for the
    backbone's ComfyUI model (``comfy/lora.py`` maps every ``diffusion_model.<module>.weight``)."""
    adapter = get_adapter(backbone)
    out: dict[str, torch.Tensor] = {}
    for key, value in sorted(tensors.items()):
        module, kind = key.rsplit(".lora_", 1)
        comfy = adapter.foreign_module_names(module).get("comfy")
        if comfy is None:
            raise DreamActorError(f"LoRA save: '{module}' has no ComfyUI name for {adapter.display_name}")
        if getattr(comfy, "transform", ""):  # a fused q/k/v third or a half-swapped layer in ComfyUI's model
            raise DreamActorError(f"LoRA save: '{module}' is stored in ComfyUI's '{comfy}' as {comfy.transform}, "
                                  "which a plain down/up pair cannot express; train plain layers (the visual FFN "
                                  "by default)")
        base = f"diffusion_model.{comfy}"
        out[f"{base}.{'lora_down' if kind == 'A' else 'lora_up'}.weight"] = value
        out[f"{base}.alpha"] = torch.tensor(float(alpha))
    return out


def save_lora(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write the LoRA file in ComfyUI's key layout (``comfy_lora_keys``; backbone and alpha from
    ``metadata``), to a temporary file then renamed: an existing file survives a failed save."""
    from safetensors.torch import save_file

    path = Path(path)
    keyed = comfy_lora_keys(tensors, metadata["backbone"], float(metadata["alpha"]))
    with replacing(path) as temporary:
        save_file(keyed, str(temporary), metadata=metadata)
    return path


def read_warm_start(path: str | Path, model: DreamActorModel, targets: list[str], rank: int, image_embeds: str,
                    log: Callable[[str], None]) -> dict[str, LoraLayer]:
    """A previous stage's LoRA for ``model`` (the plain transformer, before injection), checked to
    be for this backbone, these exact targets and this rank; any layout ``load_lora`` reads. A LoRA
    trained with another ``image_embeds`` setting is logged, not refused: its weights fit, and
    continuing under the conditioning inference uses is how such a LoRA gets corrected."""
    path = Path(path)
    if not path.is_file():
        raise DreamActorError(f"--init-lora '{path}' does not exist")
    _, metadata = checkpoints.read_header(path)
    stored = metadata.get("backbone")
    if stored is not None and stored != model.adapter.name:
        raise DreamActorError(f"--init-lora '{path.name}' was trained for backbone '{stored}', but this run trains "
                              f"'{model.adapter.name}'")
    try:
        weights = load_lora(path, model)
    except DreamActorError as error:
        raise DreamActorError(f"--init-lora: {error}") from error
    layers = weights.layers
    if weights.unmatched or set(layers) != set(targets):
        missing = sorted(set(targets) - set(layers))
        extra = sorted(set(layers) - set(targets)) + weights.unmatched
        raise DreamActorError(f"--init-lora '{path.name}' targets other layers than the visual FFN of "
                              f"{model.adapter.display_name}: missing {missing[:3]}, extra {extra[:3]}")
    ranks = sorted({layer.down.shape[0] for layer in layers.values()})
    if ranks != [rank]:
        raise DreamActorError(f"--init-lora '{path.name}' has rank {ranks}, this run trains rank {rank}: "
                              "set --rank to match")
    # This pack's LoRAs written before the key existed ("stage" present, no IMAGE_EMBEDS) trained
    # without the embedding; files from elsewhere do not say, so nothing is claimed about them.
    trained_with = metadata.get(IMAGE_EMBEDS, "none" if "stage" in metadata else None)
    if trained_with is not None and trained_with != image_embeds:
        log(f"warning: --init-lora '{path.name}' was trained with reference image embeddings '{trained_with}', "
            f"this run uses '{image_embeds}'; the warm start still applies")
    return layers


def apply_warm_start(transformer: torch.nn.Module, layers: dict[str, LoraLayer], rank: int, alpha: float) -> None:
    """Copy ``read_warm_start``'s layers into the injected LoRA, rescaling B so the delta
    (scale x B A) is the file's exactly whatever alpha either side used."""
    scale = alpha / rank
    load_lora_tensors(transformer, {
        **{f"{name}.lora_A": layer.down.float() for name, layer in layers.items()},
        **{f"{name}.lora_B": layer.up.float() * (layer.scale / scale) for name, layer in layers.items()},
    })
