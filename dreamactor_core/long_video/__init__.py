"""Long driving videos with memory that stays flat as frames grow: the clip is decoded, put on the
canvas, encoded, sampled, decoded and written one window of latent frames at a time, each window
continuing the last latent frames of the one before as given cells of its canvas (``stream.py``).
"""

from .plan import Window, estimate_forwards, plan_windows
from .stream import StreamSettings, animate_stream

__all__ = ["StreamSettings", "Window", "animate_stream", "estimate_forwards", "plan_windows"]
