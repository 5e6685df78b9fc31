"""The RGB stage's manifest: round trip, relative paths, append-only, clear errors."""

from pathlib import Path

import pytest

from dreamactor_core.errors import DreamActorError
from dreamactor_core.train.manifest import Triplet, append_triplet, read_manifest


def _files(folder: Path, name: str) -> Triplet:
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, suffix in (("driving", ".mp4"), ("target", ".mp4"), ("reference", ".png"), ("identity", ".png")):
        paths[kind] = folder / "clips" / f"{name}_{kind}{suffix}"
        paths[kind].write_bytes(b"x")
    return Triplet(paths["driving"], paths["target"], paths["reference"], f"a dancer {name}", 4.7,
                   {"imaging": 4.8, "motion": 4.6}, paths["identity"], f"src/{name}.mp4")


def test_round_trip_relative_paths_and_append_only(tmp_path):
    manifest = tmp_path / "data" / "manifest.jsonl"
    first, second = _files(tmp_path / "data", "a"), _files(tmp_path / "data", "b")
    append_triplet(manifest, first)
    before = manifest.read_bytes()
    append_triplet(manifest, second)
    assert manifest.read_bytes().startswith(before)  # existing lines untouched
    assert '"clips/a_driving.mp4"' in manifest.read_text()  # stored relative to the manifest
    assert read_manifest(manifest) == [first, second]
    moved = tmp_path / "moved"
    (tmp_path / "data").rename(moved)  # the folder travels as a whole
    assert read_manifest(moved / "manifest.jsonl")[1].target == moved / "clips" / "b_target.mp4"


def test_a_torn_last_line_does_not_merge_with_the_next(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    append_triplet(manifest, _files(tmp_path, "a"))
    with open(manifest, "a") as handle:
        handle.write('{"driving": "cl')  # a crash mid-write
    append_triplet(manifest, _files(tmp_path, "b"))
    with pytest.raises(DreamActorError, match="line 2: not valid JSON"):
        read_manifest(manifest)
    assert manifest.read_text().splitlines()[2].startswith('{"driving": "clips/b_driving.mp4"')


@pytest.mark.parametrize("content, message", [
    ("", "holds no triplets"),
    ("\n\n", "holds no triplets"),
    ("[1, 2]\n", "line 1: expected a JSON object"),
    ('{"driving": "x"}\n', "line 1: missing field"),
    ('{"driving": "x.mp4", "target": "t.mp4", "reference": "r.png", "prompt": "p", "score": 4.6}\n',
     "driving file .* does not exist"),
])
def test_bad_manifests_are_clear_errors(tmp_path, content, message):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(content)
    with pytest.raises(DreamActorError, match=message):
        read_manifest(manifest)


def test_missing_manifest(tmp_path):
    with pytest.raises(DreamActorError, match="does not exist"):
        read_manifest(tmp_path / "nope.jsonl")
