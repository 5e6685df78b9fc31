"""Real images and clips that nobody here made, found where their packages install them.

Nothing here is committed: scikit-image ships its sample photos; ``scripts/setup_env.sh`` unpacks
the PyPI package ``comfyui-workflow-templates-media-video`` (animated webp clips) into
``.cache/media-video`` and Debian's ``opencv-doc`` (messi5.jpg, vtest.avi) into ``.cache/opencv-doc``.
A missing file is an error that says how to install it, never a silent skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA_CLIPS = ROOT / ".cache" / "media-video" / "comfyui_workflow_templates_media_video" / "templates"
OPENCV_DATA = ROOT / ".cache" / "opencv-doc" / "usr" / "share" / "doc" / "opencv-doc" / "examples" / "data"

DANCER_CLIP = "video_wan21_scail2_character_replacement-1.webp"  # a dancer, 45 frames, 350x350
CARTOON_CLIP = "video_wan2_2_14B_fun_control-1.webp"  # a cartoon girl dancing, 81 frames


def skimage_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as uint8 H x W x C ("astronaut", "chelsea", "coffee", ...)."""
    import skimage.data

    return np.asarray(getattr(skimage.data, name)())


def opencv_sample(name: str) -> Path:
    """Path of a file from Debian's opencv-doc samples ("messi5.jpg", "vtest.avi")."""
    path = OPENCV_DATA / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/setup_env.sh (it unpacks Debian's opencv-doc)")
    return path


def template_clip(name: str = DANCER_CLIP) -> Path:
    """Path of an animated webp clip from comfyui-workflow-templates-media-video."""
    path = MEDIA_CLIPS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/setup_env.sh (it unpacks the clips package)")
    return path
