"""The pack inside real ComfyUI: registration, conventions, a prompt through a pack node,
workflow templates, node errors, and the UI-to-API converter against the real server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from comfy_harness.server import PromptFailed
from comfy_harness.workflow import ui_to_api

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]


def _pack_nodes(object_info: dict) -> dict:
    return {name: info for name, info in object_info.items() if info.get("python_module", "").endswith("DreamActor-M2")}


def _literal_constants(path: Path, *names: str) -> dict:
    """Module-level string constants read from the source (the module itself imports ComfyUI)."""
    tree = ast.parse(path.read_text())
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in names}


def test_every_pack_node_is_registered_with_category_description_and_tooltips(comfy):
    object_info = comfy.object_info()
    pack = _pack_nodes(object_info)
    naming = _literal_constants(REPO / "nodes" / "comfy_bridge.py", "NODE_PREFIX", "CATEGORY_ROOT")
    assert pack, "no node of the pack reached /object_info"
    for name, info in pack.items():
        assert name.startswith(naming["NODE_PREFIX"]), name
        assert info["category"].split("/")[0] == naming["CATEGORY_ROOT"], (name, info["category"])
        assert info["description"].strip(), f"{name} has no description"
        for group in ("required", "optional"):
            for input_name, spec_ in info["input"].get(group, {}).items():
                options = spec_[1] if len(spec_) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_prompt_through_a_pack_node_runs(comfy):
    prompt = {
        "1": {"class_type": "DreamActorM2_TargetOrientedPrompt",
              "inputs": {"motion": "a person is waving both hands", "appearance": "a gray bird with colorful feathers"}},
        "2": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["1", 0], "name": "fused_prompt"}},
    }
    comfy.run(prompt)
    assert comfy.probe("fused_prompt") == "a gray bird with colorful feathers is waving both hands."


def test_a_bad_input_is_a_clear_node_error_and_the_server_lives_on(comfy):
    prompt = {"1": {"class_type": "DreamActorM2_TargetOrientedPrompt", "inputs": {"motion": " ", "appearance": ""}},
              "2": {"class_type": "DreamActorTest_Probe", "inputs": {"value": ["1", 0], "name": "never"}}}
    with pytest.raises(PromptFailed) as failure:
        comfy.run(prompt)
    assert failure.value.node_type == "DreamActorM2_TargetOrientedPrompt"
    assert "motion and the appearance descriptions are empty" in failure.value.exception_message
    assert comfy.get("/system_stats")["system"]["comfyui_version"] == "0.3.75"


def test_every_shipped_workflow_is_listed_as_a_template(comfy):
    shipped = {p.stem for p in (REPO / "workflows").glob("*.json")}
    listed = set(comfy.get("/workflow_templates").get("ComfyUI-DreamActor-M2", []))
    assert listed == shipped


def _node(ident, kind, inputs=(), outputs=(), widgets=None, mode=0):
    return {"id": ident, "type": kind, "mode": mode, "inputs": list(inputs), "outputs": list(outputs),
            "widgets_values": widgets if widgets is not None else []}


def test_ui_workflow_with_reroute_primitive_bypass_mute_and_note_runs(comfy):
    workflow = {
        "version": 0.4,
        "nodes": [
            _node(1, "EmptyImage", inputs=[{"name": "width", "type": "INT", "link": 5, "widget": {"name": "width"}}],
                  widgets=[64, 32, 2, 0]),
            _node(5, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [5]}], widgets=[48, "fixed"]),
            _node(2, "Reroute", inputs=[{"name": "", "type": "*", "link": 1}]),
            _node(3, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 2}], mode=4),
            _node(4, "DreamActorTest_Probe", inputs=[{"name": "value", "type": "*", "link": 3}], widgets=["converted"]),
            _node(6, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 4}], mode=2),
            _node(7, "Note", widgets=["a note on the canvas"]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"],
                  [4, 1, 0, 6, 0, "IMAGE"], [5, 5, 0, 1, 0, "INT"]],
        "groups": [{"title": "inputs", "bounding": [0, 0, 100, 100]}],
    }
    prompt = ui_to_api(workflow, comfy.object_info())
    assert set(prompt) == {"1", "4"}
    assert prompt["1"]["inputs"] == {"width": 48, "height": 32, "batch_size": 2, "color": 0}
    assert prompt["4"]["inputs"]["value"] == ["1", 0]
    comfy.run(prompt)
    image = comfy.probe("converted")
    assert image.shape == (2, 32, 48, 3)
    assert torch.count_nonzero(image) == 0  # bypassed invert passed the black image through


def test_ui_workflow_with_a_subgraph_runs(comfy):
    subgraph = {
        "id": "sg-invert", "name": "invert twice then once",
        "inputs": [{"id": "in0", "name": "image", "type": "IMAGE", "linkIds": [11]}],
        "outputs": [{"id": "out0", "name": "IMAGE", "type": "IMAGE", "linkIds": [12]}],
        "nodes": [_node(1, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 11}])],
        "links": [{"id": 11, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
                  {"id": 12, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}],
    }
    workflow = {
        "version": 1,
        "nodes": [
            _node(1, "EmptyImage", widgets=[16, 8, 1, 0]),
            _node(2, "sg-invert", inputs=[{"name": "image", "type": "IMAGE", "link": 1}]),
            _node(3, "DreamActorTest_Probe", inputs=[{"name": "value", "type": "*", "link": 2}], widgets=["subgraph"]),
        ],
        "links": [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"},
                  {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "IMAGE"}],
        "definitions": {"subgraphs": [subgraph]},
    }
    prompt = ui_to_api(workflow, comfy.object_info())
    assert prompt["2:1"]["inputs"]["image"] == ["1", 0]
    assert prompt["3"]["inputs"]["value"] == ["2:1", 0]
    comfy.run(prompt)
    assert torch.all(comfy.probe("subgraph") == 1.0)


def test_missing_node_types_are_named(comfy):
    workflow = {"nodes": [_node(1, "SomePackThatIsNotInstalled")], "links": []}
    with pytest.raises(ValueError, match="SomePackThatIsNotInstalled"):
        ui_to_api(workflow, comfy.object_info())
