"""basemode-loom: its JSON export ``{version: 1, nodes: [{id, parent_id, tree_id, kind, text,
context_id, model, strategy, max_tokens, temperature, checked_out, created_at, metadata}]}``
and its SQLite database (tables ``trees`` and ``nodes``), read with the standard library's
``sqlite3``, read-only. One session per tree (``--tree NAME``, by name or id).

Nodes of kind ``context`` hold a tree's context (they have no parent and are not its root):
they are kept under the tree's ``foreign["basemode"]["context_nodes"]``. Modelled: text,
structure (children in creation order), the model, sampler settings (temperature, max
tokens), creation times, ``metadata.bookmarked``, and the checked-out path or the tree's
``current_node_id`` as the selection. Every other field is kept under ``foreign["basemode"]``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from loomtui.core.errors import SessionError
from loomtui.core.importers.base import (
    BadInput,
    Dropped,
    FlatSpec,
    Imported,
    created_from,
    model_and_sampler,
    read_flat,
    show,
)
from loomtui.core.node import Node

NAME = "basemode"
TITLE = "basemode-loom"
SPEC = FlatSpec(NAME, "text", "parent_id", None, ("id", "text", "parent_id"))
SAMPLER = {"temperature": "temperature", "max_tokens": "max_tokens"}
SQLITE_MAGIC = b"SQLite format 3\x00"


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    nodes = data.get("nodes")
    if (data.get("version") == 1 and isinstance(nodes, list) and nodes
            and isinstance(nodes[0], dict) and "tree_id" in nodes[0]):
        return None
    return "no version 1 'nodes' list with 'tree_id'"


def fill(node: Node, raw: dict[str, Any], dropped: Dropped) -> bool:
    model_and_sampler(node, raw, SAMPLER)
    meta = raw.get("metadata")
    node.bookmarked = isinstance(meta, dict) and meta.get("bookmarked") is True
    return created_from(node, raw.get("created_at"), dropped)


def _one_tree(rows: list[dict[str, Any]], tree_row: dict[str, Any] | None,
              name: str) -> Imported:
    context = [r for r in rows if r.get("kind") == "context"]
    nodes = [r for r in rows if r.get("kind") != "context"]
    nodes.sort(key=lambda r: (str(r.get("created_at") or ""),))  # children by creation
    tree, notes = read_flat([(r.get("id"), r) for r in nodes], SPEC, fill)
    tree.foreign[NAME] = {"context_nodes": context}
    if tree_row is not None:
        tree.foreign[NAME]["tree"] = tree_row
    current = tree_row.get("current_node_id") if tree_row else None
    if isinstance(current, str) and current in tree:
        tree.selected = current
    else:
        nid = tree.root_id
        while True:
            nxt = [k for k in tree.children(nid)
                   if tree.node(k).foreign[NAME].get("checked_out") in (1, True)]
            if not nxt:
                break
            nid = nxt[0]
        tree.selected = nid
    return Imported(tree, NAME, name=name, notes=notes)


def _pick(groups: dict[str, list[dict[str, Any]]], trees: dict[str, dict[str, Any]],
          want: str | None) -> list[tuple[str, str]]:
    """(tree id, name) of the trees to import: ``want`` (a name or an id) or all."""
    names = {tid: str(trees.get(tid, {}).get("name") or tid) for tid in groups}
    if want is None:
        return list(names.items())
    hits = [(tid, n) for tid, n in names.items() if want in (tid, n)]
    if not hits:
        shown = ", ".join(show(n, 30) for n in list(names.values())[:5])
        raise BadInput(f"no tree {show(want)} (trees: {shown})")
    return hits[:1]


def read(data: object, *, tree: str | None = None, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a basemode-loom export: {why}")
    assert isinstance(data, dict)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in data["nodes"]:
        if not isinstance(r, dict):
            raise BadInput(f"a node is not an object: {r!r:.30}")
        groups.setdefault(str(r.get("tree_id")), []).append(r)
    out = []
    for tid, name in _pick(groups, {}, tree):
        imp = _one_tree(groups[tid], None, name)
        imp.tree.foreign[NAME]["export"] = {k: v for k, v in data.items() if k != "nodes"}
        out.append(imp)
    return out


def is_sqlite(head: bytes) -> bool:
    return head.startswith(SQLITE_MAGIC)


def read_sqlite(path: str | os.PathLike[str], *, tree: str | None = None) -> list[Imported]:
    """Every tree (or ``tree``) of a basemode-loom database, opened read-only."""
    path = Path(path)
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise SessionError(path, f"cannot open the database: {exc}") from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"trees", "nodes"} <= tables:
            raise SessionError(path, "an SQLite database without basemode-loom's 'trees' and "
                                     "'nodes' tables")
        trees = {str(r["id"]): r for r in _rows(conn, "SELECT * FROM trees")}
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in _rows(conn, "SELECT * FROM nodes ORDER BY created_at, rowid"):
            groups.setdefault(str(row.get("tree_id")), []).append(row)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise SessionError(path, f"cannot read the database: {exc}") from None
    finally:
        conn.close()
    out = []
    try:
        for tid, name in _pick(groups, trees, tree):
            imp = _one_tree(groups[tid], trees.get(tid), name)
            imp.tree.foreign[NAME]["user_version"] = version
            out.append(imp)
    except BadInput as exc:
        raise SessionError(path, str(exc)) from None
    return out


def _rows(conn: sqlite3.Connection, query: str) -> list[dict[str, Any]]:
    """Rows as the JSON export has them: ``*_json`` columns parsed (``metadata``...),
    ``checked_out`` a boolean."""
    cur = conn.execute(query)
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, r, strict=True)) for r in cur]
    json_cols = [n for n in names if n.endswith("_json")]
    for row in out:
        for key in json_cols:
            raw = row.pop(key)
            if raw == "{}":
                value: Any = {}
            elif raw == "[]":
                value = []
            else:
                try:
                    value = json.loads(raw) if isinstance(raw, str) else raw
                except (ValueError, RecursionError):
                    value = raw
            row[key.removesuffix("_json")] = value
        if "checked_out" in row:
            row["checked_out"] = bool(row["checked_out"])
    return out
