"""Nodes: build the DreamActor canvas, its mask, and extract the animation from a generated canvas.

Custom type ``DREAMACTOR_CANVAS``: a ``dreamactor_core.canvas.composite.CanvasLayout`` describing a
built canvas (panel size, fit, frame corrections, transition, fps); the mask and result nodes read it.
The mask leaves here per pixel (MASK); the sampler packs it to the latent grid of the model it
actually runs, so no second backbone choice can disagree with the loaded one.
"""

from __future__ import annotations

from ..dreamactor_core.canvas.composite import (
    DEFAULT_MULTIPLE,
    DEFAULT_TEMPORAL,
    FRAME_RULES,
    build_canvas,
    parse_color,
)
from ..dreamactor_core.canvas.masks import canvas_mask
from ..dreamactor_core.canvas.placement import FIT_MODES
from ..dreamactor_core.canvas.result import RESULT_SIZES, extract_result
from .comfy_bridge import CATEGORY_ROOT, progress_hook

CANVAS_TYPE = "DREAMACTOR_CANVAS"
CATEGORY = f"{CATEGORY_ROOT}/canvas"


class BuildCanvas:
    DESCRIPTION = (
        "Builds the DreamActor-M2 in-context canvas: frame 0 is [reference | driving frame 0], every later "
        "frame [black | driving frame t]. Both inputs are fitted to one panel size (rounded for the backbone), "
        "the frame count is made 4k+1, and one second of black driving frames can lead in, as the paper does. "
        "The report says every correction made."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", CANVAS_TYPE, "STRING")
    RETURN_NAMES = ("canvas", "canvas_info", "report")
    OUTPUT_TOOLTIPS = (
        "The canvas frames [frames, height, 2 x width]: encode them with DreamActor-M2 Encode Canvas.",
        "The canvas description, for DreamActor-M2 Canvas Masks and Extract Result.",
        "What was built: panel size, scaling, padding or cropping, frame corrections.",
    )
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "reference": ("IMAGE", {"tooltip": "One reference picture (the character to animate). Several "
                                        "subjects: put them together in one picture."}),
                "driving": ("IMAGE", {"tooltip": "The driving frames: rendered skeletons or a video of any subject."}),
                "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1,
                                  "tooltip": "Panel width in pixels; 0 takes it from the reference (keeping its "
                                             "aspect ratio when height is set). The canvas is twice as wide."}),
                "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1,
                                   "tooltip": "Panel height in pixels; 0 takes it from the reference (keeping its "
                                              "aspect ratio when width is set)."}),
                "fit": (list(FIT_MODES), {"default": "pad", "tooltip": "pad: scale to fit inside the panel and "
                                          "fill the rest (nothing lost); crop: scale to cover the panel and cut "
                                          "the overflow."}),
                "frame_rule": (list(FRAME_RULES), {"default": "pad", "tooltip": "The VAE needs 4k+1 frames. pad: "
                               "repeat the last driving frame (removed again by Extract Result); trim: drop the "
                               "last driving frames."}),
                "transition": ("BOOLEAN", {"default": True, "tooltip": "Lead in with one second of black driving "
                                           "frames (the paper's inference setting); Extract Result cuts it."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 1.0, "max": 240.0, "step": 0.5,
                                  "tooltip": "Frame rate of the driving video: the one-second transition lasts "
                                             "this many frames."}),
                "background": ("STRING", {"default": "#000000", "tooltip": "Hex colour behind a transparent "
                                          "reference and in the reference panel's padding."}),
            },
            "optional": {
                "reference_mask": ("MASK", {"tooltip": "LoadImage's MASK of the reference (1 = transparent): "
                                            "transparent pixels show the background. An all-zero mask is ignored."}),
                "multiple": ("INT", {"default": DEFAULT_MULTIPLE, "min": 1, "max": 256, "tooltip": "Round the panel "
                                     "to multiples of this (VAE factor x patch size: 16 for HunyuanVideo, "
                                     "HunyuanVideo 1.5 and Wan), so the seam falls between tokens."}),
                "temporal": ("INT", {"default": DEFAULT_TEMPORAL, "min": 1, "max": 16,
                                     "tooltip": "The VAE's temporal factor: the frame count is made a "
                                                "multiple of it plus one."}),
            },
        }

    def build(self, reference, driving, width, height, fit, frame_rule, transition, fps, background,
              reference_mask=None, multiple=DEFAULT_MULTIPLE, temporal=DEFAULT_TEMPORAL) -> tuple:
        # LoadImage gives an all-zero 64x64 mask for pictures without alpha: that means opaque.
        transparency = reference_mask if reference_mask is not None and bool(reference_mask.any()) else None
        frames, layout = build_canvas(
            reference, driving, width=width, height=height, fit=fit, multiple=multiple, temporal=temporal,
            frame_rule=frame_rule, transition=transition, fps=fps, background=parse_color(background),
            reference_transparency=transparency, progress=progress_hook(1),
        )
        return (frames, layout, layout.report())


class CanvasMasks:
    DESCRIPTION = (
        "The canvas mask M = [M_r | M_m]: the reference half is given on frame 0 only, the motion half on every "
        "frame. The sampler packs it to the latent grid of the model it runs."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("The pixel mask [frames, height, 2 x width] (1 = given), for the DreamActor-M2 Sampler.",)
    FUNCTION = "masks"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "canvas_info": (CANVAS_TYPE, {"tooltip": "The canvas description from DreamActor-M2 Build Canvas."}),
            }
        }

    def masks(self, canvas_info) -> tuple:
        return (canvas_mask(canvas_info),)


class ExtractResult:
    DESCRIPTION = (
        "Takes the animation out of a generated canvas: its left half, without the transition second and the "
        "frames added for 4k+1, back at the original picture's size. Connect any video saver."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("frames", "fps")
    OUTPUT_TOOLTIPS = ("The animation frames.", "The driving video's frame rate, for the video saver.")
    FUNCTION = "extract"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The decoded canvas (DreamActor-M2 Decode Latent)."}),
                "canvas_info": (CANVAS_TYPE, {"tooltip": "The description of the canvas that was generated."}),
                "cut_transition": ("BOOLEAN", {"default": True, "tooltip": "Remove the black lead-in second "
                                               "(if the canvas has one); its first frame is the reference."}),
                "drop_reference_frame": ("BOOLEAN", {"default": False, "tooltip": "Without a transition, frame 0 "
                                                     "is the reference picture itself: drop it."}),
                "size": (list(RESULT_SIZES), {"default": "reference", "tooltip": "reference: the reference "
                         "picture's size (padding removed); driving: the driving video's size; panel: as generated."}),
            }
        }

    def extract(self, frames, canvas_info, cut_transition, drop_reference_frame, size) -> tuple:
        result = extract_result(frames, canvas_info, cut_transition=cut_transition,
                                drop_reference_frame=drop_reference_frame, size=size)
        return (result, canvas_info.fps)


NODE_CLASS_MAPPINGS = {
    "DreamActorM2_BuildCanvas": BuildCanvas,
    "DreamActorM2_CanvasMasks": CanvasMasks,
    "DreamActorM2_ExtractResult": ExtractResult,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DreamActorM2_BuildCanvas": "DreamActor-M2 Build Canvas",
    "DreamActorM2_CanvasMasks": "DreamActor-M2 Canvas Masks",
    "DreamActorM2_ExtractResult": "DreamActor-M2 Extract Result",
}
