"""helm ``tree.json``: ``{id, name, rootId, currentNodeId, bookmarkedNodeIds, nodes: [{id,
text, parentId, childIds, ...}]}``.

Modelled: text, structure (``parentId``; ``childIds`` gives the order), bookmarks, the current
node. Every other field is kept under ``foreign["helm"]``.
"""

from __future__ import annotations

from typing import Any

from loomtui.core.importers.base import (
    BadInput,
    FlatSpec,
    Imported,
    created_from,
    key_of,
    read_flat,
)
from loomtui.core.node import Node

NAME = "helm"
TITLE = "helm"
SPEC = FlatSpec(NAME, "text", "parentId", "childIds", ("id", "text", "parentId", "childIds"))


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    if isinstance(data.get("nodes"), list) and "rootId" in data:
        return None
    return "no 'nodes' list with a 'rootId'"


def fill(node: Node, raw: dict[str, Any], dropped: Any) -> bool:
    return created_from(node, raw.get("createdAt"), dropped)


def read(data: object, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a helm tree: {why}")
    assert isinstance(data, dict)
    items = [(n.get("id") if isinstance(n, dict) else None, n) for n in data["nodes"]]
    tree, notes = read_flat(items, SPEC, fill, root=key_of(data.get("rootId")))
    marks = data.get("bookmarkedNodeIds") or []
    if not isinstance(marks, list):
        raise BadInput("bookmarkedNodeIds is not a list")
    for m in marks:
        k = key_of(m)
        if k is not None and k in tree:
            tree.node(k).bookmarked = True
    tree.foreign[NAME] = {k: v for k, v in data.items()
                          if k not in ("nodes", "rootId", "currentNodeId", "bookmarkedNodeIds")}
    current = key_of(data.get("currentNodeId"))
    if current is not None and current in tree:
        tree.selected = current
    return [Imported(tree, NAME, notes=notes)]
