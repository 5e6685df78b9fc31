"""Target-oriented prompt fusion (method.md): motion description + appearance description -> one prompt."""

from __future__ import annotations

import re

import pytest

from dreamactor_core.conditioning.prompt import DEFAULT_TEMPLATE, fuse_prompt, motion_action
from dreamactor_core.errors import DreamActorError


@pytest.mark.parametrize("motion, appearance, expected", [
    ("a person is waving both hands", "a gray bird with colorful feathers",
     "a gray bird with colorful feathers is waving both hands."),  # the paper's example
    ("The man jumps.", "a cat", "a cat jumps."),
    ("  a   woman \n dances  ", "an old robot.", "an old robot dances."),  # whitespace and full stops tidied
    ("someone runs", "a dog", "a dog runs."),
    ("Dancer spins", "a fox", "a fox spins."),  # case-insensitive subject
])
def test_generic_subject_is_replaced_by_the_appearance(motion, appearance, expected):
    assert fuse_prompt(motion, appearance) == expected


def test_motion_without_a_generic_subject_is_kept_whole():
    assert motion_action("dancing wildly") == "dancing wildly"
    # "person" must be a whole word: "personality" is not a subject.
    assert motion_action("a personality quiz") == "a personality quiz"
    assert fuse_prompt("dancing wildly", "a cat") == "a cat dancing wildly."


def test_only_the_leading_subject_is_removed():
    assert motion_action("a man hugs a woman") == "hugs a woman"


def test_one_empty_description_returns_the_other():
    assert fuse_prompt("a person waves", "") == "a person waves."
    assert fuse_prompt("  ", "a gray bird.") == "a gray bird."


def test_both_empty_is_a_clear_error():
    with pytest.raises(DreamActorError, match="both the motion and the appearance descriptions are empty"):
        fuse_prompt(" ", "\n")


def test_template_fields():
    assert fuse_prompt("a person is waving", "a bird", "{motion} | {appearance} | {action}") == \
        "a person is waving | a bird | is waving."
    assert fuse_prompt("a person is waving", "a bird", DEFAULT_TEMPLATE) == fuse_prompt("a person is waving", "a bird")


@pytest.mark.parametrize("template, missing", [
    ("a dancing robot", "{appearance} and {action} or {motion}"),  # no placeholder: both would be dropped
    ("{appearance} on a beach", "{action} or {motion}"),
    ("someone {action}", "{appearance}"),
])
def test_a_template_that_would_drop_a_description_is_a_clear_error(template, missing):
    with pytest.raises(DreamActorError, match=re.escape(f"lacks {missing}")):
        fuse_prompt("a person waves", "a bird", template)
    with pytest.raises(DreamActorError, match="lacks"):  # also when one description is empty
        fuse_prompt("", "a bird", template)


def test_a_template_may_use_either_motion_field():
    assert fuse_prompt("a person waves", "a bird", "{appearance}, {motion}") == "a bird, a person waves."


@pytest.mark.parametrize("template", ["{subject}", "{0}"])
def test_unknown_template_field_is_a_clear_error(template):
    with pytest.raises(DreamActorError, match=r"prompt template: unknown field .*\{appearance\}"):
        fuse_prompt("a person waves", "a bird", template)


def test_malformed_template_is_a_clear_error():
    with pytest.raises(DreamActorError, match="prompt template"):
        fuse_prompt("a person waves", "a bird", "{appearance")


def test_fusion_is_deterministic():
    assert len({fuse_prompt("a person is waving", "a bird") for _ in range(5)}) == 1
