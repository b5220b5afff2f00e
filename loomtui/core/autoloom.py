"""Autoloom: model-guided tree search, grown through the pipeline of :mod:`loomtui.core.grow`.

A run starts at a node and creates at most ``budget`` nodes. Each expansion samples ``width``
children of the sampler's max tokens (phase one, :func:`grow.sample`), scores them, and adds
them (phase two, :func:`grow.attach` then :func:`grow.adopt`, so their KV stays cached and the
next expansion runs only new tokens). Strategies:

* ``best-first``: expand the open node with the best score until the budget is spent
  (``depth``, when given, stops nodes that deep from being expanded);
* ``beam``: at each depth keep the ``width`` best nodes and expand them, to ``depth``;
* ``sample``: grow the full shape, ``width`` children a node for ``depth`` levels.

A node's score is a weighted sum of: ``logprob``, the log-probability of the text the run grew
from the start node down to it; ``mean-logprob``, the same per token; ``judge``, log P(" yes")
- log P(" no") from the same model after a question about that text (the question with
``{text}`` replaced, then :data:`ANSWER_CUE`), computed on a scratch tree so the user's tree
gets no judge nodes. Optional Gumbel noise (scale ``noise``, seeded) is added to the score the
strategy ranks by. Child ``i`` of an expansion that starts after ``k`` nodes were made has seed
``seed + k + i``, so a run replays exactly from its seed.

Every node made records the run: ``node.sampler`` and ``node.seed``, a tag ``autoloom:RUN``, and
``node.foreign["autoloom"]`` (strategy, score name and weights, value, its components, the noise
added, the question, the run's seed, the step). The whole run is one undo step
(:meth:`Tree.undo_group`). It runs on a worker thread: ``cancel`` stops it (what was grown is
kept), ``on_progress(made, budget, best_score)`` reports from the run's thread, and ``on_main``
runs each phase two where the tree's structure may be edited (the app passes
``App.call_from_thread``). Every transaction made while the run is open joins its undo step, so
the app keeps the user from editing the tree meanwhile.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loomtui.core import grow, limits
from loomtui.core.errors import LoomError
from loomtui.core.node import Node, Sampler
from loomtui.core.predictor import Predictor, Segment
from loomtui.core.tree import Tree

STRATEGIES = ("best-first", "beam", "sample")
SCORES = ("logprob", "mean-logprob", "judge")
DEFAULT_DEPTH = 3
"""Depth of ``beam`` and ``sample`` runs when none is given (``best-first`` has no limit)."""
ANSWER_CUE = "\nAnswer:"
"""Appended to the judge's question; the score compares the next words " yes" and " no"."""
YES, NO = " yes", " no"
TAG = "autoloom:"
FIELD = "autoloom"
"""The key of ``node.foreign`` where a run records how it chose the node."""

BUDGET = limits.Bound("budget", 1, 1000, integer=True)
WIDTH = limits.Bound("width", 1, limits.MAX_N, integer=True)
DEPTH = limits.Bound("depth", 1, 1000, integer=True)
NOISE = limits.Bound("noise", 0.0, 100.0)
WEIGHT = limits.Bound("weight", -1e6, 1e6)

OnProgress = Callable[[int, int, float | None], None]
OnMain = Callable[[Callable[[], Any]], Any]


class AutoloomError(LoomError):
    """A run that cannot start (bad strategy, budget, question...); nothing was grown."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run does. ``weights`` maps score names to weights (``--score`` is one of 1)."""

    strategy: str
    budget: int
    width: int = 4
    depth: int | None = None
    weights: tuple[tuple[str, float], ...] = (("logprob", 1.0),)
    question: str | None = None
    seed: int | None = None
    noise: float = 0.0

    @property
    def max_depth(self) -> int | None:
        if self.depth is not None or self.strategy == "best-first":
            return self.depth
        return DEFAULT_DEPTH

    @property
    def score_name(self) -> str:
        return self.weights[0][0] if len(self.weights) == 1 and self.weights[0][1] == 1 \
            else "mix"

    def validated(self) -> Plan:
        """Self, or :class:`AutoloomError` with one line naming the first bad value."""
        if self.strategy not in STRATEGIES:
            raise AutoloomError(f"unknown strategy {self.strategy!r:.40}; expected one of "
                                f"{', '.join(STRATEGIES)}")
        try:
            BUDGET.check(self.budget, "budget (nodes to create)")
            WIDTH.check(self.width)
            if self.depth is not None:
                DEPTH.check(self.depth)
            NOISE.check(self.noise)
            if self.seed is not None:
                limits.SEED.check(self.seed)
                limits.SEED.check(self.seed + self.budget - 1, "seed + budget - 1")
            for _, w in self.weights:
                WEIGHT.check(w)
        except ValueError as exc:
            raise AutoloomError(str(exc)) from None
        if not self.weights:
            raise AutoloomError("no score given")
        for name, _ in self.weights:
            if name not in SCORES:
                raise AutoloomError(f"unknown score {name!r:.40}; expected one of "
                                    f"{', '.join(SCORES)}")
        judged = any(name == "judge" for name, _ in self.weights)
        if judged:
            if not self.question:
                raise AutoloomError("the judge score needs a question (--question) "
                                    "with {text} where the passage goes")
            if self.question.count("{text}") != 1:
                raise AutoloomError("the judge question must hold {text} exactly once "
                                    f"(where the passage goes), got {self.question!r:.60}")
        elif self.question is not None:
            raise AutoloomError("a question is only asked with the judge score "
                                "(--score judge, or judge in --mix)")
        return self


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``logprob=0.2,judge=1`` as ((name, weight), ...); AutoloomError naming a bad part."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, raw = part.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise AutoloomError(f"--mix: expected NAME=WEIGHT, got {part.strip()!r:.40}")
        if name not in SCORES:
            raise AutoloomError(f"--mix: unknown score {name!r:.40}; expected one of "
                                f"{', '.join(SCORES)}")
        if name in out:
            raise AutoloomError(f"--mix: {name} is given twice")
        try:
            weight = float(raw)
        except ValueError:
            raise AutoloomError(f"--mix: the weight of {name} is not a number: "
                                f"{raw.strip()!r:.40}") from None
        out[name] = weight
    return tuple(out.items())


# ------------------------------------------------------------------ scores
class Judge:
    """Asks the predictor a yes/no question about a passage, on a scratch tree whose node ids
    (``~judge``) cannot clash with a session's in the predictor's KV cache; the question's
    text before ``{text}`` is cached once for every passage."""

    def __init__(self, pred: Predictor, question: str) -> None:
        self.pred = pred
        self.prefix, _, rest = question.partition("{text}")
        self.suffix = rest + ANSWER_CUE
        self.yes = pred.tokenize(YES)
        self.no = pred.tokenize(NO)
        if not self.yes or not self.no:
            raise AutoloomError(f"{pred.model_id} cannot tokenise {YES!r} and {NO!r}")

    def prompt(self, text: str) -> str:
        return self.prefix + text + self.suffix

    def score(self, text: str) -> float:
        """log P(" yes") - log P(" no") after the question about ``text``."""
        if self.prefix:
            scratch = Tree(Node(id="~judge", text=self.prefix, origin="prompt"),
                           model=self.pred.model_id)
            with scratch.transaction("judge"):
                scratch.add_child("~judge", Node(id="~judge:text", text=text + self.suffix,
                                                 origin="typed"))
        else:
            scratch = Tree(Node(id="~judge:text", text=text + self.suffix, origin="prompt"),
                           model=self.pred.model_id)
        return (self._logprob(scratch, self.yes) - self._logprob(scratch, self.no))

    def _logprob(self, scratch: Tree, ids: list[int]) -> float:
        seg = self.pred.score_tokens(scratch, "~judge:text", ids)
        seg.handle = None  # nothing to adopt: the scratch tree is dropped
        return float(sum(lp for lp in seg.token_logprobs))


@dataclass(slots=True)
class _Scored:
    """What the run knows of a node: its depth below the start, the log-probability and
    tokens of the text grown from the start to it, that text, and its score."""

    depth: int
    logprob: float
    tokens: int
    text: str
    value: float = 0.0
    noisy: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    noise: float = 0.0


@dataclass(slots=True)
class Expansion:
    """One expansion: the node expanded, its score when chosen, the children it got."""

    step: int
    parent: str
    score: float
    children: list[str]


@dataclass(slots=True)
class Result:
    run: str
    """The run's name (its tag is ``autoloom:RUN``)."""
    seed: int
    made: list[str] = field(default_factory=list)
    best: str | None = None
    """The leaf with the best score (no noise), None when nothing was made."""
    best_score: float | None = None
    stopped: str = "budget"
    """``budget`` (spent), ``done`` (nothing left to expand), ``cancelled`` or ``stale`` (the
    tree changed under the run)."""
    expansions: list[Expansion] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    """Each made node's score (no noise)."""
    ranked: dict[str, float] = field(default_factory=dict)
    """Each made node's score as the strategy ranked it (noise added)."""


def _gumbel(seed: int, node_seed: int | None, scale: float) -> float:
    if not scale:
        return 0.0
    u = random.Random(f"autoloom:{seed}:{node_seed}").random()
    return -scale * math.log(-math.log(max(u, 1e-300)))


def next_run(tree: Tree) -> str:
    """The next run's name: one more than the highest ``autoloom:N`` tag in the tree."""
    top = 0
    with tree.lock:
        for node in tree.nodes():
            for tag in node.tags:
                if tag.startswith(TAG) and tag[len(TAG):].isdigit():
                    top = max(top, int(tag[len(TAG):]))
    return str(top + 1)


# ------------------------------------------------------------------ the run
class _Run:
    def __init__(self, tree: Tree, pred: Predictor, start: str, plan: Plan, sampler: Sampler,
                 cancel: threading.Event | None, on_progress: OnProgress | None,
                 on_main: OnMain | None) -> None:
        self.tree, self.pred, self.start, self.plan = tree, pred, start, plan
        self.sampler = sampler
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        self.on_main: OnMain = on_main or (lambda fn: fn())
        self.judge = Judge(pred, plan.question) if plan.question is not None else None
        seed = plan.seed if plan.seed is not None else grow.new_seed()
        self.result = Result(next_run(tree), seed)
        self.info: dict[str, _Scored] = {start: _Scored(0, 0.0, 0, "")}
        self.order = 0

    @property
    def made(self) -> int:
        return len(self.result.made)

    @property
    def left(self) -> int:
        return self.plan.budget - self.made

    def stopping(self) -> bool:
        if self.cancel.is_set():
            self.result.stopped = "cancelled"
            return True
        return self.left <= 0

    def score(self, parent: str, seg: Segment) -> _Scored:
        p = self.info[parent]
        s = _Scored(p.depth + 1, p.logprob + float(sum(seg.token_logprobs)),
                    p.tokens + len(seg.token_ids), p.text + seg.text)
        for name, weight in self.plan.weights:
            if name == "logprob":
                v = s.logprob
            elif name == "mean-logprob":
                v = s.logprob / s.tokens if s.tokens else 0.0
            else:
                assert self.judge is not None
                v = self.judge.score(s.text)
            s.components[name] = round(v, 5)
            s.value += weight * v
        s.value = round(s.value, 5)
        s.noise = round(_gumbel(self.result.seed, seg.seed, self.plan.noise), 5)
        s.noisy = s.value + s.noise
        return s

    def expand(self, parent: str) -> list[str]:
        """Phase one (sample, score) here; phase two through ``on_main``."""
        n = min(self.plan.width, self.left)
        growth = grow.sample(self.tree, self.pred, parent, self.sampler.with_(n=n),
                             self.result.seed + self.made, cancel=self.cancel)
        scored = [self.score(parent, seg) for seg in growth.segments]
        step = len(self.result.expansions)
        kids: list[str] = self.on_main(lambda: self._attach(growth, scored, step))
        self.result.expansions.append(
            Expansion(step, parent, self.info[parent].noisy, kids))
        best = self.result.best_score
        for kid, s in zip(kids, scored, strict=True):
            self.info[kid] = s
            self.result.made.append(kid)
            self.result.scores[kid] = s.value
            self.result.ranked[kid] = s.noisy
            best = s.value if best is None else max(best, s.value)
        self.result.best_score = best
        if self.on_progress is not None:
            self.on_progress(self.made, self.plan.budget, best)
        return kids

    def _attach(self, growth: grow.Growth, scored: list[_Scored], step: int) -> list[str]:
        plan = self.plan
        nodes = grow.attach(self.tree, growth, select=False)
        for node, s in zip(nodes, scored, strict=True):
            record = {
                "run": self.result.run, "strategy": plan.strategy, "score": plan.score_name,
                "weights": dict(plan.weights), "value": s.value, "components": s.components,
                "noise": s.noise, "question": plan.question, "seed": self.result.seed,
                "step": step, "width": plan.width, "depth": plan.max_depth,
                "budget": plan.budget,
            }
            self.tree.update(node.id, tags=[*node.tags, TAG + self.result.run],
                             foreign={**node.foreign, FIELD: record})
        grow.adopt(self.tree, self.pred, nodes, growth)
        return [n.id for n in nodes]

    def openable(self, nid: str) -> bool:
        d = self.plan.max_depth
        return d is None or self.info[nid].depth < d

    # -------------------------------------------------------------- strategies
    def best_first(self) -> None:
        heap = [(-0.0, 0, self.start)]
        count = 1
        while heap:
            if self.stopping():
                return
            _, _, nid = heapq.heappop(heap)
            for kid in self.expand(nid):
                if self.openable(kid):
                    heapq.heappush(heap, (-self.info[kid].noisy, count, kid))
                    count += 1
        self.result.stopped = "done"

    def beam(self) -> None:
        beam = [self.start]
        for _ in range(self.plan.max_depth or DEFAULT_DEPTH):
            candidates: list[str] = []
            for nid in beam:
                if self.stopping():
                    return
                candidates += self.expand(nid)
            ranked = sorted(range(len(candidates)),
                            key=lambda i: (-self.info[candidates[i]].noisy, i))
            beam = [candidates[i] for i in ranked[: self.plan.width]]
            if not beam:
                break
        self.result.stopped = "done"

    def sample(self) -> None:
        level = [self.start]
        for _ in range(self.plan.max_depth or DEFAULT_DEPTH):
            nxt: list[str] = []
            for nid in level:
                if self.stopping():
                    return
                nxt += self.expand(nid)
            level = nxt
        self.result.stopped = "done"

    def finish(self) -> None:
        r = self.result
        if self.cancel.is_set():
            r.stopped = "cancelled"
        expanded = {e.parent for e in r.expansions if e.children}
        leaves = [(r.scores[n], -i, n) for i, n in enumerate(r.made) if n not in expanded]
        if leaves:
            r.best_score, _, r.best = max(leaves)  # ties: the first made


def run(tree: Tree, pred: Predictor, node_id: str, plan: Plan, sampler: Sampler, *,
        cancel: threading.Event | None = None, on_progress: OnProgress | None = None,
        on_main: OnMain | None = None) -> Result:
    """Run an autoloom search from ``node_id`` (see the module's docstring); one undo step.

    Bad input raises :class:`AutoloomError` before anything is grown.
    """
    plan = plan.validated()
    try:
        sampler = sampler.with_(n=plan.width).validated()
    except ValueError as exc:
        raise AutoloomError(str(exc)) from None
    tree.node(node_id)
    r = _Run(tree, pred, node_id, plan, sampler, cancel, on_progress, on_main)
    if on_progress is not None:
        on_progress(0, plan.budget, None)
    with tree.undo_group("autoloom"):
        try:
            getattr(r, plan.strategy.replace("-", "_"))()
        except grow.StaleError:
            r.result.stopped = "stale"
    r.finish()
    return r.result
