"""Nodes: pose extraction (IMAGE -> POSE_KEYPOINT), pose augmentation (POSE_KEYPOINT -> POSE_KEYPOINT)
and skeleton rendering (POSE_KEYPOINT -> IMAGE), the three steps of the pose-based driving signal."""

from __future__ import annotations

import logging
import os

import torch

from ..dreamactor_core.canvas.placement import FIT_MODES
from ..dreamactor_core.pose import augment, extract, render, types
from .comfy_bridge import CATEGORY_ROOT, POSE_FOLDER, progress_hook

CATEGORY = f"{CATEGORY_ROOT}/pose"
LOG = logging.getLogger(__name__)


def _pose_model_dirs() -> list[str]:
    """The registered pose folder first, then comfyui_controlnet_aux's ckpts (searched in its
    yzd-v/DWPose/ and lllyasviel/Annotators/ layouts)."""
    import folder_paths

    dirs = list(folder_paths.get_folder_paths(POSE_FOLDER))
    for custom_nodes in folder_paths.get_folder_paths("custom_nodes"):
        dirs.append(os.path.join(custom_nodes, "comfyui_controlnet_aux", "ckpts"))
    return dirs


# The backend choice of every node that extracts poses (Pose Extract, Animate Long Video).
BACKEND_WIDGET = (list(extract.BACKENDS), {
    "default": "mediapipe",
    "tooltip": "mediapipe: follows ONE person only, CPU, nothing to download. mediapipe_multi: several "
               "people, CPU, nothing to download (HOG people detector, then MediaPipe on each person; "
               "upright whole people, slower per person). dwpose: every person, onnxruntime (GPU when "
               "available), needs the two DWPose ONNX files. openpose: every person, controlnet-aux "
               "(slower), needs the three lllyasviel/Annotators OpenPose files.",
})


class PoseExtract:
    DESCRIPTION = (
        "Finds whole-body poses (body, hands, face) in every frame. Frames where nobody is found stay "
        "as empty frames, so the pose clip has as many frames as the video. mediapipe runs anywhere "
        "with no download but follows ONE person only (MediaPipe Holistic is single-person). For several "
        "people: mediapipe_multi (no download either: OpenCV's HOG people detector boxes upright, whole "
        "people and Holistic runs on each box; seated or half-hidden people are often missed), or dwpose "
        "(or openpose). Their people are tracked across frames and carry a person_id "
        "(ids by first appearance, left to right among people appearing together). dwpose needs yolox_l.onnx and "
        "dw-ll_ucoco_384.onnx in models/dreamactor_pose (or comfyui_controlnet_aux's ckpts/yzd-v/DWPose); "
        "openpose finds everyone with controlnet-aux and body_pose_model.pth, hand_pose_model.pth and "
        "facenet.pth (models/dreamactor_pose or ckpts/lllyasviel/Annotators)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("POSE_KEYPOINT", "IMAGE")
    RETURN_NAMES = ("pose_keypoint", "preview")
    OUTPUT_TOOLTIPS = (
        "The poses of every frame (normalized coordinates, comfyui_controlnet_aux's format).",
        "The poses drawn as OpenPose skeletons at the frames' size, to check the extraction.",
    )
    FUNCTION = "extract"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The driving video frames (or one image)."}),
                "backend": BACKEND_WIDGET,
                "min_confidence": ("FLOAT", {
                    "default": 0.3, "min": 0.0, "max": 1.0, "step": 0.05,
                    "tooltip": "Points the detector is less sure of are left out (missing, not guessed).",
                }),
            },
            "optional": {
                "track_people": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "mediapipe_multi/dwpose/openpose: keep each person's identity from frame to frame (box overlap "
                               "and keypoint distance, through short occlusions) and write it as person_id, "
                               "so Pose Augment gives each person their own body and box. mediapipe sees one "
                               "person and is never tracked.",
                }),
            },
        }

    def extract(self, images: torch.Tensor, backend: str, min_confidence: float = 0.3, track_people: bool = True):
        estimator = extract.make_estimator(backend, () if backend in extract.OFFLINE_BACKENDS else _pose_model_dirs(),
                                           video=len(images) > 1)
        LOG.info("DreamActor-M2 pose extraction with %s on %d frames", estimator.description, len(images))
        track = track_people and backend in extract.MULTI_PERSON_BACKENDS
        poses = extract.extract_poses(images, estimator, min_confidence, progress_hook(len(images)), track=track)
        return types.to_pose_keypoint(poses, person_ids=track), render.render_poses(poses)


class PoseAugment:
    DESCRIPTION = (
        "DreamActor-M2's pose augmentations, so the skeleton carries the motion but not the driving "
        "person's body shape: random bone-length scaling per body part (the same for the whole clip) "
        "and one bounding box for the whole clip fitted into the target panel (motion inside the clip "
        "is kept). With a reference pose, the clip is fitted onto the reference character's pose box, "
        "where Build Canvas shows the reference picture in the panel (set fit as there). "
        "Several tracked people (person_id from Pose Extract): each keeps their own bone factors; box "
        "'person' fits each one's own clip box onto the k-th reference character from the left (or the "
        "k-th panel column), person k ranked by id."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("POSE_KEYPOINT",)
    RETURN_NAMES = ("pose_keypoint",)
    OUTPUT_TOOLTIPS = ("The augmented poses, on a canvas of the panel size when normalizing.",)
    FUNCTION = "augment"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "The driving poses (from extraction or any "
                                                               "OpenPose-format source)."}),
                "scale_bones": ("BOOLEAN", {"default": True, "tooltip": "Scale each body part's bone length "
                                                                        "by a random factor."}),
                "scale_min": ("FLOAT", {"default": 0.8, "min": 0.1, "max": 3.0, "step": 0.01,
                                        "tooltip": "Smallest bone-length factor (the paper uses 0.8)."}),
                "scale_max": ("FLOAT", {"default": 1.2, "min": 0.1, "max": 3.0, "step": 0.01,
                                        "tooltip": "Largest bone-length factor (the paper uses 1.2)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF,
                                 "tooltip": "Seed of the bone factors: the same seed gives the same body."}),
                "symmetric": ("BOOLEAN", {"default": True, "tooltip": "Left and right limbs share a factor "
                                                                      "(off: each side drawn apart)."}),
                "normalize_box": ("BOOLEAN", {"default": True, "tooltip": "Fit the clip's pose box into the "
                                                                          "panel below."}),
                "width": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 8,
                                  "tooltip": "Panel width: the driving half of the canvas."}),
                "height": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 8,
                                   "tooltip": "Panel height."}),
                "margin": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 0.45, "step": 0.01,
                                     "tooltip": "Free border around the box, as a fraction of the panel's "
                                                "shorter side."}),
            },
            "optional": {
                "reference_pose": ("POSE_KEYPOINT", {"tooltip": "The reference character's pose (its first "
                                                                "frame): fit the clip onto its box instead of "
                                                                "the whole panel."}),
                "box": (list(augment.BOX_MODES), {
                    "default": "group",
                    "tooltip": "group: one box over every joint of the clip (the paper's rule; people keep their "
                               "relative size and place). person: each tracked person's own clip box, fitted onto "
                               "the reference characters left to right (or equal panel columns).",
                }),
                "fit": (list(FIT_MODES), {
                    "default": "pad",
                    "tooltip": "With a reference pose: how Build Canvas fits the reference picture into the panel "
                               "(set it as there; pad: whole picture, padded; crop: covers the panel, cut), so "
                               "the skeletons land where the characters are shown. Unused without one.",
                }),
            },
        }

    def augment(self, pose_keypoint, scale_bones: bool, scale_min: float, scale_max: float, seed: int,
                symmetric: bool, normalize_box: bool, width: int, height: int, margin: float,
                reference_pose=None, box: str = "group", fit: str = "pad"):
        poses = types.from_pose_keypoint(pose_keypoint)
        tracked = types.has_person_ids(pose_keypoint)  # rows are people only when ids say so
        factors = None
        if scale_bones:
            factors = (augment.person_bone_factors(seed, poses, scale_min, scale_max, symmetric) if tracked
                       else augment.draw_bone_factors(seed, scale_min, scale_max, symmetric))
        reference = types.from_pose_keypoint(reference_pose) if reference_pose is not None else None
        panel = (width, height) if normalize_box or reference is not None else None
        result = augment.augment_clip(poses, factors, panel, margin, reference, box=box, fit=fit)
        return (types.to_pose_keypoint(result, person_ids=tracked),)


class PoseRender:
    DESCRIPTION = (
        "Draws poses as OpenPose-style skeleton images on black (standard limb colours; hands and "
        "face optional), the driving signal of the pose-based mode. Line widths follow the resolution."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("One skeleton image per pose frame (black where nobody is).",)
    FUNCTION = "render"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "The poses to draw."}),
                "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                  "tooltip": "Image width; 0 uses the poses' canvas width."}),
                "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                   "tooltip": "Image height; 0 uses the poses' canvas height."}),
                "draw_hands": ("BOOLEAN", {"default": True, "tooltip": "Draw the hand skeletons."}),
                "draw_face": ("BOOLEAN", {"default": True, "tooltip": "Draw the face points."}),
                "draw_feet": ("BOOLEAN", {"default": False, "tooltip": "Draw toes and heels (when present)."}),
                "min_confidence": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                             "tooltip": "Leave out points below this confidence."}),
            },
        }

    def render(self, pose_keypoint, width: int, height: int, draw_hands: bool, draw_face: bool,
               draw_feet: bool, min_confidence: float):
        poses = types.from_pose_keypoint(pose_keypoint)
        return (render.render_poses(poses, width or None, height or None, draw_hands, draw_face, draw_feet,
                                    min_confidence, progress_hook(len(poses))),)


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_PoseExtract": PoseExtract,
    "DreamActorM2_PoseAugment": PoseAugment,
    "DreamActorM2_PoseRender": PoseRender,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_PoseExtract": "DreamActor-M2 Pose Extract",
    "DreamActorM2_PoseAugment": "DreamActor-M2 Pose Augment",
    "DreamActorM2_PoseRender": "DreamActor-M2 Pose Render",
}
