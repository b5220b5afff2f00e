"""Writing a tree as a session document (node-link JSON, format version 2)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from itertools import chain
from typing import Any

import orjson

from loomtui.core.node import Alternatives, Choices, Distribution, Node, Sampler, TokenScores
from loomtui.core.session.schema import FORMAT, NODE_FIELDS, VERSION
from loomtui.core.tree import Tree


class Writer:
    """Per-save state: serialised samplers shared between nodes, and each model's vocabulary.

    Token texts repeat across millions of choices; each model's id -> text table is written
    once under ``graph.vocab`` and choices carry only ids and log-probabilities. Choices whose
    texts disagree with the table, have no model, or have ids unknown keep their texts inline.
    """

    def __init__(self) -> None:
        self.samplers: dict[Sampler, dict[str, Any]] = {}
        self.vocab: dict[str, dict[int, str]] = {}

    def sampler(self, s: Sampler) -> dict[str, Any]:
        out = self.samplers.get(s)
        if out is None:
            out = self.samplers[s] = s.to_json()
        return out

    def fits(self, model: str | None, ids: list[Any], texts: list[str]) -> bool:
        if model is None or None in ids:
            return False
        table = self.vocab.setdefault(model, {})
        return list(map(table.setdefault, ids, texts)) == texts

    def choices(self, model: str | None, c: Choices) -> dict[str, Any]:
        if self.fits(model, c.ids, c.texts):
            return {"ids": c.ids, "logprobs": c.logprobs}
        return {"ids": c.ids, "texts": c.texts, "logprobs": c.logprobs}

    def alternatives(self, model: str | None, a: Alternatives) -> dict[str, Any]:
        if model is not None and self.fits(
                model, list(chain.from_iterable(a.ids)), list(chain.from_iterable(a.texts))):
            return {"ids": a.ids, "logprobs": a.logprobs}
        return {"ids": a.ids, "texts": a.texts, "logprobs": a.logprobs}

    def distribution(self, d: Distribution) -> dict[str, Any]:
        out = {"top": self.choices(d.model, d.top), "entropy": d.entropy, "mass": d.mass,
               "model": d.model}
        if d.partial:
            out["partial"] = True
        return out

    def vocab_json(self) -> dict[str, dict[str, str]]:
        return {m: {str(i): t for i, t in table.items()} for m, table in self.vocab.items()}


class InlineWriter(Writer):
    """Writes every token text inline (for a node on its own)."""

    def fits(self, model: str | None, ids: list[Any], texts: list[str]) -> bool:
        return False


def _scores(w: Writer, model: str, s: TokenScores) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.token_offsets is not None:
        out["token_offsets"] = s.token_offsets
    if s.token_logprobs is not None:
        out["token_logprobs"] = s.token_logprobs
    if s.token_ids is not None:
        out["token_ids"] = s.token_ids
    if s.alternatives is not None:
        out["alternatives"] = w.alternatives(model, s.alternatives)
    if s.distribution is not None:
        out["distribution"] = w.distribution(s.distribution)
    return out


def _same(x: Any, w: Writer, n: Node) -> Any:
    return x


ENCODERS: dict[str, Callable[[Any, Writer, Node], Any]] = {
    "id": _same, "str": _same, "origin": _same, "token_ids": _same, "token_offsets": _same,
    "token_logprobs": _same, "seed": _same, "model": _same, "time": _same, "bool": _same,
    "tags": _same, "foreign": _same,
    "alternatives": lambda a, w, n: None if a is None else w.alternatives(n.model, a),
    "distribution": lambda d, w, n: None if d is None else w.distribution(d),
    "sampler": lambda s, w, n: None if s is None else w.sampler(s),
    "token_bytes": lambda b, w, n: None if b is None else [x.hex() for x in b],
    "scores": lambda s, w, n: {m: _scores(w, m, v) for m, v in s.items()},
}


def node_to_json(n: Node, w: Writer | None = None) -> dict[str, Any]:
    """One node as JSON (with ``w``, token texts may be left to the session's vocabulary)."""
    if w is None:
        return {**node_to_json(n, InlineWriter()),
                "sampler": None if n.sampler is None else n.sampler.to_json()}
    out: dict[str, Any] = {}
    for f in NODE_FIELDS:
        value = getattr(n, f.name)
        if f.omit_default and f.default is not None and value == f.default():
            continue
        out[f.name] = ENCODERS[f.kind](value, w, n)
    return out


def tree_to_json(tree: Tree) -> dict[str, Any]:
    nodes = []
    edges = []
    w = Writer()
    parent_of = tree.parent
    for nid, _ in tree.iter_preorder():
        nodes.append(node_to_json(tree.node(nid), w))
        if nid != tree.root_id:
            edges.append({"source": parent_of(nid), "target": nid})
    graph: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "root": tree.root_id,
        "selected": tree.selected, "model": tree.model, "sampler": tree.sampler.to_json(),
        "seed": tree.seed, "vocab": w.vocab_json(),
        "created": tree.created, "modified": tree.modified,
    }
    if tree.foreign:
        graph["foreign"] = tree.foreign
    return {"directed": True, "multigraph": False, "graph": graph, "nodes": nodes,
            "edges": edges}


def encode(tree: Tree) -> bytes:
    """The session as UTF-8 JSON bytes: a consistent snapshot (holds the tree's lock).

    Raises ValueError when a value cannot be written as JSON (a lone surrogate in a text).
    """
    with tree.lock:
        try:
            return orjson.dumps(tree_to_json(tree))
        except orjson.JSONEncodeError as exc:
            raise ValueError(str(exc)) from None


class _Changed(Exception):
    """The tree changed between two steps of an encoding."""


class Superseded(Exception):
    """The tree kept changing while it was encoded in steps, and the caller would rather
    save again later than encode it in one step (which holds the GIL for all of it)."""


STEP_NODES = 32
"""Nodes encoded per step of :func:`encode_in_steps` (about a millisecond of GIL)."""


def encode_in_steps(tree: Tree, *, step: int = STEP_NODES,
                    pause: Callable[[], None] | None = None, restarts: int = 10,
                    give_up: bool = False) -> tuple[list[bytes], int, str]:
    """The bytes of :func:`encode` as chunks to write in a row (joined, they were two copies
    of the whole file: 100 ms without a break at 40,000 nodes), with the revision and
    selection they hold. They are made ``step`` nodes at a time, for a saver thread beside a
    UI: the tree's lock is held for one step only and the GIL is given up between steps
    (``pause`` may wait longer, while the user is busy). When the tree changes between steps
    the encoding starts again; after ``restarts`` it is made in one step, or with ``give_up``
    :class:`Superseded` is raised (an autosave: the change that interrupted it asks for
    another). Raises ValueError when a value cannot be written as JSON."""
    for attempt in range(restarts + 1):
        last = attempt == restarts
        try:
            return _encode_steps(tree, 0 if last and not give_up else step, pause)
        except _Changed:
            continue
    raise Superseded


def _encode_steps(tree: Tree, step: int, pause: Callable[[], None] | None
                  ) -> tuple[list[bytes], int, str]:
    w = Writer()
    parts: list[bytes] = []
    edges: list[dict[str, str]] = []
    with tree.lock:
        revision = tree.revision
        order = tree.iter_preorder()
    try:
        while True:
            if pause is not None:
                pause()
            else:
                time.sleep(0)  # let the event loop have the GIL
            with tree.lock:
                if tree.revision != revision:
                    raise _Changed
                batch = []
                for nid, _ in (itertools.islice(order, step) if step else order):
                    batch.append(node_to_json(tree.node(nid), w))
                    if nid != tree.root_id:
                        edges.append({"source": tree.parent(nid), "target": nid})  # type: ignore[dict-item]
                if batch:
                    parts.append(orjson.dumps(batch)[1:-1])
                if step and len(batch) == step:
                    continue
                selected = tree.selected
                graph: dict[str, Any] = {
                    "format": FORMAT, "version": VERSION, "root": tree.root_id,
                    "selected": selected, "model": tree.model,
                    "sampler": tree.sampler.to_json(), "seed": tree.seed,
                    "vocab": w.vocab_json(), "created": tree.created, "modified": tree.modified,
                }
                if tree.foreign:
                    graph["foreign"] = tree.foreign
                break
        chunks = [b'{"directed":true,"multigraph":false,"graph":', orjson.dumps(graph),
                  b',"nodes":[']
        for i, part in enumerate(parts):
            if i:
                chunks.append(b",")
            chunks.append(part)
        chunks += [b'],"edges":', orjson.dumps(edges), b"}"]
    except orjson.JSONEncodeError as exc:
        raise ValueError(str(exc)) from None
    return chunks, revision, selected
