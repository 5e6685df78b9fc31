"""Packaging rules: dependencies declared once, the engine free of ComfyUI, imports light and offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tomllib

from comfy_harness.provision import ensure_comfyui

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["diffusers", "transformers", "mediapipe", "onnxruntime", "controlnet_aux", "cv2", "jax", "peft", "accelerate"]
COMFY_MODULES = ["comfy", "folder_paths", "server", "execution", "comfy_api", "comfy_execution", "nodes"]

# Runs in a fresh interpreter: forbids network connections, imports something, prints what got imported.
PROBE = """
import json, socket, sys
def refuse(*args, **kwargs):
    raise RuntimeError("network access at import time")
socket.socket.connect = refuse
socket.create_connection = refuse
{body}
print(json.dumps(sorted(name.split(".")[0] for name in sys.modules)))
"""


def _imported(body: str, cwd: Path, extra_path: list[str]) -> set[str]:
    code = PROBE.format(body=body)
    env_path = ":".join([str(REPO)] + extra_path)
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                            env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def _requirement_lines() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_requirements_txt_and_pyproject_list_the_same_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(project["dependencies"]) == sorted(_requirement_lines())


def test_requirements_never_ask_for_torch():
    names = {line.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower() for line in _requirement_lines()}
    assert not names & {"torch", "torchvision", "torchaudio"}


def test_pyproject_is_ready_for_the_comfy_registry():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy = data["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and "Icon" in comfy
    assert comfy["requires-comfyui"].startswith(">=0.3.60")
    assert data["project"]["name"] and data["project"]["version"]


def test_engine_imports_without_comfyui_and_without_heavy_dependencies(tmp_path):
    imported = _imported("import dreamactor_core, dreamactor_core.errors, dreamactor_core.progress, "
                         "dreamactor_core.conditioning.prompt", tmp_path, [])
    assert not imported & set(COMFY_MODULES)
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_engine_never_imports_comfyui_anywhere():
    offenders = []
    for path in (REPO / "dreamactor_core").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("import", "from") and words[1].split(".")[0] in COMFY_MODULES:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_loading_the_pack_imports_nothing_heavy_and_touches_no_network(tmp_path):
    comfy_dir = ensure_comfyui()
    body = (
        "import importlib.util, folder_paths\n"
        f"spec = importlib.util.spec_from_file_location('dreamactor_pack', r'{REPO / '__init__.py'}', "
        f"submodule_search_locations=[r'{REPO}'])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['dreamactor_pack'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert module.NODE_CLASS_MAPPINGS\n"
    )
    imported = _imported(body, comfy_dir, [str(comfy_dir)])
    assert not imported & set(HEAVY), imported & set(HEAVY)
