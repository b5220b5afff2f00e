"""Sessions on disk: node-link JSON graphs, validated on load and saved atomically.

The format is written by our own code (not ``networkx.node_link_data``) so networkx's changing
defaults cannot change it, and it loads with ``networkx.node_link_graph(data, edges="edges")``.
The schema is documented in the README ("Session format").
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import orjson

from loomtui.core.errors import SessionError
from loomtui.core.node import ORIGINS, Alternatives, Choices, Distribution, Node, Sampler
from loomtui.core.tree import Tree

FORMAT = "loomtui-session"
VERSION = 1


class _Writer:
    """Per-save state: serialised samplers shared between nodes, and each model's vocabulary.

    Token texts repeat across millions of choices; each model's id -> text table is written
    once under ``graph.vocab`` and choices carry only ids and log-probabilities. Choices whose
    texts disagree with the table (or have no model) keep their texts inline.
    """

    def __init__(self) -> None:
        self.samplers: dict[Sampler, dict[str, Any]] = {}
        self.vocab: dict[str, dict[int, str]] = {}

    def sampler(self, s: Sampler) -> dict[str, Any]:
        out = self.samplers.get(s)
        if out is None:
            out = self.samplers[s] = s.to_json()
        return out

    def _fits(self, model: str | None, ids: list[int], texts: list[str]) -> bool:
        if model is None:
            return False
        table = self.vocab.setdefault(model, {})
        return list(map(table.setdefault, ids, texts)) == texts

    def choices(self, model: str | None, c: Choices) -> dict[str, Any]:
        if self._fits(model, c.ids, c.texts):
            return {"ids": c.ids, "logprobs": c.logprobs}
        return {"ids": c.ids, "texts": c.texts, "logprobs": c.logprobs}

    def alternatives(self, model: str | None, a: Alternatives) -> dict[str, Any]:
        if model is not None and self._fits(
                model, list(chain.from_iterable(a.ids)), list(chain.from_iterable(a.texts))):
            return {"ids": a.ids, "logprobs": a.logprobs}
        return {"ids": a.ids, "texts": a.texts, "logprobs": a.logprobs}

    def vocab_json(self) -> dict[str, dict[str, str]]:
        return {m: {str(i): t for i, t in table.items()} for m, table in self.vocab.items()}


def node_to_json(n: Node, w: _Writer | None = None) -> dict[str, Any]:
    """One node as JSON (with ``w``, token texts may be left to the session's vocabulary)."""
    d = n.distribution
    a = n.alternatives
    if w is None:
        return {**node_to_json(n, _Inline()), "sampler": None if n.sampler is None
                else n.sampler.to_json()}
    return {
        "id": n.id,
        "text": n.text,
        "origin": n.origin,
        "token_ids": n.token_ids,
        "token_offsets": n.token_offsets,
        "token_logprobs": n.token_logprobs,
        "alternatives": None if a is None else w.alternatives(n.model, a),
        "distribution": None if d is None else {
            "top": w.choices(d.model, d.top),
            "entropy": d.entropy, "mass": d.mass, "model": d.model,
        },
        "sampler": None if n.sampler is None else w.sampler(n.sampler),
        "seed": n.seed,
        "model": n.model,
        "created": n.created,
        "bookmarked": n.bookmarked,
        "note": n.note,
        "tags": n.tags,
    }


class _Inline(_Writer):
    """Writes every token text inline (for a node on its own)."""

    def _fits(self, model: str | None, ids: list[int], texts: list[str]) -> bool:
        return False


def tree_to_json(tree: Tree) -> dict[str, Any]:
    nodes = []
    edges = []
    w = _Writer()
    for nid, _ in tree.iter_preorder():
        nodes.append(node_to_json(tree.node(nid), w))
        parent = tree.parent(nid) if nid != tree.root_id else None
        if parent is not None:
            edges.append({"source": parent, "target": nid})
    return {
        "directed": True,
        "multigraph": False,
        "graph": {
            "format": FORMAT, "version": VERSION, "root": tree.root_id,
            "selected": tree.selected, "model": tree.model, "sampler": tree.sampler.to_json(),
            "seed": tree.seed,
            "vocab": w.vocab_json(),
            "created": tree.created, "modified": tree.modified,
        },
        "nodes": nodes,
        "edges": edges,
    }


def dumps(tree: Tree) -> bytes:
    """The session as UTF-8 JSON bytes (a consistent snapshot: holds the tree's lock)."""
    with tree.lock:
        return orjson.dumps(tree_to_json(tree))


def save(tree: Tree, path: str | os.PathLike[str], *, backup: bool = True) -> Path:
    """Write ``tree`` to ``path`` atomically; the previous file is kept as ``PATH.bak``.

    At every instant ``path`` holds either the old complete session or the new one.
    """
    path = Path(path)
    try:
        with _no_gc():
            data = dumps(tree)
        directory = path.parent if str(path.parent) else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            os.chmod(tmp, _file_mode(path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if backup and path.exists():
                _backup(path)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(directory)
    except OSError as exc:
        raise SessionError(path, f"cannot save: {exc.strerror or exc}") from None
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate, or an integer over 64 bits
        raise SessionError(path, f"cannot save: {exc}") from None
    return path


def _file_mode(path: Path) -> int:
    """The mode a saved session gets: the old file's, or the usual one under the umask
    (``mkstemp`` would leave it readable by its owner only)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _backup(path: Path) -> None:
    bak = path.with_name(path.name + ".bak")
    tmp = path.with_name(f".{path.name}.bak.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copy2(path, tmp)
    try:
        os.replace(tmp, bak)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- loading
class _Invalid(Exception):
    pass


def _fail(msg: str) -> None:
    raise _Invalid(msg)


def _is_num(x: object) -> bool:
    # orjson never yields NaN or infinity (they are not JSON), so a type check suffices.
    return type(x) is float or type(x) is int


def _opt_num(x: object) -> bool:
    return x is None or _is_num(x)


_NUM = {int, float}
_SCALARS = {int, float, str, bool, type(None)}
_OPT_NUM = {int, float, type(None)}


def _columns(where: str, raw: object, table: dict[int, str] | None, rows: bool = False
             ) -> tuple[list[Any], list[Any], list[Any], bool]:
    """(ids, texts, logprobs, whether the texts came from the vocabulary table)."""
    if type(raw) is not dict:
        _fail(f"{where} must be an object with ids, texts and logprobs lists")
    ids, texts, lps = raw.get("ids"), raw.get("texts"), raw.get("logprobs")  # type: ignore[union-attr]
    looked_up = False
    if texts is None and type(ids) is list:
        if table is None:
            _fail(f"{where} has no texts and graph.vocab has no table for its model")
        try:
            if rows:
                if not set(map(type, ids)) <= {list}:
                    _fail(f"{where}: every row must be a list")
                texts = [list(map(table.__getitem__, row)) for row in ids]
            else:
                texts = list(map(table.__getitem__, ids))
        except (KeyError, TypeError) as exc:
            _fail(f"{where}: token id {exc} has no text in graph.vocab")
        looked_up = True
    if type(ids) is not list or type(texts) is not list or type(lps) is not list or not (
            len(ids) == len(texts) == len(lps)):
        _fail(f"{where} needs ids, texts and logprobs lists of one length")
    return ids, texts, lps, looked_up  # type: ignore[return-value]


def _check_row(where: str, ids: object, texts: object, lps: object) -> None:
    if (type(ids) is not list or type(texts) is not list or type(lps) is not list
            or not len(ids) == len(texts) == len(lps)):
        _fail(f"{where} must be lists of one length")
    if not set(map(type, ids)) <= {int}:  # type: ignore[arg-type]
        _fail(f"{where}: token ids must be integers")
    if not set(map(type, texts)) <= {str}:  # type: ignore[arg-type]
        _fail(f"{where}: token texts must be strings")
    if not set(map(type, lps)) <= _NUM:  # type: ignore[arg-type]
        _fail(f"{where}: logprobs must be numbers")


class _Bulk:
    """Element type checks deferred to a few C-speed passes over every node's lists at once.

    Loading checks millions of numbers; checking them list by list in Python costs more than
    parsing the JSON. If a bulk check fails, the nodes are parsed again one by one (``bulk`` is
    None) to find and name the first bad one.
    """

    def __init__(self) -> None:
        self.ints: list[list[Any]] = []
        self.nats: list[list[Any]] = []
        self.strs: list[list[Any]] = []
        self.nums: list[list[Any]] = []
        self.opt_nums: list[list[Any]] = []
        self.rows: list[tuple[list[Any], list[Any], list[Any]]] = []

    def ok(self) -> bool:
        flat = chain.from_iterable
        id_rows = list(flat(r[0] for r in self.rows))
        text_rows = list(flat(r[1] for r in self.rows))
        lp_rows = list(flat(r[2] for r in self.rows))
        if not (set(map(type, id_rows)) | set(map(type, text_rows))
                | set(map(type, lp_rows))) <= {list}:
            return False
        lens = list(map(len, id_rows))
        if lens != list(map(len, text_rows)) or lens != list(map(len, lp_rows)):
            return False
        self.ints.extend(id_rows)
        self.strs.extend(text_rows)
        self.nums.extend(lp_rows)
        return (
            set(map(type, flat(self.ints))) <= {int}
            and set(map(type, flat(self.nats))) <= {int}
            and min(flat(self.nats), default=0) >= 0
            and set(map(type, flat(self.strs))) <= {str}
            and set(map(type, flat(self.nums))) <= _NUM
            and set(map(type, flat(self.opt_nums))) <= _OPT_NUM
        )


def _parse_choices(where: str, raw: object, bulk: _Bulk | None, table: dict[int, str] | None
                   ) -> Choices:
    ids, texts, lps, looked_up = _columns(where, raw, table)
    if bulk is None:
        _check_row(where, ids, texts, lps)
    else:
        bulk.ints.append(ids)
        if not looked_up:
            bulk.strs.append(texts)
        bulk.nums.append(lps)
    return Choices(ids, texts, lps)


def _parse_alternatives(where: str, raw: object, n_tokens: int, bulk: _Bulk | None,
                        table: dict[int, str] | None) -> Alternatives:
    ids, texts, lps, _ = _columns(where, raw, table, rows=True)
    if len(ids) != n_tokens:
        _fail(f"{where} must have one row per token")
    if bulk is None:
        for i in range(n_tokens):
            _check_row(f"{where}[{i}]", ids[i], texts[i], lps[i])
    else:
        bulk.rows.append((ids, texts, lps))
    return Alternatives(ids, texts, lps)


_SAMPLER_TYPES = {"temperature": _NUM, "top_k": {int}, "top_p": _NUM, "min_p": _NUM,
                  "max_tokens": {int}, "n": {int}, "stop": {list}}


def _parse_sampler(where: str, raw: object) -> Sampler:
    if type(raw) is not dict:
        _fail(f"{where} must be an object")
    for key, value in raw.items():  # type: ignore[union-attr]
        allowed = _SAMPLER_TYPES.get(key)
        if allowed is None:
            _fail(f"{where}: unknown setting {key!r:.30}")
        if type(value) not in allowed:
            _fail(f"{where}: {key} has the wrong type ({type(value).__name__})")
    try:
        s = Sampler.from_json(raw)  # type: ignore[arg-type]
        if not all(type(x) is str for x in s.stop):
            raise ValueError("stop must be a list of strings")
        return s.validated()
    except (TypeError, ValueError) as exc:
        _fail(f"{where}: {exc}")
    raise AssertionError


def _sampler_key(raw: object) -> tuple[Any, ...] | None:
    """A hashable key for a sampler object, so each distinct one is parsed once."""
    if type(raw) is not dict:
        return None
    stop = raw.get("stop")  # type: ignore[union-attr]
    if stop is not None and type(stop) is not list:
        return None
    items = [(k, type(v), v) for k, v in raw.items() if k != "stop"]  # type: ignore[union-attr]
    if not all(t in _SCALARS for _, t, _ in items):
        return None  # unhashable (a list or an object): parse it uncached, and let it fail
    return (tuple(items), None if stop is None else tuple(map(repr, stop)))


def _parse_node(raw: object, index: int, samplers: dict[Any, Sampler], bulk: _Bulk | None,
                vocab: dict[str, dict[int, str]]) -> Node:
    if type(raw) is not dict:
        _fail(f"node #{index} is not an object")
    r: dict[str, Any] = raw  # type: ignore[assignment]
    nid = r.get("id")
    if type(nid) is not str or not nid:
        _fail(f"node #{index} has no string id")
    w = f"node {nid!r}"
    text = r.get("text")
    if type(text) is not str:
        _fail(f"{w}: text must be a string")
    origin = r.get("origin")
    if origin not in ORIGINS:
        _fail(f"{w}: origin must be one of {', '.join(ORIGINS)}, got {origin!r:.40}")
    ids = r.get("token_ids")
    offs = r.get("token_offsets")
    lps = r.get("token_logprobs")
    if ids is not None:
        if type(ids) is not list or type(offs) is not list or len(offs) != len(ids):
            _fail(f"{w}: token_ids and token_offsets must be lists with one entry per token")
        if bulk is not None:
            bulk.nats.append(ids)
            bulk.ints.append(offs)
        elif not set(map(type, ids)) <= {int} or min(ids, default=0) < 0:
            _fail(f"{w}: token_ids must be a list of non-negative integers or null")
        elif not set(map(type, offs)) <= {int}:
            _fail(f"{w}: token_offsets must list one integer offset per token")
        try:  # in bulk mode the element types are not checked yet
            bad_offs = bool(offs) and (offs[0] < 0 or offs[-1] > len(text) or offs != sorted(offs))
        except TypeError:
            _fail(f"{w}: token_offsets must list one integer offset per token")
        if bad_offs:
            _fail(f"{w}: token_offsets must be increasing offsets into text")
    elif offs is not None:
        _fail(f"{w}: token_offsets given without token_ids")
    if lps is not None:
        if type(lps) is not list:
            _fail(f"{w}: token_logprobs must be a list of numbers or nulls")
        if bulk is not None:
            bulk.opt_nums.append(lps)
        elif not set(map(type, lps)) <= _OPT_NUM:
            _fail(f"{w}: token_logprobs must be a list of numbers or nulls")
        if ids is None or len(lps) != len(ids):
            _fail(f"{w}: token_logprobs must have one entry per token")
    model = r.get("model")
    if not (model is None or type(model) is str):
        _fail(f"{w}: model must be a string or null")
    alts = r.get("alternatives")
    if alts is not None:
        if ids is None:
            _fail(f"{w}: alternatives given without token_ids")
        alts = _parse_alternatives(f"{w}: alternatives", alts, len(ids), bulk,
                                   vocab.get(model))  # type: ignore[arg-type]
    dist = r.get("distribution")
    if dist is not None:
        if type(dist) is not dict:
            _fail(f"{w}: distribution must be an object or null")
        ent, mass, dmodel = dist.get("entropy"), dist.get("mass"), dist.get("model")
        if not _opt_num(ent) or not _is_num(mass) or not (dmodel is None or type(dmodel) is str):
            _fail(f"{w}: distribution needs numeric entropy and mass, and a string model")
        dist = Distribution(
            _parse_choices(f"{w}: distribution.top", dist.get("top"), bulk,
                           vocab.get(dmodel)),  # type: ignore[arg-type]
            None if ent is None else float(ent), float(mass), dmodel)
    sampler = r.get("sampler")
    if sampler is not None:
        key = _sampler_key(sampler)
        cached = samplers.get(key) if key is not None else None
        if cached is None:
            cached = _parse_sampler(f"{w}: sampler", sampler)
            if key is not None:
                samplers[key] = cached
        sampler = cached
    seed, created = r.get("seed"), r.get("created", 0.0)
    if not (seed is None or type(seed) is int):
        _fail(f"{w}: seed must be an integer or null")
    if not _is_num(created):
        _fail(f"{w}: created must be a number (seconds since the epoch)")
    bookmarked, note, tags = r.get("bookmarked", False), r.get("note", ""), r.get("tags", [])
    if type(bookmarked) is not bool:
        _fail(f"{w}: bookmarked must be true or false")
    if type(note) is not str:
        _fail(f"{w}: note must be a string")
    if type(tags) is not list or not all(type(t) is str for t in tags):
        _fail(f"{w}: tags must be a list of strings")
    return Node(
        id=nid, text=text, origin=origin, token_ids=ids, token_offsets=offs,  # type: ignore[arg-type]
        token_logprobs=lps, alternatives=alts, distribution=dist,  # type: ignore[arg-type]
        sampler=sampler, seed=seed, model=model, created=float(created),  # type: ignore[arg-type]
        bookmarked=bookmarked, note=note, tags=tags,
    )


def _parse_vocab(raw: object) -> dict[str, dict[int, str]]:
    """graph.vocab: {model: {"token id": "token text"}} -> {model: {id: text}}."""
    if type(raw) is not dict:
        _fail("graph.vocab must be an object")
    out: dict[str, dict[int, str]] = {}
    for model, table in raw.items():  # type: ignore[union-attr]
        if type(table) is not dict or not set(map(type, table.values())) <= {str}:
            _fail(f"graph.vocab[{model!r:.30}] must map token ids to texts")
        try:
            out[model] = {int(k): v for k, v in table.items()}
        except ValueError:
            _fail(f"graph.vocab[{model!r:.30}] has a key that is not a token id")
    return out


def tree_from_json(data: object) -> Tree:
    """Validate a parsed session document and build its tree; raises ``_Invalid``."""
    if type(data) is not dict:
        _fail("top level must be a JSON object")
    d: dict[str, Any] = data  # type: ignore[assignment]
    graph = d.get("graph")
    if type(graph) is not dict or graph.get("format") != FORMAT:
        _fail(f"not a loomtui session (graph.format is not {FORMAT!r})")
    version = graph.get("version")
    if type(version) is not int:
        _fail("graph.version must be an integer")
    if version > VERSION:
        _fail(f"session format version {version} is newer than this loomtui reads ({VERSION}); "
              "upgrade loomtui")
    if version < 1:
        _fail(f"unknown session format version {version}")
    if d.get("directed") is not True or d.get("multigraph") not in (False, None):
        _fail("the graph must be directed and not a multigraph")
    raw_nodes, raw_edges = d.get("nodes"), d.get("edges")
    if type(raw_nodes) is not list or not raw_nodes:
        _fail("nodes must be a non-empty list")
    if type(raw_edges) is not list:
        _fail("edges must be a list")
    samplers: dict[Any, Sampler] = {}
    bulk = _Bulk()
    vocab = _parse_vocab(graph.get("vocab", {}))
    nodes = [_parse_node(r, i, samplers, bulk, vocab) for i, r in enumerate(raw_nodes)]
    if not bulk.ok():  # find and name the culprit
        for i, r in enumerate(raw_nodes):
            _parse_node(r, i, samplers, None, vocab)
        _fail("a token list holds a value of the wrong type")
    ids = {n.id for n in nodes}
    if len(ids) != len(nodes):
        _fail("two nodes share an id")
    parent: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for e in raw_edges:
        if type(e) is not dict:
            _fail("every edge must be an object with source and target")
        s, t = e.get("source"), e.get("target")
        if type(s) is not str or type(t) is not str or s not in ids or t not in ids:
            _fail(f"edge {s!r:.30} -> {t!r:.30} names a node that does not exist")
        if t in parent:
            _fail(f"node {t!r} has more than one parent")
        parent[t] = s  # type: ignore[index]
        edges.append((s, t))  # type: ignore[arg-type]
    roots = [n.id for n in nodes if n.id not in parent]
    if len(roots) != 1:
        _fail(f"a session needs exactly one root, found {len(roots)}")
    root = roots[0]
    if graph.get("root", root) != root:
        _fail(f"graph.root is {graph.get('root')!r:.30} but the root is {root!r}")
    # Every node reachable from the root <=> no cycles (each node has one parent).
    kids: dict[str, list[str]] = {}
    for s, t in edges:
        kids.setdefault(s, []).append(t)
    seen = 0
    stack = [root]
    while stack:
        n = stack.pop()
        seen += 1
        stack.extend(kids.get(n, ()))
    if seen != len(nodes):
        _fail("the edges contain a cycle (some nodes are not reachable from the root)")
    model = graph.get("model")
    if not (model is None or type(model) is str):
        _fail("graph.model must be a string or null")
    sampler = _parse_sampler("graph.sampler", graph.get("sampler", {}))
    created, modified = graph.get("created", 0.0), graph.get("modified", 0.0)
    if not _is_num(created) or not _is_num(modified):
        _fail("graph.created and graph.modified must be numbers")
    tree = Tree.from_parts(nodes, edges, root, model=model, sampler=sampler,
                           created=float(created))
    tree.modified = float(modified)
    selected = graph.get("selected", root)
    if type(selected) is not str or selected not in ids:
        _fail(f"graph.selected names a node that does not exist: {selected!r:.30}")
    tree.selected = selected
    seed = graph.get("seed")
    if not (seed is None or type(seed) is int):
        _fail("graph.seed must be an integer or null")
    tree.seed = seed
    return tree


def loads(text: str | bytes, source: object = "<string>") -> Tree:
    with _no_gc(freeze=True):
        return _loads(text, source)


def _loads(text: str | bytes, source: object) -> Tree:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        try:  # the standard parser says where, in words users know
            json.loads(text)
        except json.JSONDecodeError as std:
            raise SessionError(source, f"not valid JSON: {std.msg} at line {std.lineno} "
                                       f"column {std.colno}") from None
        except (UnicodeDecodeError, RecursionError, ValueError):
            pass
        raise SessionError(source, f"not valid JSON: {str(exc).split(':')[0]}") from None
    try:
        return tree_from_json(data)
    except _Invalid as exc:
        raise SessionError(source, str(exc)) from None


def load(path: str | os.PathLike[str]) -> Tree:
    """Read and validate a session file; any problem is a one-line :class:`SessionError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SessionError(path, "no such file") from None
    except IsADirectoryError:
        raise SessionError(path, "is a directory, not a session file") from None
    except OSError as exc:
        raise SessionError(path, f"cannot read: {exc.strerror or exc}") from None
    return loads(raw, path)


@contextmanager
def _no_gc(freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic GC while a session is parsed or written.

    Parsing builds millions of acyclic lists and objects; with the collector running, its
    repeated full passes made loading superlinear. After a load (``freeze``), the first
    collection would still walk every new object (0.2 s at 10k nodes): ``gc.freeze`` moves
    them out of the collector's sight (they are still freed by reference counting). Saves
    do not freeze, which would keep any garbage cycles of the moment forever.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was:
            gc.enable()
