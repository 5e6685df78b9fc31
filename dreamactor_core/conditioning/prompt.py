"""Target-oriented text guidance (DreamActor-M2, method.md): fuse a description of the driving
motion with a description of the reference appearance into one prompt.

The paper has an LLM do the fusion; without one, a template does the same job deterministically:
the motion description's subject ("a person", "a man", ...) is replaced by the appearance
description, so "a person is waving both hands" + "a gray bird with colorful feathers" becomes
"a gray bird with colorful feathers is waving both hands".
"""

from __future__ import annotations

import re
import string

from ..errors import DreamActorError

DEFAULT_TEMPLATE = "{appearance} {action}"
FIELDS = ("appearance", "action", "motion")

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


def check_template(template: str) -> None:
    """Refuse a template that would drop a description: it must hold ``{appearance}`` and one of
    ``{action}`` or ``{motion}``, and no other field. A template of fixed words would silently
    replace both descriptions, which is never what the fusion is for (write the prompt directly)."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise DreamActorError(f"prompt template {template!r} is malformed: {error}") from None
    unknown = sorted(fields - set(FIELDS))
    if unknown:
        raise DreamActorError(f"prompt template: unknown field {unknown[0]!r}; use {{appearance}}, "
                              "{action} or {motion}")
    missing = ([] if "appearance" in fields else ["{appearance}"]) + \
        ([] if fields & {"action", "motion"} else ["{action} or {motion}"])
    if missing:
        raise DreamActorError(f"prompt template {template!r} lacks {' and '.join(missing)}, so that description "
                              "would be dropped; put both in the template (e.g. the default "
                              f"{DEFAULT_TEMPLATE!r})")


def fuse_prompt(motion: str, appearance: str, template: str = DEFAULT_TEMPLATE) -> str:
    """Build the target-oriented prompt from a motion and an appearance description.

    ``template`` uses ``{appearance}`` and ``{action}`` (the motion without its subject) or
    ``{motion}`` (the motion as written); one missing is an error (``check_template``), checked even
    when a description is empty. Either description may be empty, not both.
    """
    check_template(template)
    motion, appearance = _clean(motion), _clean(appearance)
    if not motion and not appearance:
        raise DreamActorError("prompt: both the motion and the appearance descriptions are empty")
    if not appearance:
        return motion + "."
    if not motion:
        return appearance + "."
    try:
        text = template.format(appearance=appearance, action=motion_action(motion), motion=motion)
    except (KeyError, IndexError, ValueError, AttributeError) as error:  # e.g. "{appearance.x}", "{action[0]}"
        raise DreamActorError(f"prompt template {template!r} cannot be filled: {error}") from None
    return _clean(text) + "."
