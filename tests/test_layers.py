"""The engine's arrows point one way: each layer of ``dreamactor_core`` imports only the layers before
it (README, Architecture). A new import that points backwards fails here, naming the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "dreamactor_core"
# Lower number = more basic. Stages sit on one layer but have their own order (see STAGE_ORDER).
LAYERS = {"errors": 0, "progress": 0, "video_io": 0, "pose": 1, "canvas": 1, "conditioning": 1, "models": 1,
          "sampling": 1, "pipeline": 2, "long_video": 2, "train": 3, "app": 4, "testing": 5, "__main__": 6}
# Within the stage layer: conditioning reads checkpoints from models; the sampler runs models.
STAGE_ORDER = {"pose": 0, "canvas": 0, "models": 1, "conditioning": 2, "sampling": 2}
# Upward imports allowed, each inside a function for a smoke path that never runs on a real job:
# the command line's --tiny option builds tiny random-weight models.
ALLOWED_UPWARD = {("app", "testing")}


def _top(path: Path) -> str:
    return path.relative_to(CORE).parts[0].removesuffix(".py")


def _imports(path: Path):
    """(line, imported top-level part of dreamactor_core, at module level?) for each relative import."""
    tree = ast.parse(path.read_text())
    module_level = {id(node) for node in tree.body}
    package = path.relative_to(CORE).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - (node.level - 1)]) if node.level - 1 <= len(package) else None
            if base is None:
                continue
            parts = base + (node.module.split(".") if node.module else [])
            targets = [parts[0]] if parts else [alias.name for alias in node.names]
            for target in targets:
                yield node.lineno, target, id(node) in module_level


def test_every_core_import_points_to_an_earlier_layer():
    backwards = []
    for path in sorted(CORE.rglob("*.py")):
        here = _top(path)
        for line, target, module_level in _imports(path):
            if target == here or target not in LAYERS:
                continue
            upward = LAYERS[target] > LAYERS[here] or (
                LAYERS[target] == LAYERS[here] == 1 and STAGE_ORDER[target] > STAGE_ORDER[here])
            if upward and not ((here, target) in ALLOWED_UPWARD and not module_level):
                backwards.append(f"{path.relative_to(CORE.parent)}:{line} ({here} -> {target})")
    assert not backwards, "imports against the layer order:\n" + "\n".join(backwards)


def test_the_layer_table_knows_every_top_level_part():
    parts = {_top(path) for path in CORE.rglob("*.py")} - {"__init__"}
    assert parts <= set(LAYERS), parts - set(LAYERS)
