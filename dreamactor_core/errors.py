"""Errors the engine raises for bad inputs and missing files.

Both derive from standard exceptions so callers that know nothing of this pack still catch them,
and ComfyUI shows their message as a node error instead of a crash.
"""

from __future__ import annotations


class DreamActorError(ValueError):
    """A bad input: the message names the input and says what was expected."""


class MissingModelFile(DreamActorError, FileNotFoundError):
    """A model file is not on disk: the message names the file and the folder it belongs in."""

    def __init__(self, filename: str, folder: str, hint: str = "") -> None:
        message = f"model file '{filename}' not found: put it in the '{folder}' models folder"
        super().__init__(f"{message}. {hint}".strip() if hint else message)
        # Not ``filename``: that is an OSError attribute, and setting it makes str() print
        # "[Errno None] None: 'file'" instead of this message.
        self.model_file = filename
        self.folder = folder
