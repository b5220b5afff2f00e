"""A small session built from fixed data (no model, no clock): for snapshots and screenshots."""

from __future__ import annotations

import math
import random
import re

from loomtui.core.node import Alternatives, Choices, Distribution, Node, Sampler
from loomtui.core.tree import Tree

_VOCAB = [" the", " my", " thou", " love", ",", " and", "\n", " of", " to", " a", " is",
          " not", " lord", " sweet", " night", " be", ".", " in", " me", " that", " she",
          " fair", ";", " what"]

_BRANCHES = [
    ("", " is the east, and Juliet is the sun."),
    ("", " through yonder window breaks?\nIt is my lady, O, it is my love!"),
    ("", " is this that doth disturb my sleep?"),
    ("1", "\nArise, fair sun, and kill the envious moon,"),
    ("1", " Who is already sick and pale with grief,"),
    ("2", "\nO, that she knew she were!"),
    ("5", " She speaks, yet she says nothing."),
]
PROMPT = "ROMEO:\nBut, soft! what light"


def _pieces(text: str) -> list[str]:
    return re.findall(r"\n|[ ]?[\w']+|[ ]?[^\w\s]", text)


def _choices(rng: random.Random, k: int, chosen: str | None = None,
             rank: int = 0) -> Choices:
    words = [w for w in rng.sample(_VOCAB, k + 1) if w != chosen][:k]
    if chosen is not None:
        words = [*words[:rank], chosen, *words[rank:]][:k]
    raw = sorted((-rng.expovariate(0.6) for _ in words), reverse=True)
    norm = math.log(sum(math.exp(x) for x in raw) / 0.9)  # the top-k hold 90% of the mass
    lps = [round(x - norm, 5) for x in raw]
    ids: list[int | None] = [
        _VOCAB.index(w) if w in _VOCAB else 900 + i for i, w in enumerate(words)]
    return Choices(ids, words, lps)


def _known(tid: int | None) -> int:
    assert tid is not None  # the demo's tokens all have ids
    return tid


def _node(rng: random.Random, nid: str, text: str, origin: str, created: float) -> Node:
    pieces = _pieces(text)
    offsets, pos = [], 0
    for p in pieces:
        offsets.append(pos)
        pos += len(p)
    ranks = [rng.choice((0, 0, 0, 1, 2, 4)) for _ in pieces]
    alts = [_choices(rng, 5, p, r) for p, r in zip(pieces, ranks, strict=True)]
    top = _choices(rng, 20)
    return Node(
        id=nid, text=text, origin=origin,
        token_ids=[_known(a.ids[r]) for a, r in zip(alts, ranks, strict=True)],
        token_offsets=offsets,
        token_logprobs=[a.logprobs[r] for a, r in zip(alts, ranks, strict=True)],
        alternatives=Alternatives.of(alts),
        distribution=Distribution(top, round(rng.uniform(2, 5), 5),
                                  round(sum(math.exp(lp) for lp in top.logprobs), 5), "bard"),
        sampler=Sampler(temperature=0.9, top_p=0.95, max_tokens=16, n=3)
        if origin == "sampled" else None,
        seed=1000 + len(text) if origin == "sampled" else None, model="bard", created=created,
    )


def demo_tree() -> Tree:
    """Romeo's balcony line with a few branches; every value is fixed."""
    rng = random.Random(7)
    nodes = [_node(rng, "0", PROMPT, "prompt", 0.0)]
    nodes[0].token_logprobs = [None, *(nodes[0].token_logprobs or [])[1:]]
    edges = []
    for i, (parent, text) in enumerate(_BRANCHES, 1):
        origin = "typed" if i == 4 else "sampled"
        nodes.append(_node(rng, str(i), text, origin, float(i)))
        edges.append((parent or "0", str(i)))
    nodes[2].bookmarked = True
    nodes[2].note = "the famous one"
    tree = Tree.from_parts(nodes, edges, "0", model="bard", sampler=Sampler(n=3, max_tokens=16),
                           created=0.0)
    tree.modified = 0.0
    tree.select("4")
    return tree
