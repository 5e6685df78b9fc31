"""Convert a UI-format workflow (what the ComfyUI frontend saves, schema 0.4 or 1.0) to the API
format that POST /prompt takes, using the server's /object_info for each node's input order.

Handles what the frontend itself resolves before queueing: widget values by position (with the
extra control entry after seed-like INT widgets), links (array or object form), Reroute nodes,
PrimitiveNode values, muted nodes (dropped), bypassed nodes (inputs passed through by type),
frontend-only nodes (notes) and groups (ignored), and subgraphs (expanded, inner ids "outer:inner").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MUTED, BYPASSED = 2, 4
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}


@dataclass(frozen=True)
class Link:
    origin: str
    origin_slot: int
    target: str
    target_slot: int
    type: str


def _links(raw_links: list, prefix: str = "") -> dict[int, Link]:
    links = {}
    for raw in raw_links or []:
        if isinstance(raw, dict):
            ident, origin, oslot, target, tslot, kind = (raw["id"], raw["origin_id"], raw["origin_slot"],
                                                         raw["target_id"], raw["target_slot"], raw.get("type"))
        else:
            ident, origin, oslot, target, tslot, kind = raw[:6]
        links[ident] = Link(f"{prefix}{origin}", oslot, f"{prefix}{target}", tslot, str(kind))
    return links


def is_widget(spec: list) -> bool:
    """Whether the frontend shows this /object_info input as a widget (a value, not a socket)."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def has_control_widget(name: str, spec: list) -> bool:
    """Whether the frontend adds a control_after_generate value after this widget's value."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "control_after_generate" in options:
        return bool(options["control_after_generate"])
    return spec[0] == "INT" and name in SEED_NAMES


def ordered_inputs(info: dict) -> list[tuple[str, list]]:
    """A node's inputs, required then optional, in /object_info's declared order."""
    inputs = info["input"]
    order = info.get("input_order") or {g: list(inputs.get(g, {})) for g in ("required", "optional")}
    return [(name, inputs[group][name]) for group in ("required", "optional") for name in order.get(group, [])]


def _widget_values(node: dict, info: dict) -> dict[str, Any]:
    raw = node.get("widgets_values")
    if isinstance(raw, dict):
        return dict(raw)
    values, position = {}, 0
    raw = list(raw or [])
    for name, spec in ordered_inputs(info):
        if not is_widget(spec) or position >= len(raw):
            continue
        values[name] = raw[position]
        position += 1
        if has_control_widget(name, spec):
            position += 1
    return values


class _Graph:
    """One flattened graph: nodes by string id and links by id, subgraphs already expanded."""

    def __init__(self, workflow: dict) -> None:
        self.nodes: dict[str, dict] = {}
        self.links: dict[int | str, Link] = {}
        subgraphs = {sg["id"]: sg for sg in (workflow.get("definitions") or {}).get("subgraphs", [])}
        self._add(workflow["nodes"], workflow.get("links", []), "", subgraphs)

    def _add(self, nodes: list, links: list, prefix: str, subgraphs: dict) -> None:
        for ident, link in _links(links, prefix).items():
            self.links[f"{prefix}{ident}"] = link
        for node in nodes:
            node = {**node, "_id": f"{prefix}{node['id']}", "_prefix": prefix}
            self.nodes[node["_id"]] = node
            if node["type"] in subgraphs and node.get("mode", 0) != MUTED:
                self._expand(node, subgraphs[node["type"]], subgraphs)

    def _expand(self, node: dict, subgraph: dict, subgraphs: dict) -> None:
        """Inline a subgraph instance: its inner nodes become "outer:inner" ids, and links through
        the subgraph's input and output slots are rewired to the outer graph."""
        inner = f"{node['_id']}:"
        node["_subgraph"] = True
        self._add(subgraph.get("nodes", []), subgraph.get("links", []), inner, subgraphs)
        # Subgraph boundary nodes are -10 (inputs) and -20 (outputs) in the frontend's schema.
        for ident, link in list(self.links.items()):
            if not str(ident).startswith(inner):
                continue
            if link.origin == f"{inner}-10":
                outer_input = node["inputs"][link.origin_slot].get("link") if link.origin_slot < len(node.get("inputs", [])) else None
                outer = self.links.get(f"{node['_prefix']}{outer_input}") if outer_input is not None else None
                if outer is None:
                    del self.links[ident]
                else:
                    self.links[ident] = Link(outer.origin, outer.origin_slot, link.target, link.target_slot, link.type)
        for ident, link in list(self.links.items()):
            if link.origin != node["_id"]:
                continue
            inner_links = [lk for k, lk in self.links.items() if str(k).startswith(inner) and lk.target == f"{inner}-20"
                           and lk.target_slot == link.origin_slot]
            if inner_links:
                source = inner_links[0]
                self.links[ident] = Link(source.origin, source.origin_slot, link.target, link.target_slot, link.type)

    def incoming(self, node_id: str) -> dict[int, Link]:
        return {link.target_slot: link for link in self.links.values() if link.target == node_id}


def _resolve(graph: _Graph, link: Link, seen: int = 0) -> tuple[str, int] | Any | None:
    """Follow a link back through reroutes, primitives and bypassed nodes to a real output."""
    if seen > len(graph.nodes):
        raise ValueError("link cycle through reroutes or bypassed nodes")
    origin = graph.nodes.get(link.origin)
    if origin is None or origin.get("mode", 0) == MUTED:
        return None
    if origin["type"] == "Reroute":
        upstream = graph.incoming(origin["_id"]).get(0)
        return _resolve(graph, upstream, seen + 1) if upstream else None
    if origin["type"] == "PrimitiveNode":
        return _Literal((origin.get("widgets_values") or [None])[0])
    if origin.get("mode", 0) == BYPASSED:
        for _slot, upstream in sorted(graph.incoming(origin["_id"]).items()):
            if upstream.type == link.type or "*" in (upstream.type, link.type):
                return _resolve(graph, upstream, seen + 1)
        return None
    return origin["_id"], link.origin_slot


@dataclass(frozen=True)
class _Literal:
    value: Any


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Return the API-format prompt for a UI-format workflow.

    Raises ValueError naming any node type the server does not know (a missing node pack).
    """
    graph = _Graph(workflow)
    missing = sorted({n["type"] for n in graph.nodes.values()
                      if n["type"] not in object_info and n["type"] not in FRONTEND_ONLY and not n.get("_subgraph")
                      and n.get("mode", 0) != MUTED})
    if missing:
        raise ValueError(f"workflow uses node types this ComfyUI does not have: {', '.join(missing)}")
    prompt: dict[str, dict] = {}
    for node_id, node in graph.nodes.items():
        if (node["type"] in FRONTEND_ONLY or node.get("_subgraph") or node.get("mode", 0) in (MUTED, BYPASSED)
                or node_id.endswith((":-10", ":-20"))):
            continue
        info = object_info[node["type"]]
        inputs: dict[str, Any] = _widget_values(node, info)
        incoming = graph.incoming(node_id)
        for slot, entry in enumerate(node.get("inputs") or []):
            link = incoming.get(slot)
            if link is None:
                continue
            source = _resolve(graph, link)
            if isinstance(source, _Literal):
                inputs[entry["name"]] = source.value
            elif source is not None:
                inputs[entry["name"]] = [source[0], source[1]]
            else:
                inputs.pop(entry["name"], None)
        prompt[node_id] = {"class_type": node["type"], "inputs": inputs,
                           "_meta": {"title": node.get("title") or info.get("display_name", node["type"])}}
    return prompt
