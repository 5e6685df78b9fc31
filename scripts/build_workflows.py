"""Writes the shipped UI workflows and their template-browser thumbnails: dreamactor_m2_pose and
dreamactor_m2_rgb on the pack's own loaders and sampler, dreamactor_m2_native_pose and
dreamactor_m2_native_rgb on ComfyUI's own HunyuanVideo 1.5 nodes (the native path), and
dreamactor_m2_long_video, the streamed long-video node between Load Video and Save Video.

The graphs are declared here once, as nodes in groups with their links and widget values; each
node's slots and widget order come from a running ComfyUI's /object_info, so the files match what
the frontend itself would save. Run it after changing a node's inputs:

    .venv/bin/python scripts/build_workflows.py

tests/test_workflows_comfy.py checks that the committed files are exactly what this writes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from comfy_harness.workflow import has_control_widget, is_widget, ordered_inputs  # noqa: E402
from dreamactor_core.app.default_models import DEFAULT_MODELS  # noqa: E402

WORKFLOWS = REPO / "workflows"
MODES = ("pose", "rgb")
PACK = "DreamActorM2_"
CORE_VERSION = "0.3.75"
# Real-use defaults: a 416 x 624 portrait panel (the canvas is 832 x 624, near HunyuanVideo 1.5's
# 480p token budget), 81 driving frames (+ 24 lead-in frames at 24 fps = 105 = 4k+1), 30 steps,
# cfg 6 and shift 5 (the 480p image-to-video setting).
PANEL_WIDTH, PANEL_HEIGHT, DRIVING_FRAMES = 416, 624, 81
SAMPLER = {"seed": 42, "steps": 30, "cfg": 6.0, "shift": 5.0, "solver": "euler"}
NODE_WIDTH, COLUMN_GAP, ROW_GAP = 360, 60, 30
GROUP_COLOR = {"inputs": "#3f789e", "pose": "#a1309b", "canvas": "#b58b2a", "models": "#444", "prompt": "#8A8",
               "generate": "#335"}
TALL_NODES = {"LoadImage": 340, "LoadVideo": 450, "SaveVideo": 380}  # room for their previews
# Loader nodes whose default files get the frontend's "missing models" download links.
_FOLDERS = {
    f"{PACK}LoadModel": ("diffusion_models",), f"{PACK}LoadVAE": ("vae",), f"{PACK}LoadTextEncoder": ("text_encoders",),
    f"{PACK}LoadImageEncoder": ("clip_vision",), "UNETLoader": ("diffusion_models",), "VAELoader": ("vae",),
    "DualCLIPLoader": ("text_encoders",), "CLIPVisionLoader": ("clip_vision",),
}
PROMPT = {"motion": "a person is dancing", "appearance": "an astronaut in a white spacesuit",
          "negative": "blurry, distorted body, extra limbs, flicker"}


@dataclass
class Node:
    id: int
    type: str
    group: str
    widgets: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    links_in: dict[str, tuple["Node", int]] = field(default_factory=dict)
    text: str = ""  # notes only
    height: int = 0


class WorkflowBuilder:
    """Nodes declared column by column (one group a column); ``to_json`` lays them out and links them."""

    def __init__(self, object_info: dict, prefix: str = "") -> None:
        self.info = object_info
        self.prefix = prefix  # of the saved videos' names, so both paths' outputs sit side by side
        self.nodes: list[Node] = []
        self.groups: dict[str, str] = {}

    def group(self, key: str, title: str) -> None:
        self.groups[key] = title

    def add(self, type_: str, group: str, title: str | None = None, **inputs: Any) -> Node:
        node = Node(len(self.nodes) + 1, type_, group, title=title)
        for name, value in inputs.items():
            if isinstance(value, tuple) and isinstance(value[0], Node):
                node.links_in[name] = value
            else:
                node.widgets[name] = value
        self.nodes.append(node)
        return node

    def note(self, group: str, title: str, text: str, height: int) -> Node:
        node = self.add("MarkdownNote", group, title=title)
        node.text, node.height = text, height
        return node

    # ----- serialisation -----
    def _spec(self, node: Node) -> list[tuple[str, list, bool]]:
        """(name, spec, optional) of each input, in the order the frontend lays them out."""
        optional = self.info[node.type]["input"].get("optional", {})
        return [(name, spec, name in optional) for name, spec in ordered_inputs(self.info[node.type])]

    def _widget_values(self, node: Node) -> list:
        if node.type == "MarkdownNote":
            return [node.text]
        values = []
        for name, entry, _ in self._spec(node):
            if not is_widget(entry):
                continue
            options = entry[1] if len(entry) > 1 else {}
            choices = entry[0] if isinstance(entry[0], list) else options.get("options", [])
            if name in node.widgets:
                values.append(node.widgets[name])
            elif "default" in options:
                values.append(options["default"])
            elif choices:
                values.append(choices[0])
            elif name in node.links_in and entry[0] == "STRING":
                values.append("")  # a linked text widget with no default: what the frontend saves
            else:
                raise ValueError(f"{node.type}.{name}: no value and no default")
            if has_control_widget(name, entry):
                values.append("fixed")
            if options.get("image_upload") or options.get("video_upload"):
                values.append("image")  # the frontend's upload button widget
        return values

    def _height(self, node: Node, inputs: int, outputs: int, widgets: list) -> int:
        if node.height:
            return node.height
        if node.type in TALL_NODES:
            return TALL_NODES[node.type]
        multiline = sum(1 for name, entry, _ in self._spec(node)
                        if is_widget(entry) and len(entry) > 1 and entry[1].get("multiline"))
        return 30 + 24 * max(inputs, outputs) + 24 * len(widgets) + 70 * multiline

    def to_json(self, workflow_id: str) -> dict:
        links: list[list] = []
        serial: dict[int, dict] = {}
        outputs_links: dict[tuple[int, int], list[int]] = {}
        for node in self.nodes:
            inputs = []
            if node.type != "MarkdownNote":
                for name, entry, optional in self._spec(node):
                    widget = is_widget(entry)
                    if widget and name not in node.links_in:
                        continue
                    slot: dict[str, Any] = {"name": name, "type": entry[0] if not isinstance(entry[0], list) else "COMBO"}
                    if optional:
                        slot["shape"] = 7
                    if widget:
                        slot["widget"] = {"name": name}
                    slot["link"] = None
                    if name in node.links_in:
                        source, source_slot = node.links_in[name]
                        link_id = len(links) + 1
                        kind = self.info[source.type]["output"][source_slot]
                        links.append([link_id, source.id, source_slot, node.id, len(inputs), kind])
                        outputs_links.setdefault((source.id, source_slot), []).append(link_id)
                        slot["link"] = link_id
                    inputs.append(slot)
            serial[node.id] = {"id": node.id, "type": node.type, "inputs": inputs}
        for node in self.nodes:
            info = self.info.get(node.type, {"output": [], "output_name": []})
            outputs = [{"name": name, "type": kind, "links": outputs_links.get((node.id, slot), [])}
                       for slot, (kind, name) in enumerate(zip(info["output"], info["output_name"]))]
            widgets = self._widget_values(node)
            properties: dict[str, Any] = {"Node name for S&R": node.type}
            if node.type != "MarkdownNote":
                properties["cnr_id"] = "comfyui-dreamactor-m2" if node.type.startswith(PACK) else "comfy-core"
                properties["ver"] = "0.1.0" if node.type.startswith(PACK) else CORE_VERSION
            models = [model for model in DEFAULT_MODELS.values()
                      if model.url and model.name in widgets and model.folder in _FOLDERS.get(node.type, ())]
            if models:
                properties["models"] = [{"name": m.name, "url": m.url, "directory": m.folder} for m in models]
            entry = serial[node.id]
            entry.update({"pos": [0, 0], "size": [NODE_WIDTH, self._height(node, len(entry["inputs"]), len(outputs), widgets)],
                          "flags": {}, "order": 0, "mode": 0, "outputs": outputs, "properties": properties,
                          "widgets_values": widgets})
            if node.title:
                entry["title"] = node.title
        self._layout(serial)
        self._order(serial, links)
        groups = []
        for index, (key, title) in enumerate(self.groups.items(), start=1):
            members = [serial[n.id] for n in self.nodes if n.group == key]
            left = min(m["pos"][0] for m in members) - 10
            top = min(m["pos"][1] for m in members) - 50
            right = max(m["pos"][0] + m["size"][0] for m in members) + 10
            bottom = max(m["pos"][1] + m["size"][1] for m in members) + 20
            groups.append({"id": index, "title": title, "bounding": [left, top, right - left, bottom - top],
                           "color": GROUP_COLOR.get(key, "#3f789e"), "font_size": 22, "flags": {}})
        return {
            "id": workflow_id, "revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(links),
            "nodes": [serial[n.id] for n in self.nodes], "links": links, "groups": groups, "config": {},
            "extra": {"ds": {"scale": 0.62, "offset": [130, 170]}, "frontendVersion": "1.32.9"}, "version": 0.4,
        }

    def _layout(self, serial: dict[int, dict]) -> None:
        """One column per group, nodes stacked in declaration order."""
        column_x = {key: index * (NODE_WIDTH + COLUMN_GAP) for index, key in enumerate(self.groups)}
        column_y = {key: 0 for key in self.groups}
        for node in self.nodes:
            entry = serial[node.id]
            entry["pos"] = [column_x[node.group], column_y[node.group]]
            column_y[node.group] += entry["size"][1] + ROW_GAP + 40

    @staticmethod
    def _order(serial: dict[int, dict], links: list[list]) -> None:
        """The frontend's execution order: a topological order of the links, ties by id."""
        upstream = {ident: {link[1] for link in links if link[3] == ident} for ident in serial}
        done: list[int] = []
        while len(done) < len(serial):
            ready = [i for i in sorted(serial) if i not in done and upstream[i] <= set(done)]
            done.append(ready[0])
        for order, ident in enumerate(done):
            serial[ident]["order"] = order


# The model-file table both kinds of workflow notes show (formatted with the default file names).
MODEL_FILES_NOTE = """**Model files** (ComfyUI `models/` folders):

| file | folder |
|---|---|
| `{transformer}` | `diffusion_models/` |
| `{vae}` | `vae/` |
| `{text_encoder}` and `{glyph_encoder}` | `text_encoders/` |
| `{image_encoder}` | `clip_vision/` |
| `{lora}` | `loras/` |

The first five are Comfy-Org's HunyuanVideo 1.5 files (the same as ComfyUI's own HunyuanVideo 1.5
templates)."""

README_NOTE = """## DreamActor-M2 · {title}

{summary}

{model_files} No DreamActor-M2 weights were released: train the LoRA on your videos with
`python -m dreamactor_core train` (see the pack's README) and put it in `loras/dreamactor_m2/`.

**Use**: load a reference picture and a driving video, write what the character does and looks
like, queue. Frames: set `length` in *Driving frames*; panel size in *Panel width/height* (the
canvas is twice as wide). Low memory: in *Load Model* set `weight_storage` to fp8_e4m3fn and `offload` to block.
"""

SUMMARIES = {
    "pose": ("pose-based", "Skeletons drive the motion: poses are extracted from the driving video, fitted "
             "into the panel (one box for the whole clip, so its global motion stays) and drawn; the reference "
             "and the skeletons form the in-context canvas `[reference | skeleton]`. The skeleton and canvas "
             "previews are saved next to the animation."),
    "rgb": ("RGB-driven", "The driving video's own frames drive the motion, with no pose estimator: any "
            "subject (people, animals, cartoons, groups). The canvas is `[reference | driving frame]`; its "
            "preview is saved next to the animation. Needs the RGB-stage LoRA."),
}
# Notes on one-to-many and many-to-many (issue 18), widget names as the nodes show them.
RGB_SEVERAL_PEOPLE_NOTE = ("**Several people**: the driving frames are used as they are, so nothing pairs a "
                           "driving person with a character: the model maps them as it learned (no pose backend "
                           "or box option in this mode). The canvas has one reference panel: all characters go "
                           "in the one reference picture. People who cross each other are the method's known "
                           "weak spot.")
SEVERAL_PEOPLE_NOTE = """**Several people.** The canvas has one reference panel: all characters go in the one
reference picture.

- *Pose Extract* `backend`: `mediapipe` follows ONE person. For several: `mediapipe_multi` (no download;
  OpenCV's HOG detector finds upright, whole people: crouching dancers, seated or half-hidden people are
  often missed), `dwpose` or `openpose` (their weight files). With `track_people` on, each person gets a
  `person_id` in POSE_KEYPOINT: 0, 1, ... by first appearance, left to right among people seen together.
- *Pose Augment* `box`: `group` (default, the paper's rule) fits one box over everyone into the panel, so
  people keep their sizes and places, and only those places tie a skeleton to a character. `person` puts
  person k (k-th id) in the k-th of equal panel columns, or, with `reference_pose` linked (a Pose Extract
  of the reference picture with a multi-person backend), onto the k-th reference character from the left;
  the counts must match. A reference pose follows the picture where Build Canvas places it in the panel:
  set Pose Augment's `fit` as Build Canvas's.
- One driving person gives one skeleton: the other characters get no motion of their own. People who
  cross each other are the method's known weak spot."""
GROUP_NOTES = {
    "inputs": "Reference picture and driving video. *Driving frames* keeps the first `length` frames; the "
              "two Int nodes set the panel size used everywhere.",
    "pose": "Pose extraction (`mediapipe`: one person, no download; `dwpose`: everyone, needs `yolox_l.onnx` "
            "and `dw-ll_ucoco_384.onnx` in `models/dreamactor_pose/`), clip-level box normalisation into the "
            "panel, skeleton rendering. Bone scaling is a training augmentation: off here.",
    "canvas": "The canvas: frame 0 is [reference | motion], later frames [black | motion]; one black second "
              "leads in. The mask marks what is given.",
    "models": "Transformer + DreamActor LoRA, VAE, text encoders (Qwen2.5-VL + ByT5 glyph) and the SigLIP "
              "reference encoder.",
    "prompt": "Target-oriented prompt: the motion and the reference's appearance fused into one sentence.",
    "generate": "Encode the canvas, sample, decode, keep the generated half (without the lead-in second) "
                "and save it.",
}


NATIVE_README_NOTE = """## DreamActor-M2 · {title} · native ComfyUI nodes

{summary}

This graph runs the canvas through **ComfyUI's own HunyuanVideo 1.5 nodes** (Load Diffusion Model,
LoraLoaderModelOnly, DualCLIPLoader, CLIP Vision, KSampler, VAE Decode); *DreamActor-M2 Canvas To
Video* puts the canvas and its mask into the conditioning.

{model_files} Train the LoRA with `python -m dreamactor_core train`; it is saved in ComfyUI's key names.

**Native or pack path?** Choose this one for ComfyUI's memory management, every sampler and
scheduler, fp8 / GGUF model files and core speed-ups (EasyCache, torch.compile). Choose the
`dreamactor_m2_{mode}` template for long videos (sliding windows), the exact training-time
conditioning, or parity with the command line.

**Use**: as the pack template: reference, driving video, prompt, queue. Low memory: set
`weight_dtype` to fp8_e4m3fn in *Load Diffusion Model*.
"""
NATIVE_NOTES = {
    "models": "Core loaders: transformer (Load Diffusion Model) + DreamActor LoRA (LoraLoaderModelOnly), "
              "ModelSamplingSD3 shift 5 (the 480p image-to-video setting), VAE, text encoders "
              "(DualCLIPLoader, type hunyuan_video_15) and SigLIP (Load CLIP Vision).",
    "prompt": "Target-oriented prompt into core CLIP Text Encode; the reference picture into CLIP Vision "
              "Encode (crop none: the whole picture, as in training).",
    "generate": "Canvas To Video adds the canvas latent and mask to both conditionings and gives the empty "
                "latent; KSampler (euler, simple, 30 steps, cfg 6), tiled decode, keep the generated half "
                "(without the lead-in second) and save it.",
}


def _front(b: WorkflowBuilder, mode: str, readme: str) -> dict[str, tuple[Node, int]]:
    """The columns both paths share: groups, notes, inputs, skeletons (pose mode) and the canvas with
    its preview. Returns the outputs the rest of the graph links to."""
    for key, title in (("inputs", "1 · Reference and driving video"), ("pose", "2 · Skeletons from the video"),
                       ("canvas", "3 · In-context canvas"), ("models", "4 · Models"),
                       ("prompt", "5 · Target-oriented prompt"), ("generate", "6 · Generate and save")):
        if key != "pose" or mode == "pose":
            b.group(key, title)
    b.note("inputs", "Read me", readme, 560)
    b.note("inputs", "Inputs", GROUP_NOTES["inputs"], 110)
    reference = b.add("LoadImage", "inputs", title="Reference picture", image="reference.png")
    video = b.add("LoadVideo", "inputs", title="Driving video", file="driving.mp4")
    components = b.add("GetVideoComponents", "inputs", video=(video, 0))
    frames = b.add("ImageFromBatch", "inputs", title="Driving frames", image=(components, 0), batch_index=0,
                   length=DRIVING_FRAMES)
    width = b.add("PrimitiveInt", "inputs", title="Panel width", value=PANEL_WIDTH)
    height = b.add("PrimitiveInt", "inputs", title="Panel height", value=PANEL_HEIGHT)
    fps = (components, 2)
    motion = (frames, 0)
    if mode == "pose":
        b.note("pose", "Skeletons", GROUP_NOTES["pose"], 150)
        b.note("pose", "Several people", SEVERAL_PEOPLE_NOTE, 360)
        extract = b.add(f"{PACK}PoseExtract", "pose", images=motion, backend="mediapipe")
        augment = b.add(f"{PACK}PoseAugment", "pose", pose_keypoint=(extract, 0), scale_bones=False,
                        normalize_box=True, width=(width, 0), height=(height, 0))
        render = b.add(f"{PACK}PoseRender", "pose", pose_keypoint=(augment, 0), width=(width, 0), height=(height, 0))
        motion = (render, 0)
        preview = b.add("CreateVideo", "pose", title="Skeleton video", images=motion, fps=fps)
        b.add("SaveVideo", "pose", title="Save skeleton preview", video=(preview, 0),
              filename_prefix=f"dreamactor_m2/{b.prefix}pose_skeletons")
    b.note("canvas", "Canvas", GROUP_NOTES["canvas"], 110)
    if mode == "rgb":
        b.note("canvas", "Several people", RGB_SEVERAL_PEOPLE_NOTE, 120)
    canvas = b.add(f"{PACK}BuildCanvas", "canvas", reference=(reference, 0), driving=motion, width=(width, 0),
                   height=(height, 0), fps=fps, reference_mask=(reference, 1))  # transparent PNGs: background
    return {"reference": (reference, 0), "canvas": (canvas, 0), "canvas_info": (canvas, 1), "fps": fps}


def _canvas_preview(b: WorkflowBuilder, mode: str, out: dict) -> None:
    canvas_video = b.add("CreateVideo", "canvas", title="Canvas video", images=out["canvas"], fps=out["fps"])
    b.add("SaveVideo", "canvas", title="Save canvas preview", video=(canvas_video, 0),
          filename_prefix=f"dreamactor_m2/{b.prefix}{mode}_canvas")


def _prompt(b: WorkflowBuilder) -> Node:
    return b.add(f"{PACK}TargetOrientedPrompt", "prompt", motion=PROMPT["motion"], appearance=PROMPT["appearance"])


def _result(b: WorkflowBuilder, mode: str, decoded: Node, out: dict) -> None:
    """Keep the generated half (without the lead-in second) and save it."""
    result = b.add(f"{PACK}ExtractResult", "generate", frames=(decoded, 0), canvas_info=out["canvas_info"])
    video_out = b.add("CreateVideo", "generate", title="Animation video", images=(result, 0), fps=(result, 1))
    b.add("SaveVideo", "generate", title="Save animation", video=(video_out, 0),
          filename_prefix=f"dreamactor_m2/{b.prefix}{mode}_animation")


def _names(mode: str) -> dict[str, str]:
    return {"lora": DEFAULT_MODELS[f"{mode}_lora"].name} | {role: m.name for role, m in DEFAULT_MODELS.items()}


def _pack_models_and_prompt(b: WorkflowBuilder, names: dict, reference: tuple[Node, int]) -> tuple[Node, Node, Node]:
    """The pack's loaders (transformer + LoRA, VAE, text and image encoders) and the encoded prompt with
    the reference embedding, in the models and prompt groups: (model with LoRA, VAE, conditioning)."""
    b.note("models", "Models", GROUP_NOTES["models"], 90)
    model = b.add(f"{PACK}LoadModel", "models", model_name=names["transformer"])
    with_lora = b.add(f"{PACK}LoadLora", "models", model=(model, 0), lora_name=names["lora"], strength=1.0)
    vae = b.add(f"{PACK}LoadVAE", "models", vae_name=names["vae"])
    text_encoder = b.add(f"{PACK}LoadTextEncoder", "models", text_encoder_name=names["text_encoder"],
                         glyph_encoder_name=names["glyph_encoder"])
    image_encoder = b.add(f"{PACK}LoadImageEncoder", "models", image_encoder_name=names["image_encoder"])
    b.note("prompt", "Prompt", GROUP_NOTES["prompt"], 90)
    prompt = _prompt(b)
    text = b.add(f"{PACK}TextEncode", "prompt", text_encoder=(text_encoder, 0), prompt=(prompt, 0),
                 negative_prompt=PROMPT["negative"])
    embedded = b.add(f"{PACK}ReferenceImageEmbed", "prompt", positive=(text, 0), negative=(text, 1),
                     image_encoder=(image_encoder, 0), reference=reference)
    return with_lora, vae, embedded


def build_workflow(object_info: dict, mode: str) -> dict:
    """The UI-format workflow of ``mode`` ("pose" or "rgb") on the pack's own loaders and sampler."""
    b = WorkflowBuilder(object_info)
    names = _names(mode)
    out = _front(b, mode, README_NOTE.format(title=SUMMARIES[mode][0], summary=SUMMARIES[mode][1], mode=mode,
                                         model_files=MODEL_FILES_NOTE.format(**names), **names))
    masks = b.add(f"{PACK}CanvasMasks", "canvas", canvas_info=out["canvas_info"])
    _canvas_preview(b, mode, out)
    with_lora, vae, embedded = _pack_models_and_prompt(b, names, out["reference"])
    b.note("generate", "Generate", GROUP_NOTES["generate"], 90)
    latent = b.add(f"{PACK}EncodeCanvas", "generate", vae=(vae, 0), canvas=out["canvas"])
    samples = b.add(f"{PACK}Sampler", "generate", model=(with_lora, 0), positive=(embedded, 0),
                    negative=(embedded, 1), canvas_latent=(latent, 0), mask=(masks, 0), **SAMPLER)
    decoded = b.add(f"{PACK}DecodeLatent", "generate", vae=(vae, 0), samples=(samples, 0))
    _result(b, mode, decoded, out)
    return b.to_json(str(uuid.uuid5(uuid.NAMESPACE_URL, f"dreamactor-m2/{mode}")))


def build_native_workflow(object_info: dict, mode: str) -> dict:
    """The UI-format workflow of ``mode`` on ComfyUI's own HunyuanVideo 1.5 stack: core loaders, text and
    image encoders, KSampler and VAE decode, with the pack's pose, canvas, prompt and result nodes and
    DreamActor-M2 Canvas To Video joining the two."""
    b = WorkflowBuilder(object_info, prefix="native_")
    names = _names(mode)
    out = _front(b, mode, NATIVE_README_NOTE.format(title=SUMMARIES[mode][0], summary=SUMMARIES[mode][1], mode=mode,
                                         model_files=MODEL_FILES_NOTE.format(**names), **names))
    _canvas_preview(b, mode, out)
    b.note("models", "Models", NATIVE_NOTES["models"], 130)
    model = b.add("UNETLoader", "models", unet_name=names["transformer"], weight_dtype="default")
    with_lora = b.add("LoraLoaderModelOnly", "models", model=(model, 0), lora_name=names["lora"], strength_model=1.0)
    shifted = b.add("ModelSamplingSD3", "models", model=(with_lora, 0), shift=SAMPLER["shift"])
    vae = b.add("VAELoader", "models", vae_name=names["vae"])
    clip = b.add("DualCLIPLoader", "models", clip_name1=names["text_encoder"], clip_name2=names["glyph_encoder"],
                 type="hunyuan_video_15")
    clip_vision = b.add("CLIPVisionLoader", "models", clip_name=names["image_encoder"])
    b.note("prompt", "Prompt", NATIVE_NOTES["prompt"], 110)
    prompt = _prompt(b)
    positive = b.add("CLIPTextEncode", "prompt", title="Positive prompt", text=(prompt, 0), clip=(clip, 0))
    negative = b.add("CLIPTextEncode", "prompt", title="Negative prompt", text=PROMPT["negative"], clip=(clip, 0))
    # No crop: SigLIP sees the whole reference squeezed to 384 x 384, as the pack's encoder (and training) does.
    seen = b.add("CLIPVisionEncode", "prompt", title="Reference for SigLIP", clip_vision=(clip_vision, 0),
                 image=out["reference"], crop="none")
    b.note("generate", "Generate", NATIVE_NOTES["generate"], 110)
    conditioned = b.add(f"{PACK}CanvasToVideo", "generate", positive=(positive, 0), negative=(negative, 0),
                        vae=(vae, 0), canvas=out["canvas"], canvas_info=out["canvas_info"],
                        clip_vision_output=(seen, 0), model=(shifted, 0))
    samples = b.add("KSampler", "generate", model=(shifted, 0), positive=(conditioned, 0), negative=(conditioned, 1),
                    latent_image=(conditioned, 2), seed=SAMPLER["seed"], steps=SAMPLER["steps"], cfg=SAMPLER["cfg"],
                    sampler_name=SAMPLER["solver"], scheduler="simple", denoise=1.0)
    decoded = b.add("VAEDecodeTiled", "generate", samples=(samples, 0), vae=(vae, 0))
    _result(b, mode, decoded, out)
    return b.to_json(str(uuid.uuid5(uuid.NAMESPACE_URL, f"dreamactor-m2/native_{mode}")))


LONG_README_NOTE = """## DreamActor-M2 · long videos (streamed)

*DreamActor-M2 Animate Long Video* takes the driving video straight from *Load Video* and animates it
window by window (31 latent frames = 121 video frames each, every window continuing the last 3 latent
frames of the one before), writing each window to the result before the next starts: memory is that
of one window whatever the clip's length, and nothing becomes one big IMAGE batch. Before sampling
the log gives the window and forward counts; after the first forward, the time estimate.

{model_files} Train the LoRA with `python -m dreamactor_core train`.

**Use**: reference picture, driving video of any length, prompt, queue. `mode` pose uses skeletons
(`{pose_lora}`); for rgb, switch `mode` and the LoRA to `{rgb_lora}`. `max_frames` limits
the clip; `window_frames` sets memory (fewer frames: less memory, more windows). Low memory: in
*Load Model* set `weight_storage` to fp8_e4m3fn and `offload` to block.
"""
LONG_NOTES = {
    "inputs": "Reference picture and driving video (any length: it is streamed from its file, never loaded "
              "whole).",
    "generate": "Animate Long Video samples the clip window by window into an mp4 at the driving video's "
                "frame rate; Save Video keeps it. The report output repeats the estimate.\n\n**Several "
                "people** (all characters in the one reference picture): `pose_backend` `mediapipe` follows "
                "one person; `mediapipe_multi` (no download; upright, whole people), `dwpose` or `openpose` "
                "find and track several. `pose_box` `group` (the paper's rule) keeps their sizes and places; "
                "`person` puts person k (ids by first appearance, left to right) in the k-th of equal panel "
                "columns. In rgb mode the frames drive as they are, the model pairing people with characters.",
}


def build_long_video_workflow(object_info: dict, mode: str) -> dict:
    """The streamed long-video workflow: Load Video -> DreamActor-M2 Animate Long Video -> Save Video,
    on the pack's loaders and encoders (no IMAGE batch of the clip anywhere)."""
    b = WorkflowBuilder(object_info, prefix="long_")
    names = _names(mode)
    for key, title in (("inputs", "1 · Reference and driving video"), ("models", "2 · Models"),
                       ("prompt", "3 · Target-oriented prompt"), ("generate", "4 · Animate and save")):
        b.group(key, title)
    readme = LONG_README_NOTE.format(model_files=MODEL_FILES_NOTE.format(**names), pose_lora=names["lora"],
                                     rgb_lora=DEFAULT_MODELS["rgb_lora"].name)
    b.note("inputs", "Read me", readme, 560)
    b.note("inputs", "Inputs", LONG_NOTES["inputs"], 90)
    reference = b.add("LoadImage", "inputs", title="Reference picture", image="reference.png")
    video = b.add("LoadVideo", "inputs", title="Driving video", file="driving.mp4")
    with_lora, vae, embedded = _pack_models_and_prompt(b, names, (reference, 0))
    b.note("generate", "Generate", LONG_NOTES["generate"], 180)
    animation = b.add(f"{PACK}AnimateLongVideo", "generate", title="Animate long video", model=(with_lora, 0),
                      vae=(vae, 0), positive=(embedded, 0), negative=(embedded, 1), reference=(reference, 0),
                      reference_mask=(reference, 1), video=(video, 0), mode=mode, width=PANEL_WIDTH,
                      height=PANEL_HEIGHT, **SAMPLER)
    b.add("SaveVideo", "generate", title="Save animation", video=(animation, 0),
          filename_prefix=f"dreamactor_m2/{b.prefix}{mode}_animation")
    return b.to_json(str(uuid.uuid5(uuid.NAMESPACE_URL, "dreamactor-m2/long_video")))


# File stem -> (builder, mode, thumbnail mode): every shipped workflow.
WORKFLOW_BUILDERS = {f"dreamactor_m2_{mode}": (build_workflow, mode) for mode in MODES} | {
    f"dreamactor_m2_native_{mode}": (build_native_workflow, mode) for mode in MODES} | {
    "dreamactor_m2_long_video": (build_long_video_workflow, "pose")}


def build(object_info: dict, name: str) -> dict:
    """The shipped workflow ``workflows/<name>.json``."""
    builder, mode = WORKFLOW_BUILDERS[name]
    return builder(object_info, mode)


def write_thumbnail(mode: str, path: Path) -> Path:
    """The template card: frame 0 of the canvas this mode builds from the bundled sample inputs
    (astronaut photo, dancer clip), i.e. what the workflow feeds the model."""
    from PIL import Image
    from real_data import skimage_photo, template_clip

    from dreamactor_core.canvas.composite import build_canvas
    from dreamactor_core.pose import extract, render
    from dreamactor_core.pose.augment import augment_clip
    from dreamactor_core.video_io import read_clip, to_uint8_frames, to_unit_frames

    reference = to_unit_frames(skimage_photo("astronaut")[None])
    driving = to_unit_frames(read_clip(template_clip(), max_frames=1).frames)
    panel = (PANEL_WIDTH // 2, PANEL_HEIGHT // 2)
    if mode == "pose":
        poses = extract.extract_poses(driving, extract.make_estimator("mediapipe", video=False))
        driving = render.render_poses(augment_clip(poses, panel=panel), *panel)
    canvas, _ = build_canvas(reference, driving, width=panel[0], height=panel[1])
    Image.fromarray(to_uint8_frames(canvas[0])).save(path, quality=88)
    return path


def write_all(object_info: dict, thumbnails: bool = True) -> list[Path]:
    written = []
    for name, (_, mode) in WORKFLOW_BUILDERS.items():
        path = WORKFLOWS / f"{name}.json"
        path.write_text(json.dumps(build(object_info, name), indent=1) + "\n")
        written.append(path)
        if thumbnails:
            written.append(write_thumbnail(mode, path.with_suffix(".jpg")))
    return written


def main() -> None:
    from comfy_harness.provision import ensure_comfyui
    from comfy_harness.server import ComfyServer

    with tempfile.TemporaryDirectory(prefix="dreamactor-build-") as scratch:
        with ComfyServer(ensure_comfyui(), Path(scratch), packs={"ComfyUI-DreamActor-M2": REPO}) as server:
            object_info = server.object_info()
    for path in write_all(object_info):
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
