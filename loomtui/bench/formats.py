"""Synthetic files of every format the importers read, of any size (for tests and
``loomtui bench import``).

Trees are bushy (each node gets up to ``fanout`` children, breadth first), every node holds
a short segment, and each file uses the fields its loom writes. Returns the file's bytes
(basemode's database is written to a path instead).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

WORDS = ("the", "loom", "weaves", "a", "thread", "of", "light", "across", "dark", "water",
         "and", "every", "branch", "sings", "é", "🌊")


def shape(n: int, fanout: int = 4, seed: int = 0) -> tuple[list[int | None], list[str]]:
    """(parent index of each node, its text) for an ``n``-node tree, parents first."""
    rng = random.Random(seed)
    parents: list[int | None] = [None]
    texts = ["Once upon a time"]
    frontier = 0
    while len(parents) < n:
        for _ in range(rng.randint(1, fanout)):
            if len(parents) >= n:
                break
            parents.append(frontier)
            texts.append(" " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))))
        frontier += 1
    return parents, texts


def _kids(parents: list[int | None]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parents]
    for i, p in enumerate(parents):
        if p is not None:
            kids[p].append(i)
    return kids


def pyloom(n: int) -> bytes:
    parents, texts = shape(n)
    kids = _kids(parents)
    nodes: list[dict[str, Any]] = [
        {"id": f"n{i}", "text": t, "meta": {"source": "AI" if i else "prompt"},
         "tags": ["bookmark"] if i % 97 == 0 else [], "children": []}
        for i, t in enumerate(texts)]
    for i, ks in enumerate(kids):
        for k in ks:
            nodes[k]["parent_id"] = f"n{i}"
        nodes[i]["children"] = [nodes[k] for k in ks]
    return orjson.dumps({"root": nodes[0], "selected_node_id": f"n{n - 1}", "chapters": {},
                         "model_responses": {}, "tags": {}})


def loomsidian(n: int) -> bytes:
    parents, texts = shape(n)
    nodes = {f"u{i}": {"text": t, "parentId": None if p is None else f"u{p}",
                       "bookmarked": i % 97 == 0, "collapsed": False, "unread": False,
                       "lastVisited": 1_700_000_000_000 + i}
             for i, (p, t) in enumerate(zip(parents, texts, strict=True))}
    return orjson.dumps({"settings": {"apiKey": "sk-synthetic"}, "state": {
        "Big.md": {"current": f"u{n - 1}", "hoisted": [], "nodes": nodes}}})


def miniloom(n: int) -> bytes:
    from loomtui.core.exporters.miniloom import patch_json
    parents, texts = shape(n)
    kids = _kids(parents)
    full: list[str] = []
    store: dict[str, Any] = {}
    for i, (p, t) in enumerate(zip(parents, texts, strict=True)):
        before = full[p] if p is not None else ""
        full.append(before + t)
        store[str(i + 1)] = {
            "id": str(i + 1), "timestamp": 1_717_000_000_000 + i,
            "type": "root" if p is None else "gen",
            "patch": "" if p is None else patch_json(before, full[-1]),
            "summary": t[-20:], "rating": None, "read": False,
            "parent": None if p is None else str(p + 1),
            "children": [str(k + 1) for k in kids[i]]}
    # MiniLoom's root has no text: the prompt is its first children's
    store["1"]["patch"] = ""
    for k in kids[0]:
        store[str(k + 1)]["patch"] = patch_json("", full[k])
    return orjson.dumps({"loomTree": {"root": store["1"], "nodeStore": store},
                         "focus": store[str(n)]})


def bonsai(n: int) -> bytes:
    parents, texts = shape(n)
    kids = _kids(parents)
    nodes = [{"id": f"b{i}", "text": t, "childrenIds": [f"b{k}" for k in kids[i]],
              "parentIds": [] if p is None else [f"b{p}"], "tags": [],
              "createdAt": 1_717_000_000_000 + i}
             for i, (p, t) in enumerate(zip(parents, texts, strict=True))]
    edges = [{"from": f"b{p}", "to": f"b{i}", "relation": "child"}
             for i, p in enumerate(parents) if p is not None]
    return orjson.dumps({"nodes": nodes, "edges": edges, "pathNodes": ["b0"],
                         "focusedId": f"b{n - 1}"})


def exoloom(n: int) -> bytes:
    parents, texts = shape(n)
    kids = _kids(parents)
    nodes = {str(i): {"content": t, "authorType": "model" if i else "human",
                      "authorName": "synthetic", "parentId": p, "childrenIds": kids[i],
                      "createdAt": 1_717_000_000_000 + i}
             for i, (p, t) in enumerate(zip(parents, texts, strict=True))}
    return orjson.dumps({"loomType": "Exoloom", "schemaVersion": 1,
                         "tree": {"rootNodeId": 0, "nodes": nodes},
                         "lens": {"bookmarks": [0], "prunedNodes": []}})


def logitloom(n: int) -> bytes:
    """``n`` tokens: each position offers up to 4 alternatives, some of which go on."""
    rng = random.Random(0)
    roots: list[dict[str, Any]] = []
    count = 0
    level: list[list[dict[str, Any]]] = [roots]
    while count < n and level:
        nxt: list[list[dict[str, Any]]] = []
        for sibs in level:
            width = rng.randint(1, 4)
            lps = sorted((-rng.random() * 5 for _ in range(width)), reverse=True)
            for j, lp in enumerate(lps):
                if count >= n:
                    break
                tok = {"id": f"t{count}", "text": " " + rng.choice(WORDS), "logprob": lp,
                       "prob": 2.718281828459045 ** lp, "branchFinished": False,
                       "children": []}
                count += 1
                sibs.append(tok)
                if j == 0 or rng.random() < 0.3:
                    nxt.append(tok["children"])
        level = nxt
    return orjson.dumps({"isLogitLoomTreeVersion": "logit-loom-tree-v1",
                         "modelName": "synthetic", "modelSettings": {"kind": "base",
                                                                     "prompt": "Once"},
                         "roots": roots})


def _basemode_rows(n: int) -> list[dict[str, Any]]:
    parents, texts = shape(n)
    return [{"id": f"m{i}", "parent_id": None if p is None else f"m{p}", "tree_id": "m0",
             "kind": "text", "text": t, "context_id": None,
             "model": None if p is None else "synthetic", "strategy": "completion",
             "max_tokens": 32, "temperature": 0.9, "checked_out": False,
             "created_at": f"2025-01-01T00:00:{i % 60:02d}.{i:06d}+00:00"[:32],
             "metadata": {}}
            for i, (p, t) in enumerate(zip(parents, texts, strict=True))]


def basemode(n: int) -> bytes:
    return orjson.dumps({"version": 1, "nodes": _basemode_rows(n)})


SQLITE_SCHEMA = """
CREATE TABLE trees (id TEXT PRIMARY KEY, current_node_id TEXT, name TEXT,
  show_model_names INTEGER NOT NULL DEFAULT 1, rewind_split_tokens INTEGER NOT NULL DEFAULT 0,
  global_max_tokens INTEGER NOT NULL DEFAULT 200, global_n_branches INTEGER NOT NULL DEFAULT 1,
  model_plan_json TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  metadata_json TEXT NOT NULL DEFAULT '{}', archived INTEGER NOT NULL DEFAULT 0);
CREATE TABLE nodes (id TEXT PRIMARY KEY, tree_id TEXT NOT NULL,
  parent_id TEXT REFERENCES nodes(id) ON DELETE CASCADE, kind TEXT NOT NULL DEFAULT 'text',
  text TEXT NOT NULL, context_id TEXT REFERENCES nodes(id), model TEXT, strategy TEXT,
  max_tokens INTEGER, temperature REAL, checked_out INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL, metadata_json TEXT NOT NULL DEFAULT '{}');
PRAGMA user_version = 4;
"""
"""basemode-loom's tables (its ``_schema.py``, version 4)."""


def basemode_db(n: int, path: Path) -> Path:
    """A basemode-loom SQLite database of one ``n``-node tree at ``path``."""
    rows = _basemode_rows(n)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SQLITE_SCHEMA)
        conn.execute("INSERT INTO trees (id, current_node_id, name, created_at, updated_at) "
                     "VALUES ('m0', ?, 'Synthetic', '2025-01-01', '2025-01-01')",
                     (f"m{n - 1}",))
        conn.executemany(
            "INSERT INTO nodes (id, tree_id, parent_id, kind, text, model, strategy, "
            "max_tokens, temperature, checked_out, created_at, metadata_json) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["id"], r["tree_id"], r["parent_id"], r["kind"], r["text"], r["model"],
              r["strategy"], r["max_tokens"], r["temperature"], 0, r["created_at"],
              json.dumps(r["metadata"])) for r in rows])
        conn.commit()
    finally:
        conn.close()
    return path


def helm(n: int) -> bytes:
    parents, texts = shape(n)
    kids = _kids(parents)
    nodes = [{"id": f"h{i}", "text": t, "parentId": None if p is None else f"h{p}",
              "childIds": [f"h{k}" for k in kids[i]]}
             for i, (p, t) in enumerate(zip(parents, texts, strict=True))]
    return orjson.dumps({"id": "w", "name": "Synthetic", "rootId": "h0",
                         "currentNodeId": f"h{n - 1}", "bookmarkedNodeIds": ["h1"],
                         "nodes": nodes})


def wool(n: int) -> bytes:
    parents, texts = shape(n)
    nodes = {f"w{i}": {"parent_id": None if p is None else f"w{p}", "text": t,
                       "model": None if p is None else "synthetic",
                       "temperature": None if p is None else 0.8}
             for i, (p, t) in enumerate(zip(parents, texts, strict=True))}
    return orjson.dumps({"nodes": nodes, "focused_node_id": f"w{n - 1}"})


GENERATORS: dict[str, Callable[[int], bytes]] = {
    "pyloom": pyloom, "loomsidian": loomsidian, "miniloom": miniloom, "bonsai": bonsai,
    "exoloom": exoloom, "logitloom": logitloom, "basemode": basemode, "helm": helm,
    "wool": wool,
}
