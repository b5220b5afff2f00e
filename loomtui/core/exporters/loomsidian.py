"""loomsidian: one NoteState ``{current, hoisted, nodes: {id: {text, parentId, bookmarked,
collapsed, unread, lastVisited}}}``, as the plugin keeps per note in its ``data.json`` (and
as its single-note export writes it). Fields kept from an imported note come back as they
were; a synthetic root that held several roots is left out again.
"""

from __future__ import annotations

from typing import Any

from loomtui.core.exporters.jsonout import dumps
from loomtui.core.tree import Tree

NAME = "loomsidian"


def note_state(tree: Tree) -> dict[str, Any]:
    top = {k: v for k, v in tree.foreign.get(NAME, {}).items() if k != "loomtui_list_variant"}
    root = tree.root
    skip = root.id if root.foreign.get("loomtui", {}).get("synthetic_root") else None
    nodes: dict[str, Any] = {}
    for nid, _ in tree.iter_preorder():
        if nid == skip:
            continue
        node = tree.node(nid)
        parent = tree.parent(nid)
        raw = node.foreign.get(NAME)
        out: dict[str, Any] = {"text": node.text,
                               "parentId": None if parent == skip else parent}
        if raw is None:
            out.update(bookmarked=node.bookmarked, collapsed=False, unread=False)
            if node.created > 1e6:
                out["lastVisited"] = int(node.created * 1000)
        else:
            out.update(raw)
            if (raw.get("bookmarked") is True) != node.bookmarked:
                out["bookmarked"] = node.bookmarked
        nodes[nid] = out
    selected = tree.selected if tree.selected != skip else next(iter(nodes), None)
    top.setdefault("hoisted", [])
    return {**top, "current": selected, "nodes": nodes}


def write(tree: Tree) -> bytes:
    return dumps(note_state(tree))
