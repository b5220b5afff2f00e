"""A seeded generator of hostile session files, mutated from real ones.

Every mutation starts from a valid session document (a dict) and yields a named byte string (or
a special file: a FIFO, a link to /dev/zero, a directory). Mutations: truncations, byte flips,
wrong types and out-of-range values for every node field of the schema
(:data:`loomtui.core.session.schema.NODE_FIELDS`, so new fields are covered automatically) and
for every graph and top-level key, the same for the keys inside nested objects, duplicate ids,
cycles and broken edges, control characters and Textual markup in every string, huge numbers
and deep nesting.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loomtui.core.session.schema import NODE_FIELDS

HOSTILE_STRINGS = (
    "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;aGVsbG8=\x07",  # clear screen, title, clipboard (OSC 52)
    "a\x9b2J\x9d0;c1\x9c b",  # C1 CSI / OSC / ST
    "\u202eevil\u202c \u2066x\u2069 \u200f \u2028 \u061c",  # bidi and line separators
    "[@click=app.quit]x[/]",  # Textual markup with an action
    "bad [/] markup [/bogus",
    "[b]bold[/b] [link=https://example.com]l[/link] $x \\[y]",
    "\x00\x07\x08\r\x7f tail",
    "é\t\n\u00a0\ufeff",
    "",
    "x" * 5000,
)

HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2**31, 2**63, 2**64 - 1, -(2**63), 1e308, -1e308, 0.5,
    -1e-300, "", "x", [], {}, [None], [-1], [2**64 - 1], [1e308], ["x"], [[]], [{}],
    {"x": 1}, [[2**64 - 1]], [[1e308]], [True],
)
"""Values put in place of a field: wrong types, and out-of-range numbers of the right type."""

TOP_KEYS = ("directed", "multigraph", "graph", "nodes", "edges")
GRAPH_KEYS = ("format", "version", "root", "selected", "model", "sampler", "seed", "vocab",
              "created", "modified", "foreign")


@dataclass
class Case:
    """One hostile file: raw bytes, or a special kind of file ("fifo", "devzero", "dir",
    "missing", "loop": a link to itself, "dangling": a link to nothing)."""

    name: str
    data: bytes | None
    kind: str = "bytes"
    node: str | None = "0"
    """A node id of the base session, for commands that take --node."""


def dump(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def _deep(n: int) -> Any:
    v: Any = 0
    for _ in range(n):
        v = [v]
    return v


def _paths(value: Any, prefix: tuple[Any, ...] = (), depth: int = 0
           ) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every path into a JSON value (lists: their first and last element only)."""
    yield prefix, value
    if depth > 6:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k), depth + 1)
    elif isinstance(value, list) and value:
        for i in sorted({0, len(value) - 1}):
            yield from _paths(value[i], (*prefix, i), depth + 1)


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for k in path[:-1]:
        doc = doc[k]
    doc[path[-1]] = value


def _del(doc: Any, path: tuple[Any, ...]) -> None:
    for k in path[:-1]:
        doc = doc[k]
    del doc[path[-1]]


class Generator:
    """Hostile cases from named base documents, reproducible from ``seed``."""

    def __init__(self, bases: dict[str, dict[str, Any]], seed: int) -> None:
        self.bases = bases
        self.rng = random.Random(seed)

    def _base(self) -> tuple[str, dict[str, Any]]:
        name = self.rng.choice(sorted(self.bases))
        return name, copy.deepcopy(self.bases[name])

    def _node_index(self, doc: dict[str, Any], field: str | None = None) -> int:
        """A node that holds ``field`` (if any does), preferring non-root ones."""
        nodes = doc["nodes"]
        having = [i for i, n in enumerate(nodes) if field is None or field in n]
        nonroot = [i for i in having if i > 0]
        return self.rng.choice(nonroot or having or [0])

    def _last(self, base: str) -> str:
        """The last node of a base session, for commands that need a node."""
        return str(self.bases[base]["nodes"][-1]["id"])

    def _case(self, base: str, what: str, doc: Any, node: str | None) -> Case:
        return Case(f"{base}:{what}", dump(doc), node=self._last(base) if node is None else node)

    def cases(self) -> Iterator[Case]:
        yield from self.specials()
        yield from self.node_fields()
        yield from self.graph_fields()
        yield from self.nested()
        yield from self.strings()
        yield from self.structure()
        yield from self.numbers()
        yield from self.raw_bytes()

    # ------------------------------------------------------------------ kinds of mutation
    def specials(self) -> Iterator[Case]:
        yield Case("fifo", None, "fifo")
        yield Case("devzero", None, "devzero")
        yield Case("dir", None, "dir")
        yield Case("missing", None, "missing")
        yield Case("symlink-loop", None, "loop")
        yield Case("dangling-symlink", None, "dangling")
        yield Case("empty", b"")
        yield Case("deep-array", b"[" * 100_000 + b"]" * 100_000)
        yield Case("deep-object", b'{"a":' * 5000 + b"1" + b"}" * 5000)
        yield Case("not-utf8", b'{"graph": "\xff\xfe"}')
        yield Case("lone-surrogate", b'{"graph": {"format": "\\ud800"}}')
        yield Case("nan", b'{"graph": NaN}')
        yield Case("bom", b"\xef\xbb\xbf" + dump(next(iter(self.bases.values()))))
        for name, doc in sorted(self.bases.items()):
            yield Case(f"{name}:top-level-list", dump([doc]))

    def node_fields(self) -> Iterator[Case]:
        """Every schema field: deleted, and replaced by each hostile value (a sample of them)."""
        for f in NODE_FIELDS:
            for _ in range(1):
                base, doc = self._base()
                i = self._node_index(doc, f.name)
                nid = doc["nodes"][i].get("id")
                doc["nodes"][i].pop(f.name, None)
                yield self._case(base, f"node[{i}].{f.name} deleted", doc, nid)
            values = list(HOSTILE_VALUES)
            self.rng.shuffle(values)
            for v in [*values[:6], _deep(300)]:
                base, doc = self._base()
                i = self._node_index(doc, f.name)
                nid = doc["nodes"][i].get("id")
                doc["nodes"][i][f.name] = copy.deepcopy(v)
                yield self._case(base, f"node[{i}].{f.name}={str(v)[:30]}", doc, nid)

    def graph_fields(self) -> Iterator[Case]:
        for key in GRAPH_KEYS + TOP_KEYS:
            values = list(HOSTILE_VALUES)
            self.rng.shuffle(values)
            for v in [*values[:3], "[@click=app.quit]GM[/] [/]"]:
                base, doc = self._base()
                target = doc if key in TOP_KEYS else doc["graph"]
                target[key] = copy.deepcopy(v)
                yield self._case(base, f"{key}={str(v)[:30]}", doc, None)
            base, doc = self._base()
            (doc if key in TOP_KEYS else doc["graph"]).pop(key, None)
            yield self._case(base, f"{key} deleted", doc, None)

    def nested(self, count: int = 60) -> Iterator[Case]:
        """Keys and elements inside nested values (distributions, samplers, scores,
        alternatives, vocab tables...): replaced by hostile values or deleted."""
        for k in range(count):
            base, doc = self._base()
            i = self._node_index(doc)
            node = doc["nodes"][i]
            where = self.rng.choice(["node", "node", "node", "graph"])
            root: Any = node if where == "node" else doc["graph"]
            paths = [p for p, _ in _paths(root) if len(p) >= 2]
            if not paths:
                continue
            path = self.rng.choice(paths)
            if k % 5 == 0 and isinstance(path[-1], str):
                _del(root, path)
                what = "deleted"
            else:
                v = self.rng.choice(HOSTILE_VALUES)
                _set(root, path, copy.deepcopy(v))
                what = f"={str(v)[:30]}"
            yield self._case(base, f"{where}[{i}].{'.'.join(map(str, path))}{what}", doc,
                             node.get("id"))

    def strings(self) -> Iterator[Case]:
        """Every string in a document (ids, texts, notes, tags, models, token texts, stop
        strings, vocabulary, foreign fields) replaced by control characters or markup."""
        for name in sorted(self.bases):
            doc0 = self.bases[name]
            paths = [p for p, v in _paths(doc0) if isinstance(v, str) and not _enum(p)]
            # dict keys are strings too: model names in scores and vocab
            for s in HOSTILE_STRINGS[:6]:
                picked = self.rng.sample(paths, min(len(paths), 3))
                for path in picked:
                    doc = copy.deepcopy(doc0)
                    _set_string(doc, path, s)
                    node = _node_of(doc, path)
                    yield self._case(name, f"{'.'.join(map(str, path))}={s[:12]!r}", doc, node)
            # every string field of one node at once, and a node id full of controls
            for s in HOSTILE_STRINGS[:5]:
                doc = copy.deepcopy(doc0)
                i = self._node_index(doc)
                old = doc["nodes"][i]["id"]
                new = f"{old}{s}"
                _rename(doc, old, new)
                for p, v in list(_paths(doc["nodes"][i])):
                    if isinstance(v, str) and p and p[-1] != "id" and not _enum(p):
                        _set_string(doc, ("nodes", i, *p), v + s)
                doc["graph"]["model"] = s
                doc["graph"]["selected"] = new
                yield self._case(name, f"all-strings {s[:12]!r}", doc, new)

    def structure(self) -> Iterator[Case]:
        for name in sorted(self.bases):
            doc0 = self.bases[name]
            if len(doc0["nodes"]) < 3:
                continue
            doc = copy.deepcopy(doc0)  # duplicate id
            doc["nodes"][2]["id"] = doc["nodes"][1]["id"]
            yield self._case(name, "duplicate id", doc, doc["nodes"][1]["id"])
            doc = copy.deepcopy(doc0)  # a node listed twice
            doc["nodes"].append(copy.deepcopy(doc["nodes"][1]))
            yield self._case(name, "node twice", doc, doc["nodes"][1]["id"])
            doc = copy.deepcopy(doc0)  # cycle: root's child points back at the root
            e = doc["edges"]
            e.append({"source": e[0]["target"], "target": e[0]["source"]})
            yield self._case(name, "cycle through root", doc, None)
            doc = copy.deepcopy(doc0)  # cycle away from the root
            last = doc["edges"][-1]["target"]
            doc["edges"][0] = {"source": last, "target": doc["edges"][0]["target"]}
            yield self._case(name, "detached cycle", doc, last)
            doc = copy.deepcopy(doc0)  # self loop
            doc["edges"].append({"source": last, "target": last})
            yield self._case(name, "self loop", doc, last)
            doc = copy.deepcopy(doc0)  # edge to nowhere
            doc["edges"].append({"source": last, "target": "nowhere"})
            yield self._case(name, "dangling edge", doc, last)
            doc = copy.deepcopy(doc0)  # two roots
            doc["edges"].pop()
            yield self._case(name, "two roots", doc, None)
            doc = copy.deepcopy(doc0)  # edges duplicated
            doc["edges"] = doc["edges"] + doc["edges"]
            yield self._case(name, "edges twice", doc, None)
            doc = copy.deepcopy(doc0)
            doc["nodes"] = list(reversed(doc["nodes"]))
            doc["edges"] = list(reversed(doc["edges"]))
            yield self._case(name, "reversed order", doc, doc["nodes"][0]["id"])
            doc = copy.deepcopy(doc0)  # a parent edge from a node's own child (2-cycle)
            a, b = doc["edges"][0]["target"], doc["edges"][-1]["target"]
            doc["edges"].append({"source": b, "target": a})
            yield self._case(name, "second parent", doc, a)

    def numbers(self) -> Iterator[Case]:
        """Huge and out-of-range numbers wherever a number is."""
        big = (2**64 - 1, 1e308, -1e308, 2**63, -1, 1000, 1e-320, 2**31)
        for name in sorted(self.bases):
            doc0 = self.bases[name]
            paths = [p for p, v in _paths(doc0)
                     if isinstance(v, int | float) and not isinstance(v, bool)]
            for path in self.rng.sample(paths, min(len(paths), 8)):
                doc = copy.deepcopy(doc0)
                v = self.rng.choice(big)
                _set(doc, path, v)
                yield self._case(name, f"{'.'.join(map(str, path))}={v}", doc,
                                 _node_of(doc, path))

    def raw_bytes(self, truncations: int = 20, flips: int = 20) -> Iterator[Case]:
        names = sorted(self.bases)
        for k in range(truncations):
            name = names[k % len(names)]
            data = dump(self.bases[name])
            cut = self.rng.randrange(len(data))
            yield Case(f"{name}:truncated at {cut}", data[:cut], node=self._last(name))
        for k in range(flips):
            name = names[k % len(names)]
            data = bytearray(dump(self.bases[name]))
            for _ in range(self.rng.choice((1, 1, 2, 8))):
                data[self.rng.randrange(len(data))] = self.rng.randrange(256)
            yield Case(f"{name}:bytes flipped #{k}", bytes(data), node=self._last(name))


def _enum(path: tuple[Any, ...]) -> bool:
    """Strings with a fixed set of values or a format (origins, hex token bytes, the format
    name): changing them only makes a file that is refused, which other mutations cover."""
    return (bool(path) and path[-1] in ("origin", "format")) or "token_bytes" in path


def _set_string(doc: dict[str, Any], path: tuple[Any, ...], s: str) -> None:
    """Set a string, keeping the file loadable where the string is a reference: a renamed node
    keeps its edges, a renamed model keeps its vocabulary table."""
    old: Any = doc
    for k in path:
        old = old[k]
    _set(doc, path, s)
    if path[:1] == ("nodes",) and path[2:] == ("id",):
        _rename(doc, old, s)
    elif path[-1] == "model" and isinstance(doc["graph"].get("vocab"), dict):
        table = doc["graph"]["vocab"].get(old)
        if table is not None:
            doc["graph"]["vocab"][s] = table


def _rename(doc: dict[str, Any], old: str, new: str) -> None:
    for n in doc["nodes"]:
        if n.get("id") == old:
            n["id"] = new
    for e in doc["edges"]:
        for k in ("source", "target"):
            if e.get(k) == old:
                e[k] = new
    for k in ("root", "selected"):
        if doc["graph"].get(k) == old:
            doc["graph"][k] = new


def _node_of(doc: dict[str, Any], path: tuple[Any, ...]) -> str | None:
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int):
        nid = doc["nodes"][path[1]].get("id")
        return nid if isinstance(nid, str) else None
    return None
