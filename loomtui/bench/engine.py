"""Engine benchmark: ``loomtui bench engine --engine URL_OR_PROFILE [--model NAME]``.

Two workloads on a running engine, each timed against the same work sent naively in the same
process (full context, one request per child, one after another, and no prefix shared with
any other request: each naive prompt starts with its own marker, so the engine's prefix cache
cannot help):

- fan-out: 8 children x 32 tokens after a 500-token context;
- a tree: 3 levels of 4 children x 32 tokens, each level under the first child of the last.

Prints the ratio (naive time / loomtui's) and the prompt tokens the engine reports, with the
cached ones where it reports them (vLLM with ``--enable-prompt-tokens-details``).
"""

from __future__ import annotations

import time
from typing import Any

from loomtui.backends import engine_wire as wire
from loomtui.backends.engine import EnginePredictor, connect
from loomtui.backends.engine_config import resolve
from loomtui.core import grow
from loomtui.core.node import Node, Sampler
from loomtui.core.tree import Tree

TEXT = ("Now is the winter of our discontent made glorious summer by this sun of York; "
        "and all the clouds that lour'd upon our house in the deep bosom of the ocean buried. ")
CONTEXT_TOKENS = 500
FAN_OUT = 8
TOKENS = 32
LEVELS = 3
PER_LEVEL = 4


def _context(pred: EnginePredictor) -> str:
    """About 500 tokens of text (exactly, by the engine's tokenizer where it has one)."""
    text = TEXT * (CONTEXT_TOKENS // 20 + 2)
    if pred.has_tokenizer:
        ids = pred.tokenize(text)[:CONTEXT_TOKENS]
        return pred.decode(ids)
    return text[: CONTEXT_TOKENS * 4]


def _naive(pred: EnginePredictor, prompts: list[str], sampler: Sampler) -> dict[str, Any]:
    """One non-streamed request per prompt, one after another; what the engine reported."""
    totals = {"prompt": 0, "cached": 0, "completion": 0}
    for i, prompt in enumerate(prompts):
        body = wire.completion_body(pred.kind, pred.served, prompt, sampler, i,
                                    pred.n_alternatives)
        out = pred.client.post("/completions", body)
        usage = out.get("usage") or {}
        totals["prompt"] += int(usage.get("prompt_tokens") or 0)
        totals["completion"] += int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        totals["cached"] += int(details.get("cached_tokens") or 0) if isinstance(
            details, dict) else 0
    return totals


def _ours(pred: EnginePredictor) -> dict[str, Any]:
    s = pred.stats
    return {"prompt": s.prompt_tokens, "cached": s.cached_tokens,
            "completion": s.completion_tokens}


def _reset(pred: EnginePredictor) -> None:
    s = pred.stats
    s.prompt_tokens = s.cached_tokens = s.completion_tokens = s.requests = 0


def _fmt(t: dict[str, Any]) -> str:
    if not t["prompt"]:
        return "prompt tokens not reported"
    cached = f", {t['cached']} cached" if t["cached"] else ""
    return f"{t['prompt']} prompt tokens{cached}, {t['completion']} generated"


def _report(name: str, ours: float, naive: float, t_ours: dict[str, Any],
            t_naive: dict[str, Any]) -> None:
    print(f"{name}: loomtui {ours:.2f} s, naive {naive:.2f} s, ratio {naive / ours:.2f}x")
    print(f"  loomtui: {_fmt(t_ours)}")
    print(f"  naive:   {_fmt(t_naive)}")


def main(engine: str, model: str | None = None) -> int:
    pred = connect(resolve(engine, model))
    print(f"engine {pred.model_id} ({pred.kind}), concurrency {pred.concurrency}")
    context = _context(pred)
    sampler = Sampler(temperature=1.0, max_tokens=TOKENS, n=FAN_OUT)

    # fan-out
    tree = Tree(Node(id="0", text=context, origin="prompt"), model=pred.model_id)
    pred.distribution(tree, "0", 1)  # warm: the context is in the engine's cache, as in use
    _reset(pred)
    t = time.perf_counter()
    grow.expand(tree, pred, "0", sampler, seed=0)
    ours = time.perf_counter() - t
    t_ours = _ours(pred)
    prompts = [f"[{i}:{time.time_ns()}]\n{context}" for i in range(FAN_OUT)]
    t = time.perf_counter()
    t_naive = _naive(pred, prompts, sampler)
    naive = time.perf_counter() - t
    _report(f"fan-out {FAN_OUT}x{TOKENS} after {CONTEXT_TOKENS} tokens", ours, naive, t_ours,
            t_naive)

    # a tree of 3 levels
    level = sampler.with_(n=PER_LEVEL)
    tree = Tree(Node(id="0", text=context, origin="prompt"), model=pred.model_id)
    _reset(pred)
    parents, node = [], "0"
    t = time.perf_counter()
    for depth in range(LEVELS):
        parents.append(node)
        kids = grow.expand(tree, pred, node, level, seed=depth * PER_LEVEL)
        node = kids[0].id
    ours = time.perf_counter() - t
    t_ours = _ours(pred)
    prompts = [f"[{d}.{i}:{time.time_ns()}]\n{tree.context_text(p)}"
               for d, p in enumerate(parents) for i in range(PER_LEVEL)]
    t = time.perf_counter()
    t_naive = _naive(pred, prompts, level)
    naive = time.perf_counter() - t
    _report(f"tree {LEVELS} levels x {PER_LEVEL} children x {TOKENS}", ours, naive, t_ours,
            t_naive)
    pred.close()
    return 0
