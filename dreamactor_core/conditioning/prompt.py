"""Target-oriented text guidance (DreamActor-M2, method.md): fuse a description of the driving
motion with a description of the reference appearance into one prompt.

The paper has an LLM do the fusion; without one, a template does the same job deterministically:
the motion description's subject ("a person", "a man", ...) is replaced by the appearance
description, so "a person is waving both hands" + "a gray bird with colorful feathers" becomes
"a gray bird with colorful feathers is waving both hands".
"""

from __future__ import annotations

import re

from ..errors import DreamActorError

DEFAULT_TEMPLATE = "{appearance} {action}"

# Generic subjects a motion captioner uses for the driving performer.
_SUBJECT = re.compile(
    r"^\s*(?:the|a|an|one)?\s*(?:person|man|woman|boy|girl|child|kid|human|people|performer|dancer|"
    r"character|figure|subject|someone|individual|guy|lady)\b\s*",
    re.IGNORECASE,
)


def _clean(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(".")


def motion_action(motion: str) -> str:
    """The motion description without its generic subject ("a person is waving" -> "is waving")."""
    text = _clean(motion)
    stripped = _SUBJECT.sub("", text, count=1)
    return stripped if stripped != text else text


def fuse_prompt(motion: str, appearance: str, template: str = DEFAULT_TEMPLATE) -> str:
    """Build the target-oriented prompt from a motion and an appearance description.

    ``template`` may use ``{appearance}``, ``{action}`` (the motion without its subject) and
    ``{motion}`` (the motion as written). Either description may be empty, not both.
    """
    motion, appearance = _clean(motion), _clean(appearance)
    if not motion and not appearance:
        raise DreamActorError("prompt: both the motion and the appearance descriptions are empty")
    if not appearance:
        return motion + "."
    if not motion:
        return appearance + "."
    try:
        text = template.format(appearance=appearance, action=motion_action(motion), motion=motion)
    except (KeyError, IndexError) as error:
        raise DreamActorError(
            f"prompt template: unknown field {error}; use {{appearance}}, {{action}} or {{motion}}"
        ) from None
    except ValueError as error:
        raise DreamActorError(f"prompt template {template!r} is malformed: {error}") from None
    return _clean(text) + "."
