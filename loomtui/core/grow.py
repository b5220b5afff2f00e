"""Growing the tree with a predictor: new sessions, sampled children, picked and typed tokens.

The CLI and the app both call these, so the tree grows the same way from either.
"""

from __future__ import annotations

import random
import threading
import time

from loomtui.core.errors import TreeError
from loomtui.core.node import Node, Sampler
from loomtui.core.predictor import OnToken, Predictor, Segment
from loomtui.core.tree import Tree


def node_from_segment(tree: Tree, seg: Segment, origin: str, model: str,
                      sampler: Sampler | None = None) -> Node:
    return tree.new_node(
        seg.text, origin, token_ids=seg.token_ids, token_offsets=seg.token_offsets,
        token_logprobs=list(seg.token_logprobs), alternatives=seg.alternatives,
        distribution=seg.distribution, sampler=sampler, seed=seg.seed, model=model,
    )


def _attach(tree: Tree, pred: Predictor, parent: str, seg: Segment, origin: str,
            sampler: Sampler | None = None) -> Node:
    return tree.add_child(parent, node_from_segment(tree, seg, origin, pred.model_id, sampler))


def _outside_transaction(tree: Tree) -> None:
    """Model calls take the predictor's lock and then the tree's, as worker threads do; inside
    a transaction (which holds the tree's lock) that order would be reversed."""
    if tree.in_transaction:
        raise TreeError("the model cannot run inside a tree transaction; grow the tree first")


def _adopt(tree: Tree, pred: Predictor, pairs: list[tuple[Node, Segment]]) -> None:
    """Hand each segment's KV to the predictor under its node: after the transaction, which
    holds the tree's lock (the predictor takes its own lock first, then the tree's)."""
    adopt = getattr(pred, "adopt", None)
    if adopt is not None:
        for node, seg in pairs:
            adopt(tree, node.id, seg)


def new_tree(pred: Predictor, prompt: str, sampler: Sampler | None = None) -> Tree:
    """A tree whose root holds ``prompt``'s tokens (scored) and the distribution after it."""
    if not prompt:
        raise TreeError("the prompt is empty")
    root = Node(id="0", text=prompt, origin="prompt", created=time.time(), model=pred.model_id)
    tree = Tree(root, model=pred.model_id, sampler=sampler)
    ensure_distribution(tree, pred, root.id)  # tokenises and scores the prompt
    tree.history.clear()
    return tree


def ensure_distribution(tree: Tree, pred: Predictor, node_id: str, top_k: int = 20) -> Node:
    """Compute and store ``node_id``'s next-token distribution if it has none (or too few)."""
    _outside_transaction(tree)
    node = tree.node(node_id)
    if node.distribution is None or len(node.distribution.top) < min(top_k, 20) or (
            node.distribution.entropy is None):
        tree.update(node_id, distribution=pred.distribution(tree, node_id, top_k))
    return node


def expand(tree: Tree, pred: Predictor, node_id: str, sampler: Sampler, seed: int | None = None,
           on_token: OnToken | None = None, cancel: threading.Event | None = None,
           ) -> list[Node]:
    """Add ``sampler.n`` sampled children (one undo step); child i has seed ``seed + i``.

    When cancelled, the tokens generated so far are kept as children.
    """
    _outside_transaction(tree)
    sampler = sampler.validated()
    seed = random.randrange(2**31) if seed is None else seed
    segs = pred.sample(tree, node_id, sampler.n, sampler, seed, on_token=on_token, cancel=cancel)
    pairs = []
    with tree.transaction("expand"):
        for seg in segs:
            if not seg.token_ids:
                continue
            pairs.append((_attach(tree, pred, node_id, seg, "sampled", sampler), seg))
    _adopt(tree, pred, pairs)
    return [node for node, _ in pairs]


def pick(tree: Tree, pred: Predictor, node_id: str, *, rank: int | None = None,
         token_text: str | None = None, token_id: int | None = None) -> Node:
    """Add a one-token child: the ``rank``-th most probable token, a token given by its text,
    or by id. The child holds its log-probability and its own distribution."""
    _outside_transaction(tree)
    if rank is not None:
        if rank < 1:
            raise TreeError(f"rank must be 1 or more, got {rank}")
        node = ensure_distribution(tree, pred, node_id, top_k=max(20, rank))
        dist = node.distribution
        assert dist is not None
        if rank > len(dist.top):
            dist = pred.distribution(tree, node_id, rank)
        token_id = dist.top.ids[rank - 1]
    elif token_text is not None:
        ids = pred.tokenize(token_text)
        if len(ids) != 1:
            pieces = " + ".join(repr(pred.token_text(t)) for t in ids) or "nothing"
            raise TreeError(f"{token_text!r} is not one token for this model: it is {pieces}; "
                            "use `type` to add text")
        token_id = ids[0]
    if token_id is None:
        raise TreeError("pick needs a rank, a token text or a token id")
    seg = pred.score_tokens(tree, node_id, [token_id])
    with tree.transaction("pick"):
        child = _attach(tree, pred, node_id, seg, "picked")
    _adopt(tree, pred, [(child, seg)])
    return child


def type_text(tree: Tree, pred: Predictor, node_id: str, text: str) -> Node:
    """Add typed text as a child, tokenised as a continuation and scored token by token."""
    _outside_transaction(tree)
    if not text:
        raise TreeError("there is no text to add")
    seg = pred.score(tree, node_id, text)
    with tree.transaction("type"):
        child = _attach(tree, pred, node_id, seg, "typed")
    _adopt(tree, pred, [(child, seg)])
    return child


def rescore(tree: Tree, pred: Predictor, node_id: str) -> Node:
    """Score an untokenised node (imported, edited) and its path with ``pred``."""
    ensure_distribution(tree, pred, node_id)
    return tree.node(node_id)
