"""Validating a session document and building its tree (format versions 1 and 2).

Every value is checked for its type and its range (the table in :mod:`loomtui.core.limits`);
the first problem raises :class:`Invalid` with a message naming the node and field.
Element checks over the big lists (token ids, log-probabilities) are deferred to a few C-speed
passes over every node at once (:class:`Bulk`); when one fails, the nodes are parsed again one
by one to name the culprit.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any, NoReturn

from loomtui.core import limits
from loomtui.core.node import (
    ORIGINS,
    Alternatives,
    Choices,
    Distribution,
    Node,
    Sampler,
    TokenScores,
)
from loomtui.core.session.schema import FORMAT, NODE_FIELDS, VERSION
from loomtui.core.tree import Tree

_NUM = {int, float}
_OPT_INT = {int, type(None)}
_OPT_NUM = {int, float, type(None)}
_SCALARS = {int, float, str, bool, type(None)}
_MISSING = object()


class Invalid(Exception):
    """A session document that does not validate; ``str()`` says where and what."""


def fail(msg: str) -> NoReturn:
    raise Invalid(msg)


def _is_num(x: object) -> bool:
    # orjson never yields NaN or infinity (they are not JSON), so a type check suffices.
    return type(x) is float or type(x) is int


class Bulk:
    """Element type and range checks deferred to a few passes over every node's lists."""

    def __init__(self) -> None:
        self.ids: list[list[Any]] = []  # token ids: int in [0, 2**31), or None where allowed
        self.opt_ids: list[list[Any]] = []
        self.offsets: list[list[Any]] = []
        self.strs: list[list[Any]] = []
        self.lps: list[list[Any]] = []
        self.opt_lps: list[list[Any]] = []
        self.rows: list[tuple[list[Any], list[Any], list[Any], bool]] = []

    def ok(self) -> bool:
        flat = chain.from_iterable
        for ids, texts, lps, looked_up in self.rows:
            if not (set(map(type, ids)) | set(map(type, lps))) <= {list} or (
                    not looked_up and not set(map(type, texts)) <= {list}):
                return False
            lens = list(map(len, ids))
            if lens != list(map(len, lps)) or (not looked_up and lens != list(map(len, texts))):
                return False
            self.opt_ids.extend(ids)
            if not looked_up:
                self.strs.extend(texts)
            self.lps.extend(lps)
        ids = list(flat(self.ids))
        opt_ids = _known(list(flat(self.opt_ids)))
        lps = list(flat(self.lps))
        opt_lps = _known(list(flat(self.opt_lps)))
        return (
            set(map(type, ids)) <= {int} and set(map(type, opt_ids)) <= {int}
            and min(ids, default=0) >= 0 and max(ids, default=0) < limits.MAX_TOKEN_ID
            and min(opt_ids, default=0) >= 0 and max(opt_ids, default=0) < limits.MAX_TOKEN_ID
            and set(map(type, flat(self.offsets))) <= {int}
            and set(map(type, flat(self.strs))) <= {str}
            and set(map(type, lps)) <= _NUM and set(map(type, opt_lps)) <= _NUM
            and max(lps, default=0.0) <= limits.MAX_LOGPROB
            and max(opt_lps, default=0.0) <= limits.MAX_LOGPROB
        )


def _known(values: list[Any]) -> list[Any]:
    """``values`` without its Nones (copied only when there are some)."""
    return [x for x in values if x is not None] if None in values else values


class Ctx:
    """What parsing one node needs: where it is, the shared state, the format version."""

    def __init__(self, bulk: Bulk | None, vocab: dict[str, dict[int, str]], version: int
                 ) -> None:
        self.bulk = bulk
        self.vocab = vocab
        self.version = version
        self.samplers: dict[Any, Sampler] = {}
        self.where = ""
        self.fields: dict[str, Any] = {}


# --------------------------------------------------------------------------- checks
def _check_ids(where: str, ids: list[Any], allow_none: bool) -> None:
    if not all((type(x) is int and 0 <= x < limits.MAX_TOKEN_ID)
               or (allow_none and x is None) for x in ids):
        fail(f"{where}: token ids must be integers in [0, 2**31)"
             + (" or null" if allow_none else ""))


def _check_lps(where: str, lps: list[Any], allow_none: bool) -> None:
    for x in lps:
        if x is None and allow_none:
            continue
        if not limits.logprob_ok(x):
            fail(f"{where}: log-probabilities must be finite numbers <= 1e-6, got {x!r:.30}")


def _check_row(where: str, ids: object, texts: object, lps: object) -> None:
    if (type(ids) is not list or type(texts) is not list or type(lps) is not list
            or not len(ids) == len(texts) == len(lps)):
        fail(f"{where} must be lists of one length")
    _check_ids(where, ids, allow_none=True)
    if not set(map(type, texts)) <= {str}:
        fail(f"{where}: token texts must be strings")
    _check_lps(where, lps, allow_none=False)


def _lookup(where: str, table: dict[int, str] | None, ids: list[Any]) -> list[str]:
    if table is None:
        fail(f"{where} has no texts and graph.vocab has no table for its model")
    try:
        return list(map(table.__getitem__, ids))
    except (KeyError, TypeError) as exc:
        fail(f"{where}: token id {exc} has no text in graph.vocab")


def _columns(where: str, raw: object, table: dict[int, str] | None, rows: bool
             ) -> tuple[list[Any], list[Any], list[Any], bool]:
    """(ids, texts, logprobs, whether the texts came from the vocabulary table)."""
    if type(raw) is not dict:
        fail(f"{where} must be an object with ids, texts and logprobs lists")
    ids, texts, lps = raw.get("ids"), raw.get("texts"), raw.get("logprobs")
    looked_up = False
    if texts is None and type(ids) is list:
        if rows:
            if not set(map(type, ids)) <= {list}:
                fail(f"{where}: every row must be a list")
            if table is None:
                fail(f"{where} has no texts and graph.vocab has no table for its model")
            get = table.__getitem__
            try:
                texts = [list(map(get, row)) for row in ids]
            except (KeyError, TypeError) as exc:
                fail(f"{where}: token id {exc} has no text in graph.vocab")
        else:
            texts = _lookup(where, table, ids)
        looked_up = True
    if type(ids) is not list or type(texts) is not list or type(lps) is not list or not (
            len(ids) == len(texts) == len(lps)):
        fail(f"{where} needs ids, texts and logprobs lists of one length")
    return ids, texts, lps, looked_up


def choices(where: str, raw: object, ctx: Ctx, model: str | None) -> Choices:
    ids, texts, lps, looked_up = _columns(where, raw, ctx.vocab.get(model)
                                          if model is not None else None, rows=False)
    if ctx.bulk is None:
        _check_row(where, ids, texts, lps)
    else:
        ctx.bulk.opt_ids.append(ids)
        if not looked_up:
            ctx.bulk.strs.append(texts)
        ctx.bulk.lps.append(lps)
    return Choices(ids, texts, lps)


def alternatives(where: str, raw: object, ctx: Ctx, model: str | None, n_tokens: int
                 ) -> Alternatives:
    ids, texts, lps, looked_up = _columns(where, raw, ctx.vocab.get(model)
                                          if model is not None else None, rows=True)
    if len(ids) != n_tokens:
        fail(f"{where} must have one row per token")
    if ctx.bulk is None:
        for i in range(n_tokens):
            _check_row(f"{where}[{i}]", ids[i], texts[i], lps[i])
    else:
        ctx.bulk.rows.append((ids, texts, lps, looked_up))
    return Alternatives(ids, texts, lps)


def distribution(where: str, raw: object, ctx: Ctx) -> Distribution:
    if type(raw) is not dict:
        fail(f"{where} must be an object or null")
    ent: Any = raw.get("entropy")
    mass: Any = raw.get("mass")
    dmodel: Any = raw.get("model")
    partial = raw.get("partial", False)
    if not (ent is None or _is_num(ent)) or not _is_num(mass) or not (
            dmodel is None or type(dmodel) is str):
        fail(f"{where} needs numeric entropy and mass, and a string model")
    if ent is not None and not limits.ENTROPY.contains(ent):
        fail(f"{where}: entropy must be >= 0, got {ent!r:.30}")
    if not limits.MASS.contains(mass):
        fail(f"{where}: mass must be in [0, 1], got {mass!r:.30}")
    if type(partial) is not bool or (partial and ctx.version < 2):
        fail(f"{where}: partial must be true or false (format version 2)")
    top = choices(f"{where}.top", raw.get("top"), ctx, dmodel)
    return Distribution(top, None if ent is None else float(ent), float(mass), dmodel,
                        partial)


_SAMPLER_TYPES: dict[str, set[type]] = {
    "temperature": _NUM, "top_k": {int}, "top_p": _NUM, "min_p": _NUM, "max_tokens": {int},
    "n": {int}, "stop": {list}}


def sampler(where: str, raw: object) -> Sampler:
    if type(raw) is not dict:
        fail(f"{where} must be an object")
    for key, value in raw.items():
        allowed = _SAMPLER_TYPES.get(key)
        if allowed is None:
            fail(f"{where}: unknown setting {key!r:.30}")
        if type(value) not in allowed:
            fail(f"{where}: {key} has the wrong type ({type(value).__name__})")
    stop = raw.get("stop", [])
    if not all(type(x) is str for x in stop):
        fail(f"{where}: stop must be a list of strings")
    try:
        return Sampler.from_json(raw).validated()
    except (TypeError, ValueError) as exc:
        fail(f"{where}: {exc}")


def _sampler_key(raw: object) -> tuple[Any, ...] | None:
    """A hashable key for a sampler object, so each distinct one is parsed once."""
    if type(raw) is not dict:
        return None
    stop = raw.get("stop")
    if stop is not None and type(stop) is not list:
        return None
    items = [(k, type(v), v) for k, v in raw.items() if k != "stop"]
    if not all(t in _SCALARS for _, t, _ in items):
        return None  # unhashable (a list or an object): parse it uncached, and let it fail
    return (tuple(items), None if stop is None else tuple(map(repr, stop)))


# --------------------------------------------------------------------------- field codecs
def _d_id(raw: Any, ctx: Ctx) -> str:
    return raw  # checked before the other fields (messages name the node)


def _d_str(raw: Any, ctx: Ctx) -> str:
    if type(raw) is not str:
        fail(f"{ctx.where} must be a string")
    return raw


def _d_origin(raw: Any, ctx: Ctx) -> str:
    if raw not in ORIGINS:
        fail(f"{ctx.where} must be one of {', '.join(ORIGINS)}, got {raw!r:.40}")
    return raw


def _d_token_ids(raw: Any, ctx: Ctx) -> list[int] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        fail(f"{ctx.where} must be a list of token ids or null")
    if ctx.bulk is not None:
        ctx.bulk.ids.append(raw)
    else:
        _check_ids(ctx.where, raw, allow_none=False)
    return raw


def _d_offsets(raw: Any, ctx: Ctx) -> list[int] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        fail(f"{ctx.where} must be a list of offsets or null")
    if ctx.bulk is not None:
        ctx.bulk.offsets.append(raw)
    elif not set(map(type, raw)) <= {int}:
        fail(f"{ctx.where} must list one integer offset per token")
    return raw


def _d_logprobs(raw: Any, ctx: Ctx) -> list[float | None] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        fail(f"{ctx.where} must be a list of numbers or nulls")
    if ctx.bulk is not None:
        ctx.bulk.opt_lps.append(raw)
    elif not set(map(type, raw)) <= _OPT_NUM:
        fail(f"{ctx.where} must be a list of numbers or nulls")
    else:
        _check_lps(ctx.where, raw, allow_none=True)
    return raw


def _d_alternatives(raw: Any, ctx: Ctx) -> Any:
    return raw  # needs the token count and model: parsed in the cross-field pass


def _d_distribution(raw: Any, ctx: Ctx) -> Distribution | None:
    return None if raw is None else distribution(ctx.where, raw, ctx)


def _d_sampler(raw: Any, ctx: Ctx) -> Sampler | None:
    if raw is None:
        return None
    key = _sampler_key(raw)
    cached = ctx.samplers.get(key) if key is not None else None
    if cached is None:
        cached = sampler(ctx.where, raw)
        if key is not None:
            ctx.samplers[key] = cached
    return cached


def _d_seed(raw: Any, ctx: Ctx) -> int | None:
    if raw is not None and not limits.SEED.contains(raw):
        fail(f"{ctx.where} must be an integer in [0, 2**63) or null")
    return raw


def _d_model(raw: Any, ctx: Ctx) -> str | None:
    if not (raw is None or type(raw) is str):
        fail(f"{ctx.where} must be a string or null")
    return raw


def _d_time(raw: Any, ctx: Ctx) -> float:
    if not _is_num(raw) or not 0 <= raw < 1e11:
        fail(f"{ctx.where} must be a number of seconds since the epoch")
    return float(raw)


def _d_bool(raw: Any, ctx: Ctx) -> bool:
    if type(raw) is not bool:
        fail(f"{ctx.where} must be true or false")
    return raw


def _d_tags(raw: Any, ctx: Ctx) -> list[str]:
    if type(raw) is not list or not all(type(t) is str for t in raw):
        fail(f"{ctx.where} must be a list of strings")
    return raw


def _d_token_bytes(raw: Any, ctx: Ctx) -> list[bytes] | None:
    if raw is None:
        return None
    if type(raw) is not list or not all(type(x) is str for x in raw):
        fail(f"{ctx.where} must be a list of hex strings, one per token")
    try:
        return [bytes.fromhex(x) for x in raw]
    except ValueError:
        fail(f"{ctx.where} must be a list of hex strings, one per token")


def _d_scores(raw: Any, ctx: Ctx) -> dict[str, TokenScores]:
    if type(raw) is not dict:
        fail(f"{ctx.where} must be an object mapping model names to scores")
    out = {}
    for model, s in raw.items():
        where = f"{ctx.where}[{model!r:.30}]"
        if type(s) is not dict:
            fail(f"{where} must be an object")
        offs, lps, ids = s.get("token_offsets"), s.get("token_logprobs"), s.get("token_ids")
        if offs is not None and (type(offs) is not list or not set(map(type, offs)) <= {int}):
            fail(f"{where}.token_offsets must be a list of integers")
        if lps is not None:
            if type(lps) is not list:
                fail(f"{where}.token_logprobs must be a list")
            _check_lps(f"{where}.token_logprobs", lps, allow_none=True)
        if ids is not None:
            if type(ids) is not list:
                fail(f"{where}.token_ids must be a list")
            _check_ids(f"{where}.token_ids", ids, allow_none=True)
        n = len(offs) if offs is not None else None
        for name, col in (("token_logprobs", lps), ("token_ids", ids)):
            if col is not None and n is not None and len(col) != n:
                fail(f"{where}.{name} must have one entry per token")
        alts = s.get("alternatives")
        if alts is not None:
            if n is None:
                fail(f"{where}.alternatives given without token_offsets")
            saved, ctx.bulk = ctx.bulk, None  # rare: checked at once
            try:
                alts = alternatives(f"{where}.alternatives", alts, ctx, model, n)
            finally:
                ctx.bulk = saved
        dist = s.get("distribution")
        if dist is not None:
            saved, ctx.bulk = ctx.bulk, None
            try:
                dist = distribution(f"{where}.distribution", dist, ctx)
            finally:
                ctx.bulk = saved
        out[model] = TokenScores(offs, lps, ids, alts, dist)
    return out


def _d_foreign(raw: Any, ctx: Ctx) -> dict[str, Any]:
    if type(raw) is not dict:
        fail(f"{ctx.where} must be an object")
    if raw and not _shallow(raw, limits.MAX_FOREIGN_DEPTH):
        fail(f"{ctx.where} is nested deeper than {limits.MAX_FOREIGN_DEPTH} levels")
    return raw


def _shallow(value: Any, limit: int) -> bool:
    """Whether lists and objects in ``value`` nest at most ``limit`` deep (iteratively)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        t = type(v)
        if t is not dict and t is not list:
            continue
        if depth > limit:
            return False
        stack.extend((c, depth + 1) for c in (v.values() if t is dict else v))
    return True


DECODERS: dict[str, Callable[[Any, Ctx], Any]] = {
    "id": _d_id, "str": _d_str, "origin": _d_origin, "token_ids": _d_token_ids,
    "token_offsets": _d_offsets, "token_logprobs": _d_logprobs,
    "alternatives": _d_alternatives, "distribution": _d_distribution, "sampler": _d_sampler,
    "seed": _d_seed, "model": _d_model, "time": _d_time, "bool": _d_bool, "tags": _d_tags,
    "token_bytes": _d_token_bytes, "scores": _d_scores, "foreign": _d_foreign,
}


# --------------------------------------------------------------------------- nodes
def parse_node(raw: object, index: int, ctx: Ctx) -> Node:
    if type(raw) is not dict:
        fail(f"node #{index} is not an object")
    r: dict[str, Any] = raw
    nid = r.get("id")
    if type(nid) is not str or not nid:
        fail(f"node #{index} has no string id")
    w = f"node {nid!r:.40}"
    values: dict[str, Any] = {}
    for f in NODE_FIELDS:
        value = r.get(f.name, _MISSING)
        if value is _MISSING:
            if f.default is None:
                fail(f"{w}: {f.name} is missing")
            values[f.name] = f.default()
            continue
        if f.since > ctx.version:
            fail(f"{w}: {f.name} needs session format version {f.since}")
        ctx.where = f"{w}: {f.name}"
        values[f.name] = DECODERS[f.kind](value, ctx)
    _cross_check(w, values, ctx)
    return Node(**values)


def _cross_check(w: str, v: dict[str, Any], ctx: Ctx) -> None:
    """Rules between fields: one entry per token everywhere, offsets inside the text."""
    ids, offs, lps, text = v["token_ids"], v["token_offsets"], v["token_logprobs"], v["text"]
    if ids is not None and (offs is None or len(offs) != len(ids)):
        fail(f"{w}: token_ids and token_offsets must be lists with one entry per token")
    if offs is not None:
        if ids is None and ctx.version < 2:
            fail(f"{w}: token_offsets given without token_ids")
        if not set(map(type, offs)) <= {int}:
            fail(f"{w}: token_offsets must list one integer offset per token")
        if offs and (offs[0] < 0 or offs[-1] > len(text) or offs != sorted(offs)):
            fail(f"{w}: token_offsets must be increasing offsets into text")
    n = len(offs) if offs is not None else None
    if lps is not None and (n is None or len(lps) != n):
        fail(f"{w}: token_logprobs must have one entry per token")
    tb = v["token_bytes"]
    if tb is not None and (n is None or len(tb) != n):
        fail(f"{w}: token_bytes must have one entry per token")
    alts = v["alternatives"]
    if alts is not None:
        if n is None:
            fail(f"{w}: alternatives given without tokens")
        v["alternatives"] = alternatives(f"{w}: alternatives", alts, ctx, v["model"], n)


def _parse_vocab(raw: object) -> dict[str, dict[int, str]]:
    """graph.vocab: {model: {"token id": "token text"}} -> {model: {id: text}}."""
    if type(raw) is not dict:
        fail("graph.vocab must be an object")
    out: dict[str, dict[int, str]] = {}
    for model, table in raw.items():
        if type(table) is not dict or not set(map(type, table.values())) <= {str}:
            fail(f"graph.vocab[{model!r:.30}] must map token ids to texts")
        try:
            out[model] = {int(k): v for k, v in table.items()}
        except ValueError:
            fail(f"graph.vocab[{model!r:.30}] has a key that is not a token id")
    return out


# --------------------------------------------------------------------------- the tree
def tree_from_json(data: object) -> Tree:
    """Validate a parsed session document and build its tree; raises :class:`Invalid`."""
    if type(data) is not dict:
        fail("top level must be a JSON object")
    d: dict[str, Any] = data
    graph = d.get("graph")
    if type(graph) is not dict or graph.get("format") != FORMAT:
        fail(f"not a loomtui session (graph.format is not {FORMAT!r}); "
             "other looms' files: loomtui import FILE")
    g: dict[str, Any] = graph
    version = g.get("version")
    if type(version) is not int:
        fail("graph.version must be an integer")
    if version > VERSION:
        fail(f"session format version {version} is newer than this loomtui reads ({VERSION}); "
             "upgrade loomtui")
    if version < 1:
        fail(f"unknown session format version {version}")
    if d.get("directed") is not True or d.get("multigraph") not in (False, None):
        fail("the graph must be directed and not a multigraph")
    raw_nodes, raw_edges = d.get("nodes"), d.get("edges")
    if type(raw_nodes) is not list or not raw_nodes:
        fail("nodes must be a non-empty list")
    if type(raw_edges) is not list:
        fail("edges must be a list")
    vocab = _parse_vocab(g.get("vocab", {}))
    ctx = Ctx(Bulk(), vocab, version)
    nodes = [parse_node(r, i, ctx) for i, r in enumerate(raw_nodes)]
    assert ctx.bulk is not None
    if not ctx.bulk.ok():  # find and name the culprit
        slow = Ctx(None, vocab, version)
        for i, r in enumerate(raw_nodes):
            parse_node(r, i, slow)
        fail("a token list holds a value of the wrong type or out of range")
    root, edges = _structure(nodes, raw_edges, g)
    model = g.get("model")
    if not (model is None or type(model) is str):
        fail("graph.model must be a string or null")
    default_sampler = sampler("graph.sampler", g.get("sampler", {}))
    created, modified = g.get("created", 0.0), g.get("modified", 0.0)
    if not _is_num(created) or not _is_num(modified):
        fail("graph.created and graph.modified must be numbers")
    tree = Tree.from_parts(nodes, edges, root, model=model, sampler=default_sampler,
                           created=float(created))
    tree.modified = float(modified)
    selected = g.get("selected", root)
    if type(selected) is not str or selected not in tree:
        fail(f"graph.selected names a node that does not exist: {selected!r:.30}")
    tree.selected = selected
    seed = g.get("seed")
    if not (seed is None or limits.SEED.contains(seed)):
        fail("graph.seed must be an integer in [0, 2**63) or null")
    tree.seed = seed
    foreign = g.get("foreign", {})
    if type(foreign) is not dict or (foreign and version < 2):
        fail("graph.foreign must be an object (format version 2)")
    if foreign and not _shallow(foreign, limits.MAX_FOREIGN_DEPTH):
        fail(f"graph.foreign is nested deeper than {limits.MAX_FOREIGN_DEPTH} levels")
    tree.foreign = foreign
    return tree


def _structure(nodes: list[Node], raw_edges: list[Any], graph: dict[str, Any]
               ) -> tuple[str, list[tuple[str, str]]]:
    """The root and the (parent, child) edges, checked: one parent each, no cycles."""
    ids = {n.id for n in nodes}
    if len(ids) != len(nodes):
        fail("two nodes share an id")
    parent: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for e in raw_edges:
        if type(e) is not dict:
            fail("every edge must be an object with source and target")
        s, t = e.get("source"), e.get("target")
        if type(s) is not str or type(t) is not str or s not in ids or t not in ids:
            fail(f"edge {s!r:.30} -> {t!r:.30} names a node that does not exist")
        if t in parent:
            fail(f"node {t!r:.40} has more than one parent")
        parent[t] = s
        edges.append((s, t))
    roots = [n.id for n in nodes if n.id not in parent]
    if len(roots) != 1:
        fail(f"a session needs exactly one root, found {len(roots)}")
    root = roots[0]
    if graph.get("root", root) != root:
        fail(f"graph.root is {graph.get('root')!r:.30} but the root is {root!r:.30}")
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
        fail("the edges contain a cycle (some nodes are not reachable from the root)")
    return root, edges
