"""Autoloom speed: ``loomtui bench grow [--model M] [--threads T]`` (default SmolLM2).

A best-first run makes 64 nodes of 32 tokens (width 4) from a 500-token context through the
tree-wide KV cache; the baseline generates the same nodes one by one from each one's full
context with ``model.generate`` (the context run again for every node), on the same model in
the same process. Prints both times, the ratio (target >= 5x) and the token positions each
side ran through the model.
"""

from __future__ import annotations

import time

import torch

from loomtui.backends import load_predictor
from loomtui.bench.predictor import _context_tree, _generate
from loomtui.core import autoloom, grow
from loomtui.core.node import Sampler

TARGET = 5.0


def main(model: str = "smollm2", threads: int = 1, nodes: int = 64, tokens: int = 32,
         context: int = 500) -> int:
    torch.set_num_threads(threads)
    pred = load_predictor(model, threads=threads)
    ref = load_predictor(model, threads=threads, fast=False)  # transformers' generate
    print(f"model {pred.model_id}  window {pred.context_window}  torch threads "
          f"{torch.get_num_threads()}  device {pred.device}", flush=True)
    sampler = Sampler(temperature=1.0, max_tokens=tokens, n=4)
    ctx = min(context, pred.context_window - tokens * nodes // 4 - 1)
    # Warm up both paths once (allocations, lazy inits).
    warm = _context_tree(pred, 16)
    grow.expand(warm, pred, warm.root_id, sampler.with_(n=2, max_tokens=4), seed=0)
    _generate(ref, warm.root.token_ids or [], 1, sampler.with_(max_tokens=4))

    tree = _context_tree(pred, ctx)
    pred.store.clear()
    r0 = pred.store.stats.tokens_run
    plan = autoloom.Plan("best-first", nodes, width=4, seed=1)
    t = time.perf_counter()
    result = autoloom.run(tree, pred, tree.root_id, plan, sampler)
    ours = time.perf_counter() - t
    ours_pos = pred.store.stats.tokens_run - r0
    made = len(result.made)
    depth = max(autoloom_depth(tree, n, tree.root_id) for n in result.made)
    print(f"ours: best-first, {made} nodes of up to {tokens} tokens from {ctx} tokens of "
          f"context, {len(result.expansions)} expansions, depth {depth}", flush=True)

    base_pos = 0
    t = time.perf_counter()
    for e in result.expansions:
        ids = tree.context_ids(e.parent)
        assert ids is not None
        base_pos += _generate(ref, ids, len(e.children), sampler)
    base = time.perf_counter() - t
    ratio = base / ours
    ok = ratio >= TARGET
    print(f"{'W grow (' + str(ctx) + ' ctx, ' + str(made) + 'x' + str(tokens) + ')':34s} "
          f"baseline {base:8.1f} s  ours {ours:7.1f} s  ratio {ratio:6.1f}x "
          f"(target >= {TARGET:g}x: {'ok' if ok else 'MISSED'})")
    print(f"{'':34s} positions run: baseline {base_pos}, ours {ours_pos}")
    return 0


def autoloom_depth(tree, node_id: str, start: str) -> int:
    return tree.depth(node_id) - tree.depth(start)
