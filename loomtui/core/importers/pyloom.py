"""socketteer/loom (the Python/Tkinter Loom) JSON trees.

Accepted shapes: a full save (``{"root": {...}, "selected_node_id": ..., "tags": ...}``), a bare
node (``{"text": ..., "children": [...]}``), and ``parentId`` in place of ``parent_id``.
Nodes keep their ids and text segments; the ``bookmark`` tag (or a ``bookmark: true`` field)
becomes our bookmark, other tags are kept as tags. Token ids and distributions stay empty until
a model scores the branch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loomtui.core.errors import SessionError
from loomtui.core.node import Node
from loomtui.core.tree import Tree


class _Bad(Exception):
    pass


def _node_of(raw: dict[str, Any], seen: set[str], counter: list[int]) -> Node:
    nid = raw.get("id")
    if not isinstance(nid, (str, int)) or str(nid) in seen or str(nid) == "":
        counter[0] += 1
        nid = f"imported-{counter[0]}"
    nid = str(nid)
    seen.add(nid)
    text = raw.get("text", "")
    if not isinstance(text, str):
        raise _Bad(f"node {nid!r}: text is not a string")
    tags = raw.get("tags") or []
    if not isinstance(tags, list):
        tags = []
    tags = [str(t) for t in tags]
    bookmarked = "bookmark" in tags or raw.get("bookmark") is True
    tags = [t for t in tags if t != "bookmark"]
    note = raw["note"] if isinstance(raw.get("note"), str) else ""
    created = raw.get("created")
    return Node(
        id=nid, text=text, origin="imported", bookmarked=bookmarked, note=note, tags=tags,
        created=float(created) if isinstance(created, (int, float)) else 0.0,
    )


def import_pyloom(data: object) -> Tree:
    """Build a tree from a parsed socketteer/loom document; ``ValueError`` if not one."""
    if not isinstance(data, dict):
        raise ValueError("not a loom tree: the top level is not an object")
    root_raw = data.get("root", data) if isinstance(data.get("root"), dict) else data
    if "text" not in root_raw and "children" not in root_raw:
        raise ValueError("not a loom tree: no 'root' and no node with 'text'/'children'")
    seen: set[str] = set()
    counter = [0]
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    order = 0
    stack: list[tuple[dict[str, Any], str | None]] = [(root_raw, None)]
    try:
        while stack:
            raw, parent = stack.pop()
            if not isinstance(raw, dict):
                raise _Bad(f"a child of node {parent!r} is not an object")
            node = _node_of(raw, seen, counter)
            order += 1
            if node.created == 0.0:
                node.created = float(order)  # keeps sibling order as in the file
            nodes.append(node)
            if parent is not None:
                edges.append((parent, node.id))
            kids = raw.get("children") or []
            if not isinstance(kids, list):
                raise _Bad(f"node {node.id!r}: children is not a list")
            stack.extend((k, node.id) for k in reversed(kids))
    except _Bad as exc:
        raise ValueError(str(exc)) from None
    tree = Tree.from_parts(nodes, edges, nodes[0].id)
    selected = data.get("selected_node_id")
    if isinstance(selected, str) and selected in tree:
        tree.selected = selected
    return tree


def load_pyloom(path: str | os.PathLike[str]) -> Tree:
    """Read a socketteer/loom JSON file; problems are a one-line :class:`SessionError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SessionError(path, "no such file") from None
    except OSError as exc:
        raise SessionError(path, f"cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SessionError(path, f"not valid JSON: {exc}") from None
    except RecursionError:  # the format nests children; json.loads recurses per level
        raise SessionError(path, "nested too deeply for the JSON parser "
                                 "(a branch of several hundred nodes or more)") from None
    try:
        return import_pyloom(data)
    except ValueError as exc:
        raise SessionError(path, str(exc)) from None
