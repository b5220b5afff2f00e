"""Growing the tree with a predictor, in two phases; the CLI and the app both go through here.

Phase one computes and changes no structure, so it is safe on a worker thread:
:func:`sample`, :func:`score_tokens`, :func:`score_text` (and :func:`choose_token`, which
resolves a rank or a token's text to an id) return :class:`~loomtui.core.predictor.Segment`
lists stamped with the context they were computed for. Phase two runs where the tree's
structure is edited (the main thread in the app): :func:`attach` adds the segments as children
in one transaction (one undo step), refusing if the parent's context changed meanwhile, and
:func:`adopt` hands their KV state to a caching predictor after that transaction.

:func:`expand`, :func:`pick` and :func:`type_text` run both phases in a row (the CLI, benches).
:func:`branch_at` branches inside a segment from its stored alternatives (no model needed), and
:func:`pick_stored` adds a token from a stored distribution, before any model has loaded.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from dataclasses import dataclass

from loomtui.core.errors import TreeError
from loomtui.core.node import Alternatives, Choices, Distribution, Node, Sampler, TokenChoice
from loomtui.core.predictor import CachingPredictor, OnToken, Predictor, Segment
from loomtui.core.tree import Tree

MAX_SEED = 2**63
"""Seeds are integers in [0, 2**63); child i of an expansion has seed ``seed + i``."""


class StaleError(TreeError):
    """The node a result was computed for was deleted or its context changed meanwhile."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a phase-one result depends on: the tree object, the node, and its context's text
    as it was (ids repeat across sessions; split, merge and edit change contexts)."""

    tree_id: int
    node_id: str
    context: str

    @staticmethod
    def of(tree: Tree, node_id: str, path: list[str] | None = None) -> Stamp:
        """``path``: the ids from the root to ``node_id`` where the caller knows them (a
        walk to the root of a deep chain costs milliseconds)."""
        with tree.lock:
            return Stamp(id(tree), node_id, tree.context_text(node_id, path))

    def valid(self, tree: Tree) -> bool:
        """Whether a result stamped with this still applies to ``tree`` as it is now."""
        with tree.lock:
            return (id(tree) == self.tree_id and self.node_id in tree
                    and tree.context_text(self.node_id) == self.context)


@dataclass(slots=True)
class Growth:
    """Phase one's result: segments to attach under ``parent`` as ``origin`` children."""

    parent: str
    segments: list[Segment]
    origin: str
    model: str
    stamp: Stamp
    sampler: Sampler | None = None
    cancelled: bool = False


# --------------------------------------------------------------------------- phase one
def _outside_transaction(tree: Tree) -> None:
    """Model calls take the predictor's lock and then the tree's, as worker threads do; inside
    a transaction (which holds the tree's lock) that order would be reversed."""
    if tree.in_transaction:
        raise TreeError("the model cannot run inside a tree transaction; grow the tree first")


def new_seed() -> int:
    return random.randrange(2**31)


def check_seed(seed: int) -> int:
    if not 0 <= seed < MAX_SEED:
        raise TreeError(f"seed must be in 0..2**63-1, got {seed}")
    return seed


def sample(tree: Tree, pred: Predictor, node_id: str, sampler: Sampler,
           seed: int | None = None, on_token: OnToken | None = None,
           cancel: threading.Event | None = None) -> Growth:
    """Sample ``sampler.n`` rollouts after ``node_id``; rollout i has seed ``seed + i``.

    When cancelled, the tokens generated so far are kept (empty rollouts are dropped).
    """
    _outside_transaction(tree)
    sampler = sampler.validated()
    seed = new_seed() if seed is None else check_seed(seed)
    check_seed(seed + sampler.n - 1)
    stamp = Stamp.of(tree, node_id)
    segs = pred.sample(tree, node_id, sampler.n, sampler, seed, on_token=on_token, cancel=cancel)
    return Growth(node_id, [s for s in segs if s.token_ids or s.text], "sampled",
                  pred.model_id, stamp, sampler, bool(cancel is not None and cancel.is_set()))


def ensure_distribution(tree: Tree, pred: Predictor, node_id: str, top_k: int = 20) -> Node:
    """Compute and store ``node_id``'s next-token distribution unless it already has the
    predictor's (full with ``top_k`` entries, or partial when that is all it gives)."""
    _outside_transaction(tree)
    node = tree.node(node_id)
    dist = node.distribution
    if dist is None or not dist.complete_for(pred.model_id, top_k):
        tree.set_distribution(node_id, pred.distribution(tree, node_id, top_k))
    return node


def choose_token(tree: Tree, pred: Predictor, node_id: str, *, rank: int | None = None,
                 token_text: str | None = None, token_id: int | None = None) -> int:
    """The token id a pick means: the ``rank``-th most probable under ``pred``, a token given
    by its text (it must be one token), or an id (checked against the vocabulary)."""
    if rank is not None:
        if rank < 1:
            raise TreeError(f"rank must be 1 or more, got {rank}")
        node = ensure_distribution(tree, pred, node_id, top_k=max(20, rank))
        dist = node.distribution
        assert dist is not None
        if rank > len(dist.top) or dist.model != pred.model_id:
            dist = pred.distribution(tree, node_id, rank)
        if rank > len(dist.top):
            raise TreeError(f"only {len(dist.top)} tokens are known after node {node_id}")
        tid = dist.top.ids[rank - 1]
        if tid is None:
            return choose_token(tree, pred, node_id, token_text=dist.top.texts[rank - 1])
        return tid
    if token_text is not None:
        ids = pred.tokenize(token_text)
        if len(ids) != 1:
            pieces = " + ".join(repr(pred.token_text(t)) for t in ids) or "nothing"
            raise TreeError(f"{token_text!r} is not one token for {pred.model_id}: it is "
                            f"{pieces}; use `type` to add text")
        return ids[0]
    if token_id is None:
        raise TreeError("pick needs a rank, a token text or a token id")
    vocab = getattr(pred, "vocab_size", None)
    if token_id < 0 or (vocab is not None and token_id >= vocab):
        raise TreeError(f"token id {token_id} is outside {pred.model_id}'s vocabulary")
    return token_id


def score_tokens(tree: Tree, pred: Predictor, node_id: str, token_ids: list[int],
                 origin: str = "picked") -> Growth:
    """Score given token ids as a continuation of ``node_id`` (a picked token)."""
    _outside_transaction(tree)
    if not token_ids:
        raise TreeError("there are no tokens to add")
    stamp = Stamp.of(tree, node_id)
    seg = pred.score_tokens(tree, node_id, list(token_ids))
    return Growth(node_id, [seg], origin, pred.model_id, stamp)


def score_text(tree: Tree, pred: Predictor, node_id: str, text: str) -> Growth:
    """Tokenise typed text as a continuation of ``node_id`` and score it token by token."""
    _outside_transaction(tree)
    if not text:
        raise TreeError("there is no text to add")
    stamp = Stamp.of(tree, node_id)
    seg = pred.score(tree, node_id, text)
    return Growth(node_id, [seg], "typed", pred.model_id, stamp)


# --------------------------------------------------------------------------- phase two
def node_from_segment(tree: Tree, seg: Segment, origin: str, model: str | None,
                      sampler: Sampler | None = None) -> Node:
    return tree.new_node(
        seg.text, origin, token_ids=seg.token_ids, token_offsets=seg.token_offsets,
        token_logprobs=None if seg.token_offsets is None else list(seg.token_logprobs),
        alternatives=seg.alternatives,
        distribution=seg.distribution, sampler=sampler, seed=seg.seed, model=model,
        token_bytes=seg.token_bytes,
    )


def attach(tree: Tree, growth: Growth, *, select: bool | None = None) -> list[Node]:
    """Add the growth's segments as children of its parent, as one undo step.

    Raises :class:`StaleError` (nothing added) when the parent was deleted or its context
    changed since phase one. ``select`` (default: for a single picked or typed child) selects
    the new child.
    """
    if not growth.stamp.valid(tree):
        raise StaleError(f"node {growth.parent} was deleted or changed while the model ran; "
                         "nothing was added")
    if select is None:
        select = growth.origin in ("picked", "typed") and len(growth.segments) == 1
    kids: list[Node] = []
    if not growth.segments:
        return kids
    with tree.transaction("expand" if growth.origin == "sampled" else growth.origin[:-2]
                          if growth.origin.endswith("ed") else growth.origin):
        for seg in growth.segments:
            node = node_from_segment(tree, seg, growth.origin, growth.model, growth.sampler)
            kids.append(tree.add_child(growth.parent, node))
        if select:
            tree.select(kids[-1].id)
    return kids


def adopt(tree: Tree, pred: Predictor, nodes: list[Node], growth: Growth) -> None:
    """Hand each segment's state (KV cache) to a caching predictor under its new node. Call it
    after :func:`attach`'s transaction (the predictor takes its own lock first, then the
    tree's); it is only a speed-up, so a node deleted meanwhile is skipped, and a growth
    another model made is not handed over."""
    if not isinstance(pred, CachingPredictor) or pred.model_id != growth.model:
        return  # another model's caches mean nothing to this one
    for node, seg in zip(nodes, growth.segments, strict=False):
        if node.id in tree:
            pred.adopt(tree, node.id, seg)


def grow(tree: Tree, pred: Predictor, growth: Growth) -> list[Node]:
    """Phase two in a row: attach, then adopt."""
    nodes = attach(tree, growth)
    adopt(tree, pred, nodes, growth)
    return nodes


# --------------------------------------------------------------------------- both phases
def new_tree(pred: Predictor, prompt: str, sampler: Sampler | None = None) -> Tree:
    """A tree whose root holds ``prompt``'s tokens (scored) and the distribution after it."""
    if not prompt:
        raise TreeError("the prompt is empty")
    root = Node(id="0", text=prompt, origin="prompt", created=time.time(), model=pred.model_id)
    tree = Tree(root, model=pred.model_id, sampler=sampler)
    ensure_distribution(tree, pred, root.id)  # tokenises and scores the prompt
    tree.history.clear()
    return tree


def expand(tree: Tree, pred: Predictor, node_id: str, sampler: Sampler, seed: int | None = None,
           on_token: OnToken | None = None, cancel: threading.Event | None = None,
           ) -> list[Node]:
    """Add ``sampler.n`` sampled children (one undo step); child i has seed ``seed + i``."""
    return grow(tree, pred, sample(tree, pred, node_id, sampler, seed, on_token, cancel))


def pick(tree: Tree, pred: Predictor, node_id: str, *, rank: int | None = None,
         token_text: str | None = None, token_id: int | None = None) -> Node:
    """Add a one-token child: the ``rank``-th most probable token, a token given by its text,
    or by id. The child holds its log-probability and its own distribution."""
    tid = choose_token(tree, pred, node_id, rank=rank, token_text=token_text, token_id=token_id)
    return grow(tree, pred, score_tokens(tree, pred, node_id, [tid]))[0]


def type_text(tree: Tree, pred: Predictor, node_id: str, text: str) -> Node:
    """Add typed text as a child, tokenised as a continuation and scored token by token."""
    return grow(tree, pred, score_text(tree, pred, node_id, text))[0]


# --------------------------------------------------------------------------- no model
def stored_choice(tree: Tree, node_id: str, rank: int) -> TokenChoice:
    """The ``rank``-th token of ``node_id``'s stored distribution."""
    dist = tree.node(node_id).distribution
    if dist is None:
        raise TreeError(f"node {node_id} has no stored distribution yet")
    if not 1 <= rank <= len(dist.top):
        raise TreeError(f"rank must be in 1..{len(dist.top)} (the tokens stored after node "
                        f"{node_id}), got {rank}")
    return dist.top[rank - 1]


def pick_stored(tree: Tree, node_id: str, rank: int, *, select: bool = True) -> Node:
    """Add the ``rank``-th token of the stored distribution as a child, with no model: its id,
    text and log-probability come from the distribution (and its model). Its own distribution
    is computed when a model next looks at it."""
    tid, text, lp = stored_choice(tree, node_id, rank)
    dist = tree.node(node_id).distribution
    assert dist is not None
    with tree.transaction("pick"):
        child = tree.new_node(
            text, "picked", token_ids=None if tid is None else [tid], token_offsets=[0],
            token_logprobs=[lp],
            alternatives=None if tid is None else Alternatives.of([dist.top.head(20)]),
            model=dist.model)
        tree.add_child(node_id, child)
        if select:
            tree.select(child.id)
    return child


def distribution_at(tree: Tree, pred: Predictor, node_id: str, token_index: int,
                    top_k: int = 100) -> Distribution:
    """Phase one (changes nothing): the predictor's next-token distribution just before token
    ``token_index`` of ``node_id``: every alternative at that position, where the node stores
    only the few that came with the token. The context is a scratch copy of the path whose
    last node is cut before that token (the ancestors keep their ids, so a caching predictor
    reuses their KV)."""
    with tree.lock:
        path = [copy.copy(tree.node(n)) for n in tree.path(node_id)]
    node = path[-1]
    offs = node.token_offsets
    if offs is None or not 0 <= token_index < len(offs):
        raise TreeError(f"node {node_id} has no token {token_index} "
                        f"(it has {0 if offs is None else len(offs)})")
    if token_index == 0:
        if len(path) == 1:
            raise TreeError("nothing comes before the first token of the prompt")
        return pred.distribution(tree, path[-2].id, top_k)
    k, c = token_index, offs[token_index]
    head = Node(
        id=f"\0at:{node_id}:{k}", text=node.text[:c], origin=node.origin, model=node.model,
        token_ids=node.token_ids[:k] if node.token_ids is not None else None,
        token_offsets=offs[:k],
        token_logprobs=node.token_logprobs[:k] if node.token_logprobs else None,
        alternatives=node.alternatives.slice(0, k) if node.alternatives else None,
        token_bytes=node.token_bytes[:k] if node.token_bytes is not None else None)
    for ancestor in path[:-1]:
        ancestor.distribution = None  # a scratch copy: nothing of it is kept
    scratch = Tree(path[0], model=tree.model)
    for parent, child in zip(path[:-1], [*path[1:-1], head], strict=True):
        scratch.add_child(parent.id, child)
    return pred.distribution(scratch, head.id, top_k)


def branch_at(tree: Tree, node_id: str, token_index: int, rank: int,
              choices: Choices | None = None, model: str | None = None) -> Node:
    """Branch inside a segment: split ``node_id`` before token ``token_index`` and add the
    ``rank``-th stored alternative at that position as a sibling of the tail (one undo step).
    At index 0 the alternative becomes a sibling of the node itself. ``choices``: the
    alternatives at that position as computed on demand (:func:`distribution_at`), instead of
    the ones stored with the token, and ``model`` the model that computed them (its token ids:
    the new child is that model's; by default the node's)."""
    node = tree.node(node_id)
    if node.token_offsets is None or (choices is None and node.alternatives is None):
        raise TreeError(f"node {node_id} has no stored alternatives to branch from")
    n = node.n_tokens
    if not 0 <= token_index < n:
        raise TreeError(f"token index must be in 0..{n - 1} for node {node_id}, "
                        f"got {token_index}")
    alts: Choices = choices if choices is not None else node.alternatives[  # type: ignore[index]
        token_index]
    if not 1 <= rank <= len(alts):
        raise TreeError(f"rank must be in 1..{len(alts)} (the alternatives stored at token "
                        f"{token_index} of node {node_id}), got {rank}")
    tid, text, lp = alts[rank - 1]
    here = node.token_ids[token_index] if node.token_ids is not None else None
    if (tid is not None and tid == here) or (tid is None and text == node.pieces()[
            token_index]):
        raise TreeError(f"{text!r} is the token already at that position")
    parent = node_id if token_index > 0 else tree.parent(node_id)
    if parent is None:
        raise TreeError("cannot branch before the first token of the prompt")
    with tree.transaction("branch"):
        if token_index > 0:
            tree.split(node_id, at_token=token_index)
        child = tree.new_node(text, "picked", token_ids=None if tid is None else [tid],
                              token_offsets=[0], token_logprobs=[lp],
                              alternatives=Alternatives.of([alts]),
                              model=model if model is not None else node.model)
        tree.add_child(parent, child)
        tree.select(child.id)
    return child
