"""Bonsai trees as damask writes them: ``{nodes: [{id, text, childrenIds, parentIds, tags,
createdAt, ...}], edges: [{from, to, relation}], pathNodes, focusedId}``.

``parentIds`` is a list: where a node has several parents the first is its parent here and
the others stay in ``foreign`` (with ``edges``, which are kept whole). Modelled: text,
structure (``childrenIds`` gives the order), tags (``bookmark`` as our bookmark), creation
times, the focused node.
"""

from __future__ import annotations

from typing import Any

from loomtui.core.importers.base import (
    BadInput,
    Dropped,
    FlatSpec,
    Imported,
    created_from,
    key_of,
    read_flat,
)
from loomtui.core.node import Node

NAME = "bonsai"
TITLE = "Bonsai (damask)"
SPEC = FlatSpec(NAME, "text", "loomtui_parent", "childrenIds",
                ("id", "text", "childrenIds", "loomtui_parent"))


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return "no 'nodes' list"
    if "focusedId" in data or "pathNodes" in data or (
            nodes and isinstance(nodes[0], dict) and "parentIds" in nodes[0]):
        return None
    return "'nodes' without 'parentIds', 'focusedId' or 'pathNodes'"


def fill(node: Node, raw: dict[str, Any], dropped: Dropped) -> bool:
    tags = raw.get("tags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        node.tags = [t for t in tags if t != "bookmark"]
        node.bookmarked = "bookmark" in tags
    node.bookmarked = node.bookmarked or raw.get("bookmarked") is True
    model = raw.get("model")
    if isinstance(model, str) and model:
        node.model = model
    return created_from(node, raw.get("createdAt"), dropped)


def read(data: object, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a Bonsai tree: {why}")
    assert isinstance(data, dict)
    items: list[tuple[object, object]] = []
    extra = 0
    for raw in data["nodes"]:
        if not isinstance(raw, dict):
            raise BadInput(f"a node of 'nodes' is not an object: {raw!r:.30}")
        parents = raw.get("parentIds") or []
        if not isinstance(parents, list):
            raise BadInput(f"node {raw.get('id')!r:.30}: parentIds is not a list")
        extra += len(parents) > 1
        items.append((raw.get("id"), {**raw, "loomtui_parent": parents[0] if parents else None}))
    tree, notes = read_flat(items, SPEC, fill, synthetic_root=True)
    if extra:
        notes.append(f"{extra} node(s) with several parents keep the first; the others stay "
                     "in the node's parentIds (kept)")
    tree.foreign[NAME] = {k: v for k, v in data.items() if k not in ("nodes", "focusedId")}
    focused = key_of(data.get("focusedId"))
    if focused is not None and focused in tree:
        tree.selected = focused
    return [Imported(tree, NAME, notes=notes)]
