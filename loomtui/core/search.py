"""Finding nodes: text in a node's own segment or across segments in its context, and filters.

:func:`search` walks the tree once, iteratively, in pre-order (children by creation), and
returns a :class:`Match` per node that passes every filter of the :class:`Query` and contains
its text. With ``context=True`` a match may start in an ancestor's segment; it is reported once,
at the node whose segment it ends in. The walk keeps, per node, only the tail of its context
that a match ending in its children could start in (``len(text) - 1`` characters for a plain
query, :data:`REGEX_LOOKBACK` for a regex), so a deep chain costs no more than a bushy tree.

A node whose value is unknown (not scored, a partial distribution) never matches a numeric
filter. Runs on any thread: what the walk needs is copied under ``Tree.lock`` and the walk runs
without it (an edit on the main thread waits for the copy, not for the walk; a walk of a tree
that changed meanwhile is never reused, its revision being the old one).
"""

from __future__ import annotations

import fnmatch
import functools
import re
import weakref
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import NamedTuple

from loomtui.core.errors import LoomError
from loomtui.core.node import ORIGINS, Node
from loomtui.core.tree import Tree

REGEX_LOOKBACK = 1000
"""With ``context=True`` a regex match may start at most this many characters before the
segment it ends in (a plain query's matches are all found: their length is known)."""


class SearchError(LoomError):
    """A query that cannot run (a bad regex, an unknown origin, an empty range)."""


@dataclass(frozen=True, slots=True)
class Query:
    """What to look for. ``text`` empty matches every node that passes the filters."""

    text: str = ""
    regex: bool = False
    case_sensitive: bool = False
    context: bool = False
    """Match across segment boundaries in the node's whole context."""
    origins: frozenset[str] = frozenset()
    """Any of these origins (empty: any)."""
    bookmarked: bool | None = None
    has_note: bool | None = None
    tags: tuple[str, ...] = ()
    """Every one of these must match one of the node's tags (shell patterns: ``autoloom:*``)."""
    model: str | None = None
    """Case-insensitive substring of the node's model (``smollm2`` finds SmolLM2-135M-...)."""
    min_depth: int | None = None
    max_depth: int | None = None
    since: float | None = None
    """Created at or after this time (seconds since the epoch)."""
    until: float | None = None
    """Created before this time."""
    min_logprob: float | None = None
    max_logprob: float | None = None
    """The node's total log-probability (sum over its tokens) at least / at most this."""
    min_mean_logprob: float | None = None
    max_mean_logprob: float | None = None
    """Its mean log-probability per token at least / at most this."""
    min_entropy: float | None = None
    """The entropy (nats) of its stored next-token distribution at least this."""

    def validated(self) -> Query:
        """Self, or :class:`SearchError` naming the first bad value."""
        bad = sorted(self.origins - set(ORIGINS))
        if bad:
            raise SearchError(f"unknown origin {bad[0]!r}; expected one of {', '.join(ORIGINS)}")
        for lo, hi, what in ((self.min_depth, self.max_depth, "depth"),
                             (self.since, self.until, "creation time"),
                             (self.min_logprob, self.max_logprob, "log-probability"),
                             (self.min_mean_logprob, self.max_mean_logprob,
                              "mean log-probability")):
            if lo is not None and hi is not None and lo > hi:
                raise SearchError(f"the {what} range is empty: {lo} > {hi}")
        for d, what in ((self.min_depth, "min depth"), (self.max_depth, "max depth")):
            if d is not None and d < 0:
                raise SearchError(f"{what} must be 0 or more, got {d}")
        compile_query(self)
        return self


class Match(NamedTuple):
    """A node that matches, and where: ``start``/``end`` are offsets in the node's context
    text (the path's segments joined), ``node_start`` is where its own segment begins there.
    Without query text the span is empty, at ``node_start``."""

    node_id: str
    depth: int
    start: int
    end: int
    node_start: int

    @property
    def segment_span(self) -> tuple[int, int]:
        """The span in the node's own text (start < 0 for a match begun in an ancestor)."""
        return self.start - self.node_start, self.end - self.node_start


@dataclass(slots=True)
class SearchResult:
    matches: list[Match] = field(default_factory=list)
    searched: int = 0
    """Nodes visited."""
    truncated: bool = False
    """The ``limit`` was reached before the walk ended."""


def compile_query(query: Query) -> re.Pattern[str] | None:
    """The query's text as a pattern (None when there is no text)."""
    if not query.text:
        return None
    flags = 0 if query.case_sensitive else re.IGNORECASE
    try:
        return re.compile(query.text if query.regex else re.escape(query.text), flags)
    except re.error as exc:
        raise SearchError(f"bad regular expression {query.text!r:.60}: {exc}") from None


def _logprob(node: Node) -> float | None:
    """:meth:`Node.logprob`, without a generator (it runs on every node of a search)."""
    lps = node.token_logprobs
    return None if not lps or None in lps else float(sum(lps))  # type: ignore[arg-type]


def _mean(node: Node) -> float | None:
    lp = _logprob(node)
    n = node.n_tokens
    return None if lp is None or not n else lp / n


def _entropy(n: Node) -> float | None:
    d = n.distribution
    return None if d is None or d.partial else d.entropy


def _numeric(query: Query) -> list[tuple[str, Callable[[Node], float | None], float | None,
                                         float | None]]:
    """The numeric filters: (name, value of a node, low, high)."""
    q = query
    out: list[tuple[str, Callable[[Node], float | None], float | None, float | None]] = []
    if q.min_logprob is not None or q.max_logprob is not None:
        out.append(("logprob", _logprob, q.min_logprob, q.max_logprob))
    if q.min_mean_logprob is not None or q.max_mean_logprob is not None:
        out.append(("mean", _mean, q.min_mean_logprob, q.max_mean_logprob))
    if q.min_entropy is not None:
        out.append(("entropy", _entropy, q.min_entropy, None))
    return out


def _mask(order: _Order, query: Query) -> list[bool] | None:
    """Which nodes of ``order`` pass the numeric filters (None: there are none), from
    columns of values kept with the walk, so a refined search does not recompute them."""
    mask: list[bool] | None = None
    for name, value, lo, hi in _numeric(query):
        col = order.column(name, value)
        ok = [v is not None and (lo is None or v >= lo) and (hi is None or v <= hi)
              for v in col]
        mask = ok if mask is None else [a and b for a, b in zip(mask, ok, strict=True)]
    return mask


def _filter(query: Query, numeric: bool = True) -> list[Callable[[Node], bool]]:
    """Predicates on a node, cheapest first (the depth range is checked by the walk; the
    numeric filters only with ``numeric``)."""
    tests: list[Callable[[Node], bool]] = []
    q = query
    if q.origins:
        origins = q.origins
        tests.append(lambda n: n.origin in origins)
    if q.bookmarked is not None:
        want = q.bookmarked
        tests.append(lambda n: n.bookmarked == want)
    if q.has_note is not None:
        want_note = q.has_note
        tests.append(lambda n: bool(n.note) == want_note)
    if q.since is not None:
        since = q.since
        tests.append(lambda n: n.created >= since)
    if q.until is not None:
        until = q.until
        tests.append(lambda n: n.created < until)
    if q.model is not None:
        model = q.model.casefold()
        tests.append(lambda n: n.model is not None and model in n.model.casefold())
    for pattern in q.tags:
        tests.append(functools.partial(_has_tag, pattern=pattern))

    def between(value: float | None, lo: float | None, hi: float | None) -> bool:
        return value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)

    if numeric and (q.min_logprob is not None or q.max_logprob is not None):
        lo, hi = q.min_logprob, q.max_logprob
        tests.append(lambda n: between(_logprob(n), lo, hi))
    if numeric and (q.min_mean_logprob is not None or q.max_mean_logprob is not None):
        mlo, mhi = q.min_mean_logprob, q.max_mean_logprob
        tests.append(lambda n: between(_mean(n), mlo, mhi))
    if numeric and q.min_entropy is not None:
        elo = q.min_entropy

        def entropy_ok(n: Node) -> bool:
            d = n.distribution
            return (d is not None and not d.partial and d.entropy is not None
                    and d.entropy >= elo)
        tests.append(entropy_ok)
    return tests


def search(tree: Tree, query: Query, *, start: str | None = None,
           limit: int | None = None) -> SearchResult:
    """Every node under ``start`` (default: the root) that matches ``query``, in pre-order."""
    query.validated()
    pattern = compile_query(query)
    tests = _filter(query)
    with tree.lock:
        top = tree.root_id if start is None else tree.node(start).id
        order = _cached(tree, top)
        sparse = order is None and (pattern is not None or tests) and not (
            pattern is not None and query.context)
        nodes, revision = (list(tree.nodes()) if sparse else []), tree.shape_revision
    if sparse:  # the scan runs outside the lock; the few hits are placed under it
        hits = _sparse_hits(nodes, pattern, tests)
        if hits is not None:
            with tree.lock:
                if tree.shape_revision == revision:
                    found = _sparse(tree, query, hits, top, limit)
                    if found is not None:
                        return found
    with tree.lock:
        order = _cached(tree, top)
        snapshot = _snapshot(tree, top) if order is None else None
    if order is None:  # the walk runs outside the lock (edits on the main thread never wait)
        assert snapshot is not None
        order = _build(tree, snapshot)
    return _match(order, query, pattern, _filter(query, numeric=False), limit,
                  _mask(order, query))


SPARSE_SHARE = 8
"""Without a cached walk, a query that at most one node in this many passes is answered by
testing every node and placing the few that pass from their paths, without walking the tree."""


def _sparse_hits(nodes: list[Node], pattern: re.Pattern[str] | None,
                 tests: list[Callable[[Node], bool]]
                 ) -> list[tuple[Node, re.Match[str] | None]] | None:
    """The nodes that pass, with their match; None when too many pass for placing them one
    by one (:func:`_sparse`) to beat a walk."""
    find = pattern.search if pattern is not None else None
    passes = tests[0] if len(tests) == 1 else (lambda n: all(t(n) for t in tests))
    cap = max(len(nodes) // SPARSE_SHARE, 1)
    hits: list[tuple[Node, re.Match[str] | None]] = []
    for node in nodes:
        if tests and not passes(node):
            continue
        m = None
        if find is not None:
            m = find(node.text)
            if m is None:
                continue
        hits.append((node, m))
        if len(hits) > cap:
            return None
    return hits


def _sparse(tree: Tree, query: Query, hits: list[tuple[Node, re.Match[str] | None]],
            top: str, limit: int | None) -> SearchResult | None:
    """The hits placed in pre-order by their paths' (creation time, id) keys (call with the
    tree's lock held); None when their paths are too long for that to beat a walk."""
    pred = tree.graph.pred
    get = tree.node
    steps, budget = 0, len(tree)
    rows = []
    min_d = query.min_depth if query.min_depth is not None else 0
    max_d = query.max_depth
    for node, m in hits:
        key = [(node.created, node.id)]
        pos = 0
        nid = node.id
        inside = nid == top
        while True:
            ps = pred[nid]
            if not ps:
                break
            nid = next(iter(ps))
            inside = inside or nid == top
            parent = get(nid)
            key.append((parent.created, nid))
            pos += len(parent.text)
            steps += 1
            if steps > budget:  # deep paths: the walk is cheaper
                return None
        depth = len(key) - 1
        if not inside or depth < min_d or (max_d is not None and depth > max_d):
            continue
        key.reverse()
        a, b = (m.start(), m.end()) if m is not None else (0, 0)
        rows.append((key, Match(node.id, depth, pos + a, pos + b, pos)))
    rows.sort(key=lambda row: row[0])
    out = SearchResult([row[1] for row in rows], len(tree))
    if limit is not None and len(out.matches) > limit:
        del out.matches[limit:]
        out.truncated = True
    return out


@dataclass(slots=True)
class _Order:
    """A subtree in pre-order (children by creation): its nodes, their depths, and where each
    one's segment starts in its context. Kept per tree until its structure or a text changes
    (``Tree.shape_revision``), so a search typed letter by letter walks the tree once, and a
    distribution or scores stored meanwhile (every selection, while the model runs) only drop
    the numeric columns."""

    revision: int
    """The tree's ``shape_revision`` the walk was made at."""
    top: str
    nodes: list[Node]
    depths: list[int]
    starts: list[int]
    joined: str | None = None
    """Every node's text in pre-order, joined by :data:`SEP` (built by the first plain search
    in segments): one ``re`` scan finds every node holding the text."""
    offsets: list[int] = field(default_factory=list)
    """Where each node's text starts in ``joined``."""
    above: str = ""
    """The context above ``top`` (its ancestors' text)."""
    columns: dict[str, list[float | None]] = field(default_factory=dict)
    """A numeric filter's value for each node (log-probability, mean, entropy)."""
    columns_revision: int = -1
    """The tree's ``revision`` the columns were computed at (scores change it, not the walk)."""

    def column(self, name: str, value: Callable[[Node], float | None]) -> list[float | None]:
        col = self.columns.get(name)
        if col is None:
            col = self.columns[name] = [value(n) for n in self.nodes]
        return col

    def joined_text(self) -> tuple[str, list[int]]:
        if self.joined is None:
            texts = [n.text for n in self.nodes]
            self.offsets = list(accumulate((len(t) + 1 for t in texts), initial=0))[:-1]
            self.joined = SEP.join(texts)
        return self.joined, self.offsets


SEP = "\x00"
"""Between segments in :attr:`_Order.joined`: a plain query without it cannot match across."""


def prepare(tree: Tree, start: str | None = None) -> None:
    """Build the pre-order walk and joined text a search reuses until the tree changes (the
    app calls it in a worker when its search bar opens, so the first search is fast)."""
    with tree.lock:
        top = tree.root_id if start is None else tree.node(start).id
    _order(tree, top).joined_text()


_ORDERS: weakref.WeakKeyDictionary[Tree, _Order] = weakref.WeakKeyDictionary()


def _cached(tree: Tree, top: str) -> _Order | None:
    cached = _ORDERS.get(tree)
    if cached is not None and cached.revision == tree.shape_revision and cached.top == top:
        if cached.columns_revision != tree.revision:
            cached.columns = {}  # scores or distributions changed: values, not the walk
            cached.columns_revision = tree.revision
        return cached
    return None


class _Snapshot(NamedTuple):
    """What a walk needs, copied under the tree's lock (the walk itself runs without it)."""

    revision: int
    columns_revision: int
    top: str
    by_id: dict[str, Node]
    kids: dict[str, list[str]]
    depth: int
    above: str


def _snapshot(tree: Tree, top: str) -> _Snapshot:
    """Call with ``tree.lock`` held."""
    by_id = {n.id: n for n in tree.nodes()}
    kids = {nid: list(ch) for nid, ch in tree.graph.adjacency()}  # as networkx keeps them
    path = tree.path(top)
    return _Snapshot(tree.shape_revision, tree.revision, top, by_id, kids, len(path) - 1,
                     "".join(by_id[n].text for n in path[:-1]))


def _order(tree: Tree, top: str) -> _Order:
    """The walk of ``top``'s subtree (kept until the tree's shape revision changes)."""
    with tree.lock:
        cached = _cached(tree, top)
        if cached is not None:
            return cached
        snapshot = _snapshot(tree, top)
    return _build(tree, snapshot)


def _build(tree: Tree, snap: _Snapshot) -> _Order:
    by_id, kids, top = snap.by_id, snap.kids, snap.top
    created = {nid: n.created for nid, n in by_id.items()}.__getitem__
    order = _Order(snap.revision, top, [], [], [], above=snap.above,
                   columns_revision=snap.columns_revision)
    add_node, add_depth, add_start = order.nodes.append, order.depths.append, order.starts.append
    stack = [(top, snap.depth, len(snap.above))]
    pop, push = stack.pop, stack.append
    while stack:
        nid, depth, pos = pop()
        node = by_id[nid]
        add_node(node)
        add_depth(depth)
        add_start(pos)
        children = kids[nid]
        if children:
            end = pos + len(node.text)
            depth += 1
            if len(children) == 1:
                for c in children:
                    push((c, depth, end))
            else:
                # by creation, ties by id (as the paths' keys of a sparse search)
                for c in sorted(sorted(children, reverse=True), key=created, reverse=True):
                    push((c, depth, end))
    _ORDERS[tree] = order
    return order


def _lookback(query: Query, pattern: re.Pattern[str]) -> int:
    """How far before a segment a match ending in it may start."""
    if not query.regex:
        return max(len(query.text) - 1, 0)
    try:  # a bounded pattern's longest match (re's own parser; fall back if it changes)
        from re import _parser  # type: ignore[attr-defined]

        longest = _parser.parse(pattern.pattern, pattern.flags).getwidth()[1]
    except Exception:  # pragma: no cover - another Python's re
        longest = REGEX_LOOKBACK
    return max(0, min(longest - 1, REGEX_LOOKBACK))


def _match(order: _Order, query: Query, pattern: re.Pattern[str] | None,
           tests: list[Callable[[Node], bool]], limit: int | None,
           mask: list[bool] | None = None) -> SearchResult:
    out = SearchResult()
    matches = out.matches
    add = matches.append
    min_d = query.min_depth if query.min_depth is not None else 0
    max_d = query.max_depth
    depths, starts = order.depths, order.starts
    find = pattern.search if pattern is not None else None
    passes = tests[0] if len(tests) == 1 else (lambda n: all(t(n) for t in tests))
    lookback = _lookback(query, pattern) if pattern is not None and query.context else 0
    if find is not None and not lookback and not query.regex and SEP not in query.text:
        return _match_joined(order, find, tests, min_d, max_d, limit, mask)
    if lookback:
        keep = lookback + 1  # one more character: a regex's ^ or \b never sees a cut as a start
        top_tail = order.above[-keep:]
        base = depths[0] if depths else 0
        tails = [top_tail]  # tails[r]: the last characters of the context above depth base+r
    for i, node in enumerate(order.nodes):
        depth = depths[i]
        if lookback:
            r = depth - base
            del tails[r + 1:]
            tail = tails[r]
            tails.append((tail + node.text)[-keep:])
        if depth < min_d or (max_d is not None and depth > max_d):
            continue
        if mask is not None and not mask[i]:
            continue
        if tests and not passes(node):
            continue
        pos = starts[i]
        if find is None:
            add(Match(node.id, depth, pos, pos, pos))
        elif not lookback:
            m = find(node.text)
            if m is None:
                continue
            add(Match(node.id, depth, pos + m.start(), pos + m.end(), pos))
        else:
            span = _ending_in(pattern, tail + node.text, len(tail),  # type: ignore[arg-type]
                              int(len(tail) == keep))
            if span is None:
                continue
            shift = pos - len(tail)
            add(Match(node.id, depth, shift + span[0], shift + span[1], pos))
        if limit is not None and len(matches) >= limit:
            out.truncated = i + 1 < len(order.nodes)
            break
    out.searched = i + 1 if order.nodes else 0
    return out


def _match_joined(order: _Order, find: Callable[[str, int], re.Match[str] | None],
                  tests: list[Callable[[Node], bool]], min_d: int, max_d: int | None,
                  limit: int | None, mask: list[bool] | None) -> SearchResult:
    """A plain query in segments: scan the joined text once; each hit names its node, and the
    scan goes on from the next node's start (a node's first match is the one reported)."""
    out = SearchResult()
    add = out.matches.append
    joined, offsets = order.joined_text()
    nodes, depths, starts = order.nodes, order.depths, order.starts
    passes = tests[0] if len(tests) == 1 else (lambda n: all(t(n) for t in tests))
    n = len(nodes)
    pos = 0
    out.searched = n
    while True:
        m = find(joined, pos)
        if m is None:
            break
        at = m.start()
        i = bisect_right(offsets, at) - 1
        pos = offsets[i + 1] if i + 1 < n else len(joined) + 1
        depth = depths[i]
        if depth < min_d or (max_d is not None and depth > max_d):
            continue
        if mask is not None and not mask[i]:
            continue
        node = nodes[i]
        if tests and not passes(node):
            continue
        start = starts[i] + at - offsets[i]
        add(Match(node.id, depth, start, start + m.end() - at, starts[i]))
        if limit is not None and len(out.matches) >= limit:
            out.truncated = i + 1 < n
            out.searched = i + 1
            break
    return out


def _ending_in(pattern: re.Pattern[str], window: str, boundary: int,
               pos: int) -> tuple[int, int] | None:
    """The first match in ``window`` from ``pos`` that ends after ``boundary`` (in the node's
    own text); a match that ends before it belongs to an ancestor, so the search goes on from
    just after its start (a later, overlapping match may still cross the boundary)."""
    while True:
        m = pattern.search(window, pos)
        if m is None or m.start() >= len(window):
            return None
        if m.end() > boundary:
            return m.start(), m.end()
        pos = m.start() + 1


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: float) -> float:
    """A time for ``since``/``until``: an ISO date or date-time (local time unless it says
    otherwise), or a duration before ``now`` such as ``30m``, ``12h``, ``7d``, ``2w``."""
    from datetime import datetime

    m = _AGO.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise SearchError(f"not a time: {text!r:.40} (give 2026-11-23, 2026-11-23T14:00, "
                          "or a duration ago such as 30m, 12h, 7d, 2w)") from None


def _has_tag(n: Node, pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(t, pattern) for t in n.tags)
