"""Synthetic trees shaped like real sessions, for benchmarks and tests."""

from __future__ import annotations

import random

from loomtui.core.node import Alternatives, Choices, Distribution, Node, Sampler
from loomtui.core.tree import Tree

_WORDS = [" the", " of", " and", " to", " thou", " love", " king", "\n", ",", " my", " lord",
          ".", " is", " not", " with", " what", " shall", " be", " his", " me", "é", " 'tis"]


def _choices(rng: random.Random, k: int) -> Choices:
    lps = sorted((round(-rng.expovariate(0.5), 5) for _ in range(k)), reverse=True)
    ids = [rng.randrange(8192) for _ in lps]
    known: list[int | None] = list(ids)
    return Choices(known, [_text(i) for i in ids], lps)


def _text(token_id: int) -> str:
    """A token's text: a function of its id, as with a real tokenizer."""
    return _WORDS[token_id % len(_WORDS)] + ("" if token_id < len(_WORDS) else str(token_id)[-1])


def make_node(rng: random.Random, nid: str, tokens: int = 8, top: int = 20, alts: int = 5,
              created: float = 0.0) -> Node:
    pieces = [rng.choice(_WORDS) for _ in range(tokens)]
    offsets, pos = [], 0
    for p in pieces:
        offsets.append(pos)
        pos += len(p)
    return Node(
        id=nid, text="".join(pieces), origin="sampled",
        token_ids=[rng.randrange(8192) for _ in range(tokens)], token_offsets=offsets,
        token_logprobs=[round(-rng.expovariate(0.7), 5) for _ in range(tokens)],
        alternatives=Alternatives.of(_choices(rng, alts) for _ in range(tokens)),
        distribution=Distribution(_choices(rng, top), round(rng.uniform(0, 6), 5),
                                  round(rng.uniform(0.3, 1), 5), "bard"),
        sampler=Sampler(temperature=0.9, top_p=0.95), seed=rng.randrange(2**31),
        model="bard", created=created,
    )


def make_tree(n: int, *, seed: int = 0, branching: int = 4, chain: bool = False) -> Tree:
    """A tree of ``n`` nodes (each 8 tokens, top-20 distribution, top-5 alternatives)."""
    rng = random.Random(seed)
    nodes = [make_node(rng, "0", created=0.0)]
    nodes[0].origin = "prompt"
    edges = []
    for i in range(1, n):
        parent = i - 1 if chain else (i - 1) // branching
        nodes.append(make_node(rng, format(i, "x"), created=float(i)))
        edges.append((nodes[parent].id, nodes[i].id))
    return Tree.from_parts(nodes, edges, "0", model="bard")
