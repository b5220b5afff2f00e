"""exoloom exports: ``{loomType: "Exoloom", schemaVersion: 1, tree: {rootNodeId, nodes:
{"<int>": {content, authorType, authorName, parentId, childrenIds, createdAt}}}, lens:
{bookmarks, prunedNodes}}``.

Modelled: text (``content``), structure (``childrenIds`` gives the order), creation times,
bookmarks, the author (a model's name when ``authorType`` says a model wrote it). Every other
field (``prunedNodes``, ...) is kept under ``foreign["exoloom"]``.
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

NAME = "exoloom"
TITLE = "exoloom"
SPEC = FlatSpec(NAME, "content", "parentId", "childrenIds",
                ("content", "parentId", "childrenIds"))
MODEL_AUTHORS = ("model", "ai", "assistant", "llm", "base")


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    if data.get("loomType") == "Exoloom" and isinstance(data.get("tree"), dict):
        return None
    return "no loomType 'Exoloom' with a 'tree'"


def fill(node: Node, raw: dict[str, Any], dropped: Dropped) -> bool:
    kind = raw.get("authorType")
    name = raw.get("authorName")
    if isinstance(kind, str) and kind.lower() in MODEL_AUTHORS:
        node.origin = "sampled"
        if isinstance(name, str) and name:
            node.model = name
    elif isinstance(kind, str):
        node.origin = "typed"
    return created_from(node, raw.get("createdAt"), dropped)


def read(data: object, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not an exoloom export: {why}")
    assert isinstance(data, dict)
    t = data["tree"]
    nodes = t.get("nodes")
    if not isinstance(nodes, dict):
        raise BadInput("tree.nodes is not an object")
    tree, notes = read_flat(list(nodes.items()), SPEC, fill, root=key_of(t.get("rootNodeId")))
    given = data.get("lens")
    lens: dict[str, Any] = given if isinstance(given, dict) else {}
    marks = lens.get("bookmarks") or []
    if not isinstance(marks, list):
        raise BadInput("lens.bookmarks is not a list")
    for m in marks:
        k = key_of(m)
        if k is not None and k in tree:
            tree.node(k).bookmarked = True
    tree.foreign[NAME] = {
        **{k: v for k, v in data.items() if k != "tree"},
        "tree": {k: v for k, v in t.items() if k not in ("nodes", "rootNodeId")},
    }
    return [Imported(tree, NAME, notes=notes)]
