"""Widget values by position, without a server: the seed-control entry and converted widgets."""

from comfy_harness.workflow import ui_to_api

OBJECT_INFO = {
    "Sampler": {
        "input": {"required": {"model": ["MODEL"], "seed": ["INT", {"default": 0, "control_after_generate": True}],
                               "steps": ["INT", {"default": 20}], "sampler": [["euler", "heun"]],
                               "latent": ["LATENT"]},
                  "optional": {"note": ["STRING", {"forceInput": True}], "cfg": ["FLOAT", {}]}},
        "input_order": {"required": ["model", "seed", "steps", "sampler", "latent"], "optional": ["note", "cfg"]},
    },
    "Loader": {"input": {"required": {"name": [["a.safetensors"]]}},
               "input_order": {"required": ["name"]}},
}


def test_seed_control_entry_is_skipped_and_force_inputs_take_no_widget_value():
    workflow = {"nodes": [
        {"id": 1, "type": "Loader", "mode": 0, "widgets_values": ["a.safetensors"], "outputs": []},
        {"id": 2, "type": "Sampler", "mode": 0, "widgets_values": [1234, "randomize", 8, "heun", 3.5],
         "inputs": [{"name": "model", "type": "MODEL", "link": 1}]},
    ], "links": [[1, 1, 0, 2, 0, "MODEL"]]}
    prompt = ui_to_api(workflow, OBJECT_INFO)
    assert prompt["2"]["inputs"] == {"model": ["1", 0], "seed": 1234, "steps": 8, "sampler": "heun", "cfg": 3.5}


def test_widget_converted_to_a_linked_input_takes_the_link():
    workflow = {"nodes": [
        {"id": 1, "type": "Loader", "mode": 0, "widgets_values": ["a.safetensors"]},
        {"id": 2, "type": "Sampler", "mode": 0, "widgets_values": [7, "fixed", 8, "euler", 1.0],
         "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                    {"name": "steps", "type": "INT", "link": 2, "widget": {"name": "steps"}}]},
        {"id": 3, "type": "PrimitiveNode", "mode": 0, "widgets_values": [30, "fixed"]},
    ], "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 3, 0, 2, 1, "INT"]]}
    prompt = ui_to_api(workflow, OBJECT_INFO)
    assert prompt["2"]["inputs"]["steps"] == 30
    assert prompt["2"]["inputs"]["seed"] == 7
