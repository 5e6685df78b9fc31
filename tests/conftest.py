"""Shared fixtures: the real ComfyUI server every node test runs in."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_harness.provision import ensure_comfyui
from comfy_harness.server import ComfyServer

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "ComfyUI-DreamActor-M2"


def _pack_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> ComfyServer:
    """A ComfyUI server (not started) with this pack and the probe pack, in a new base directory."""
    return ComfyServer(ensure_comfyui(), tmp_path_factory.mktemp(name),
                       packs={PACK_NAME: REPO, "dreamactor_test_probe": REPO / "tests" / "comfy_probe"})


@pytest.fixture(scope="session")
def comfy(tmp_path_factory: pytest.TempPathFactory):
    """A real ComfyUI 0.3.75 (CPU) with this pack and the test probe pack, for the whole session."""
    with _pack_server(tmp_path_factory, "comfyui") as server:
        yield server


@pytest.fixture(scope="module")
def comfy_fresh(tmp_path_factory: pytest.TempPathFactory):
    """A ComfyUI (CPU) of the test module's own, for tests that change model-management state
    (loaded models, simulated memory states) or need caches no other test filled, without touching
    or slowing the session's ``comfy``. ComfyUI refuses --lowvram/--novram/--highvram together with
    --cpu, so memory states are simulated through the probe pack, not given as flags."""
    with _pack_server(tmp_path_factory, "comfyui_fresh") as server:
        yield server


@pytest.fixture(scope="session")
def train_cache(tmp_path_factory: pytest.TempPathFactory):
    """One pose and prompt cache for every training test: the dancer clip's poses are extracted once."""
    return tmp_path_factory.getbasetemp() / "train_cache"
