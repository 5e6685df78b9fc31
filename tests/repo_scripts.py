"""The repository's scripts (scripts/*.py: files, not a package) as modules, for the tests that
drive them (the main job's inputs and prompts, the workflow builder), and its command line run as a
user runs it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py``, imported once per test session."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def run_command(command: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m dreamactor_core COMMAND ARGS`` in a subprocess from the repository root: exit code,
    stdout and stderr as a user sees them."""
    return subprocess.run([sys.executable, "-m", "dreamactor_core", command, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
