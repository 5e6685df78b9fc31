"""Which latent frames each window of a streamed run samples, and what the run will cost.

A clip of L latent frames (latent frame 0 holds the reference) is cut into windows of at most
``window`` latent frames. Every window starts with latent frame 0 (the reference: every window sees
the identity). Window 0 samples latent frames 1..window-1; each later window repeats the last
``context`` latent frames of what is already generated as GIVEN cells (the motion context, marked
1 in the canvas mask like the reference) and samples ``window - 1 - context`` new ones. Nothing is
blended: a latent frame is generated once, by one window, and later windows only read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DreamActorError


@dataclass(frozen=True)
class Window:
    """Global latent frame indices: ``context`` (given, from earlier windows) then ``new`` (sampled
    here). The window's own latent is [0, *context, *new]."""

    context: tuple[int, ...]
    new: tuple[int, ...]

    @property
    def latent_frames(self) -> tuple[int, ...]:
        return (0, *self.context, *self.new)


def plan_windows(latent_frames: int, window: int, context: int) -> list[Window]:
    """The windows covering latent frames 1..latent_frames-1 (see the module doc). ``window`` <= 0,
    or a clip that fits one window, gives one window with no context (the unstreamed computation)."""
    if latent_frames < 1:
        raise DreamActorError(f"latent frames: expected at least 1, got {latent_frames}")
    if window <= 0 or latent_frames <= window:
        return [Window((), tuple(range(1, latent_frames)))]
    if not 0 <= context <= window - 3:
        raise DreamActorError(f"context_frames: expected 0..{window - 3} latent frames (a window of {window} holds "
                              f"the reference, the context and at least one new frame), got {context}")
    windows = [Window((), tuple(range(1, window)))]
    step = window - 1 - context
    while windows[-1].new[-1] < latent_frames - 1:
        done = windows[-1].new[-1] + 1
        windows.append(Window(tuple(range(max(1, done - context), done)),
                              tuple(range(done, min(done + step, latent_frames)))))
    return windows


def estimate_forwards(windows: list[Window], forwards_per_window: int) -> int:
    """Transformer forwards of the run: every window runs the whole schedule once per text branch."""
    return len(windows) * forwards_per_window


def describe_estimate(frames: int, windows: list[Window], forwards: int, seconds_per_forward: float | None) -> str:
    """The line logged before a run (``seconds_per_forward`` None: not measured yet) and after its
    first forward (measured on the device, so the figure is this machine's)."""
    line = f"{frames} frames: {len(windows)} window(s) of latent frames, {forwards} transformer forwards"
    if seconds_per_forward is None:
        return line + "; time estimate after the first forward"
    total = forwards * seconds_per_forward
    return line + f" at {seconds_per_forward:.2f} s each (measured) = about {total / 60:.1f} min of sampling"
