"""The shipped workflows in ComfyUI's real frontend (comfyui-frontend-package), driven in Debian's
Chromium by Playwright: each loads from the pack's template list with no missing-node or
missing-model dialog, no error toast, no console error from the pack, every node on the canvas, and
the frontend's own API prompt equal to the harness's UI-to-API conversion (so the tests that run
the converted workflows run what an artist's Queue button sends)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from repo_scripts import load_script

from comfy_harness.workflow import ui_to_api
from dreamactor_core.testing.stand_ins import write_tiny_stand_ins

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update"]
PACK = "ComfyUI-DreamActor-M2"
WORKFLOWS = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))

# What the canvas holds after a template loaded, and the API prompt the Run button would queue.
CANVAS_REPORT = """async () => {
  const nodes = window.app.graph.nodes || window.app.graph._nodes;
  const known = new Set(Object.keys(window.LiteGraph.registered_node_types));
  const {output} = await window.app.graphToPrompt();
  return {
    nodeCount: nodes.length,
    unknownTypes: nodes.map(n => n.type).filter(t => !known.has(t)),
    boxes: nodes.map(n => [n.id, ...n.boundingRect]),  // as drawn: title bar and widgets included
    prompt: output,
  };
}"""
# The cards' thumbnails (fetched into blob: URLs) that loaded, in the open dialog.
THUMBNAILS_LOADED = """(count) => [...document.querySelectorAll('.p-dialog img')].filter(
  img => img.complete && img.naturalWidth > 0).length === count"""


def _expected_node_count(name: str) -> int:
    workflow = json.loads((REPO / "workflows" / f"{name}.json").read_text())
    return len(workflow["nodes"])


def _overlapping(boxes: list[list[float]]) -> list[tuple[int, int]]:
    """Pairs of node ids whose drawn rectangles [id, x, y, width, height] intersect."""
    return [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]]


@pytest.fixture(scope="module")
def model_files(comfy, tmp_path_factory):
    """The workflows' model files (as tiny stand-ins) and input files exist, as on an artist's machine."""
    write_tiny_stand_ins(comfy.models_dir, tmp_path_factory.mktemp("tiny"))
    load_script("run_workflows").prepare_inputs(comfy.input_dir)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup_env.sh (it installs Debian's chromium)")
    with playwright.sync_playwright() as driver:
        instance = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.mark.parametrize("name", WORKFLOWS)
def test_shipped_workflow_loads_in_the_real_frontend(comfy, model_files, browser, name, tmp_path_factory):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.goto(comfy.url, wait_until="networkidle")
    page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=60_000)
    # The template browser, as an artist uses it: the pack's category, its cards, a click.
    dialog = page.locator(".p-dialog:visible")
    if dialog.count() == 0:  # it opens by itself on a first visit; else the sidebar button opens it
        page.get_by_text("Templates", exact=True).first.click()
    dialog.get_by_text(PACK, exact=True).first.click()
    cards = dialog.get_by_text(name, exact=True)
    cards.first.wait_for(timeout=30_000)
    page.wait_for_function(THUMBNAILS_LOADED, arg=len(WORKFLOWS), timeout=30_000)
    listed = sorted(t for t in dialog.inner_text().split("\n") if t.startswith("dreamactor_m2_"))
    # The frontend shows a stock picture for a missing thumbnail, so ask the server for the file.
    thumbnail = page.request.get(f"{comfy.url}/api/workflow_templates/{PACK}/{name}.jpg")
    cards.first.click()
    page.wait_for_function(f"(window.app.graph.nodes || []).length === {_expected_node_count(name)}", timeout=30_000)
    page.wait_for_timeout(1500)
    report = page.evaluate(CANVAS_REPORT)
    screenshot = tmp_path_factory.mktemp("screens") / f"{name}.png"
    page.screenshot(path=str(screenshot))
    shutil.copy(screenshot, comfy.output_dir / screenshot.name)

    assert listed == WORKFLOWS  # every shipped workflow and nothing else, under the pack's category
    assert thumbnail.ok and thumbnail.headers["content-type"] == "image/jpeg"
    assert report["unknownTypes"] == [], f"missing node types: {report['unknownTypes']}"
    assert report["nodeCount"] == _expected_node_count(name)
    assert _overlapping(report["boxes"]) == [], report["boxes"]
    workflow = json.loads((REPO / "workflows" / f"{name}.json").read_text())
    info = comfy.object_info()
    converted = {ident: {"class_type": node["class_type"], "inputs": node["inputs"]}
                 for ident, node in ui_to_api(workflow, info).items()}
    # The frontend also sends its own display widgets (LoadVideo's 'video-preview' once the file
    # exists); the server reads only the inputs a node declares, so compare those.
    declared = lambda kind: {*info[kind]["input"].get("required", {}), *info[kind]["input"].get("optional", {})}  # noqa: E731
    from_frontend = {ident: {"class_type": node["class_type"],
                             "inputs": {k: v for k, v in node["inputs"].items() if k in declared(node["class_type"])}}
                     for ident, node in report["prompt"].items()}
    assert from_frontend == converted
    dialogs = page.locator(".p-dialog:visible").all_inner_texts()
    assert not [d for d in dialogs if "missing" in d.lower()], dialogs
    # Errors, and warnings such as "Invalid workflow against zod schema", both count.
    toasts = page.locator(".p-toast-message-error, .p-toast-message-warn").all_inner_texts()
    assert toasts == [], toasts
    # The frontend looks each custom node up in the online registry; the offline server's content
    # security policy blocks that. It is the frontend's request, not an error of the pack.
    pack_errors = [e for e in console_errors if "dreamactor" in e.lower() and "Content Security Policy" not in e]
    assert pack_errors == [], pack_errors
    page.close()
