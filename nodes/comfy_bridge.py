"""The few places where the pack's nodes touch ComfyUI itself: progress bars and interruption.

Everything else in ``nodes/`` is plain type conversion and calls into ``dreamactor_core``.
"""

from __future__ import annotations

from ..dreamactor_core.progress import ProgressHook


def progress_hook(total: int) -> ProgressHook:
    """A core progress hook that drives a ComfyUI progress bar and honours the Cancel button.

    ComfyUI's interrupt is an exception raised from the hook, so the engine unwinds through its
    own ``finally`` blocks and leaves every model as it found it.
    """
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def hook(done: int, hook_total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, hook_total)

    return hook
