"""What every importer shares: fresh ids that never collide, validated numbers and times,
and one way to link a flat list of nodes (parent pointers, children lists) into a tree.

An importer raises :class:`BadInput` (a ValueError) with one line naming the node; the
caller adds the file's name. Fields of the other loom that loomtui does not model are kept
as they were under ``node.foreign[FORMAT]`` and ``tree.foreign[FORMAT]``, so the writers can
give the file back whole.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loomtui.core import limits
from loomtui.core.node import Node, Sampler
from loomtui.core.tree import Tree


class BadInput(ValueError):
    """A file that is of the format but cannot be imported; the message names the node."""


@dataclass
class Imported:
    """One tree read from another loom's file, with what the user should be told."""

    tree: Tree
    fmt: str
    name: str | None = None
    """The tree's or note's name where the file holds several (basemode trees, notes)."""
    notes: list[str] = field(default_factory=list)


def show(value: object, width: int = 40) -> str:
    """A value from a file, quoted and cut for a one-line message."""
    s = repr(value)
    return s if len(s) <= width else s[: width - 1] + "…"


class IdPool:
    """Ids for nodes: the file's own where given once, fresh ones (``imported-N``, never one
    the file uses anywhere) for missing ids and for ids given twice."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)
        self.used: set[str] = set()
        self.counter = 0
        self.duplicates: list[str] = []
        self.missing = 0

    def fresh(self) -> str:
        while True:
            self.counter += 1
            nid = f"imported-{self.counter}"
            if nid not in self.taken and nid not in self.used:
                self.used.add(nid)
                return nid

    def claim(self, raw: object) -> str:
        """The id for a node whose file id is ``raw`` (a string or an integer)."""
        if isinstance(raw, bool) or not isinstance(raw, str | int) or raw == "":
            self.missing += 1
            return self.fresh()
        nid = str(raw)
        if nid in self.used:
            self.duplicates.append(nid)
            return self.fresh()
        self.used.add(nid)
        return nid

    def notes(self) -> list[str]:
        out = []
        if self.duplicates:
            shown = ", ".join(show(d, 24) for d in self.duplicates[:5])
            more = f" and {len(self.duplicates) - 5} more" if len(self.duplicates) > 5 else ""
            out.append(f"{len(self.duplicates)} node id(s) given twice got fresh ids: "
                       f"{shown}{more}")
        if self.missing:
            out.append(f"{self.missing} node(s) without a usable id got fresh ids")
        return out


def string_ids(values: Iterable[object]) -> set[str]:
    """Every id-like value as the string loomtui would use for it."""
    return {str(v) for v in values if isinstance(v, str | int) and not isinstance(v, bool)}


# ------------------------------------------------------------------ numbers and times
_EARLIEST = 0.0
_LATEST = 1e11  # seconds since the epoch: year 5138


class Dropped:
    """Counts of values refused and dropped during one import, reported as notes."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def add(self, what: str, where: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        self.first.setdefault(what, where)

    def notes(self) -> list[str]:
        return [f"dropped {n} {what} (first at {self.first[what]})"
                for what, n in self.counts.items()]


def epoch_seconds(value: object) -> float | None:
    """A time from a file as seconds since the epoch: numbers (seconds, or milliseconds as
    JavaScript writes them) and ISO 8601 strings; None for anything else, NaN, infinity or a
    time outside year 1970..5138."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        t = float(value)
        if not math.isfinite(t):
            return None
        if t > _LATEST:  # JavaScript's Date.now() is in milliseconds
            t /= 1000.0
    elif isinstance(value, str) and 0 < len(value) <= 64:
        t_or_none = _parse_time_string(value)
        if t_or_none is None:
            return None
        t = t_or_none
    else:
        return None
    return t if _EARLIEST <= t <= _LATEST else None


def _parse_time_string(s: str) -> float | None:
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        try:  # socketteer/loom's creation_timestamp: 2021-09-16-21.55.18
            dt = datetime.strptime(s, "%Y-%m-%d-%H.%M.%S")
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def logprob(value: object) -> float | None:
    """A log-probability within :mod:`loomtui.core.limits`, or None."""
    if isinstance(value, bool) or not limits.logprob_ok(value):
        return None
    return float(value)  # type: ignore[arg-type]


def _after(t: float) -> float:
    return t + max(1e-6, abs(t) * 4e-16)


def finish(nodes: list[Node], kids: dict[str, list[str]], root: str, times: list[bool]
           ) -> Tree:
    """A tree of ``nodes`` whose children are ``kids`` (in file order). ``times[i]`` says
    whether node i's creation time came from the file. The tree orders children by creation,
    so times strictly increase along each node's children: a time the file gives is moved
    only where it disagrees with the file's order, and a node without one gets the time just
    after its previous sibling (or its parent)."""
    by_id = {n.id: n for n in nodes}
    known = {n.id: k for n, k in zip(nodes, times, strict=True)}
    if not known[root]:
        by_id[root].created = 0.0
    stack = [root]
    while stack:
        p = stack.pop()
        cs = kids.get(p)
        if not cs:
            continue
        prev = None
        for k in cs:
            n = by_id[k]
            if not known[k]:
                n.created = _after(by_id[p].created if prev is None else prev)
            elif prev is not None and n.created <= prev:
                n.created = _after(prev)
            prev = n.created
        stack.extend(cs)
    edges = [(p, c) for p, cs in kids.items() for c in cs]
    return Tree.from_parts(nodes, edges, root)


# ------------------------------------------------------------------ flat formats
@dataclass(slots=True)
class Flat:
    """One node of a flat file: its file id (``key``), the node (with its loomtui id), its
    parent's file id, and the file ids of its children where the file lists them."""

    key: str | None
    node: Node
    parent: str | None
    children: list[str] | None = None
    time_known: bool = False


def link(entries: list[Flat], *, root: str | None = None, synthetic_root: bool = False
         ) -> tuple[list[Node], dict[str, list[str]], str, list[bool]]:
    """Link flat entries into (nodes, children by parent, root id, time-known flags).

    A parent or a listed child that does not exist, a cycle, or more than one root (unless
    ``synthetic_root``, which puts several roots under a fresh empty one) is BadInput naming
    the node. Children are ordered by the parent's list where it has one, then file order.
    """
    by_key: dict[str, Flat] = {}
    for e in entries:
        if e.key is not None and e.key not in by_key:
            by_key[e.key] = e
    kids: dict[str, list[str]] = {}
    roots: list[Flat] = []
    parent_of: dict[str, str] = {}
    for e in entries:
        if e.parent is None:
            roots.append(e)
            continue
        p = by_key.get(e.parent)
        if p is None:
            raise BadInput(f"node {show(e.node.id)}: its parent {show(e.parent)} does not exist")
        if p is e:
            raise BadInput(f"node {show(e.node.id)} is its own parent (a cycle)")
        kids.setdefault(p.node.id, []).append(e.node.id)
        parent_of[e.node.id] = p.node.id
    for e in entries:
        if e.children is None:
            continue
        pos: dict[str, int] = {}
        for i, ck in enumerate(e.children):
            c = by_key.get(ck)
            if c is None:
                raise BadInput(f"node {show(e.node.id)}: child {show(ck)} does not exist")
            pos.setdefault(c.node.id, i)
        mine = kids.get(e.node.id)
        if mine and pos:
            n = len(e.children)
            kids[e.node.id] = sorted(mine, key=lambda k: pos.get(k, n))
    if root is not None:
        r = by_key.get(root)
        if r is None:
            raise BadInput(f"the root {show(root)} does not exist")
        if r.parent is not None:
            raise BadInput(f"the root {show(root)} has a parent {show(r.parent)}")
        others = [e for e in roots if e is not r]
        if others:
            raise BadInput(f"node {show(others[0].node.id)} has no parent but is not the root")
        roots = [r]
    nodes = [e.node for e in entries]
    times = [e.time_known for e in entries]
    if not roots:
        raise BadInput(f"no root: node {show(entries[0].node.id)} is in a cycle"
                       if entries else "no nodes")
    if len(roots) == 1:
        root_id = roots[0].node.id
    elif synthetic_root:
        pool = IdPool(n.id for n in nodes)
        top = Node(id=pool.fresh(), text="", origin="imported")
        top.foreign["loomtui"] = {"synthetic_root": True}
        root_id = top.id
        kids[root_id] = [e.node.id for e in roots]
        nodes.insert(0, top)
        times.insert(0, False)
    else:
        raise BadInput(f"{len(roots)} nodes have no parent ({show(roots[0].node.id)}, "
                       f"{show(roots[1].node.id)}, ...): a tree has one root")
    reached: set[str] = set()
    stack = [root_id]
    while stack:
        nid = stack.pop()
        reached.add(nid)
        stack.extend(kids.get(nid, ()))
    if len(reached) != len(nodes):
        lost = next(n.id for n in nodes if n.id not in reached)
        raise BadInput(f"node {show(lost)} is in a cycle (not reachable from the root)")
    return nodes, kids, root_id, times


def assign_ids(raw_ids: list[object]) -> tuple[list[str], list[str | None], IdPool]:
    """(loomtui ids, file keys) for nodes whose file ids are ``raw_ids``: the key is the
    string form of the file id for the first node that has it, None for the others."""
    if all(type(r) is str and r for r in raw_ids) and len(set(raw_ids)) == len(raw_ids):
        ids = [str(r) for r in raw_ids]  # the usual case: every id given once
        pool = IdPool(ids)
        pool.used.update(ids)
        return ids, list(ids), pool
    pool = IdPool(string_ids(raw_ids))
    out: list[str] = []
    keys: list[str | None] = []
    for raw in raw_ids:
        first_time = not (isinstance(raw, str | int) and not isinstance(raw, bool)
                          and raw != "" and str(raw) in pool.used)
        nid = pool.claim(raw)
        out.append(nid)
        keys.append(nid if first_time and nid == str(raw) else None)
    return out, keys, pool


def model_and_sampler(node: Node, raw: dict[str, Any], keys: dict[str, str]) -> None:
    """A node's model and settings where the file names them (then it was sampled; else it
    was typed)."""
    model = raw.get("model")
    if isinstance(model, str) and model:
        node.model = model
        node.origin = "sampled"
    else:
        node.origin = "typed"
    node.sampler = sampler_of(raw, keys)


def sampler_of(raw: dict[str, Any], keys: dict[str, str]) -> Sampler | None:
    """A Sampler from a node's stored settings (``keys`` maps our field to theirs), or None
    when none is stored or one is out of range (the raw values stay in ``foreign``)."""
    given = tuple((ours, raw[theirs]) for ours, theirs in keys.items()
                  if raw.get(theirs) is not None)
    if not given:
        return None
    for _, v in given:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
    return _sampler(given)


@functools.lru_cache(maxsize=1024)
def _sampler(given: tuple[tuple[str, Any], ...]) -> Sampler | None:
    try:
        return Sampler(n=1, **dict(given)).validated()
    except (TypeError, ValueError):
        return None


def key_of(value: object) -> str | None:
    """A file's id reference as the string key loomtui uses (None if absent/unusable)."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def ref(raw: dict[str, Any], key: str, where: str) -> str | None:
    """A reference to another node (``parentId``...): a string or an integer, or null."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadInput(f"{where}: {key} is not a node id")
    return str(value)


def refs(raw: dict[str, Any], key: str, where: str) -> list[str] | None:
    """A list of references (``childrenIds``...), or None where the file has none."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadInput(f"{where}: {key} is not a list")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise BadInput(f"{where}: {key} holds something that is not a node id")
        out.append(str(v))
    return out


@dataclass
class FlatSpec:
    """How one flat format names its fields."""

    fmt: str
    text: str
    parent: str | None
    children: str | None
    structural: tuple[str, ...]
    """Fields written from the tree itself (never kept in ``foreign``)."""


def read_flat(items: list[tuple[object, object]], spec: FlatSpec, fill: Any, *,
              root: str | None = None, synthetic_root: bool = False
              ) -> tuple[Tree, list[str]]:
    """A tree from ``(file id, raw node)`` pairs. ``fill(node, raw, dropped)`` sets the
    format's modelled fields and returns whether the node's creation time is known."""
    ids, keys, pool = assign_ids([k for k, _ in items])
    dropped = Dropped()
    entries: list[Flat] = []
    tkey, pkey, ckey, fmt = spec.text, spec.parent, spec.children, spec.fmt
    structural = spec.structural
    for (_, raw), nid, key in zip(items, ids, keys, strict=True):
        if type(raw) is not dict:
            raise BadInput(f"node {show(nid)} is not an object")
        text = raw.get(tkey, "")
        if type(text) is not str:
            if text is not None:
                raise BadInput(f"node {show(nid)}: {tkey} is not a string")
            text = ""
        node = Node(id=nid, text=text, origin="imported")
        kept = raw.copy()
        for k in structural:
            kept.pop(k, None)
        node.foreign[fmt] = kept
        known = bool(fill(node, raw, dropped))
        parent = raw.get(pkey) if pkey else None
        if parent is not None and type(parent) is not str:
            parent = ref(raw, pkey, f"node {show(nid)}")  # type: ignore[arg-type]
        children = refs(raw, ckey, f"node {show(nid)}") if ckey and raw.get(ckey) else None
        entries.append(Flat(key, node, parent, children, known))
    if not entries:
        raise BadInput("the file holds no nodes")
    nodes, kids, root_id, times = link(entries, root=root, synthetic_root=synthetic_root)
    tree = finish(nodes, kids, root_id, times)
    tree.root.origin = "prompt"
    return tree, pool.notes() + dropped.notes()


def created_from(node: Node, value: object, dropped: Dropped) -> bool:
    """Set ``node.created`` from a file's time; a value that is no time is dropped, noted."""
    if value is None:
        return False
    t = epoch_seconds(value)
    if t is None:
        dropped.add("creation times that are not a time", f"node {show(node.id)}")
        return False
    node.created = t
    return True
