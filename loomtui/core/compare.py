"""Two predictors' next-token distributions side by side, matched by token text.

Tokenizers differ between models, so tokens are matched by their text. Each side knows only
its top-k: a token outside one side's list has a probability there that is unknown (somewhere
in its remaining mass). The divergences are therefore computed over a partition both sides
know exactly: one cell per token text in *both* lists, and one "other" cell holding each
side's remaining mass. KL and total variation over a coarser partition never exceed the true
ones: the numbers are lower bounds, and say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loomtui.core.node import Distribution, Node

FLOOR = 1e-12
"""Probability given to an empty "other" cell, so KL stays finite."""
NOTE = ("matched by token text over both top-k lists; a token missing from one list and the "
        "rest of each side's mass share one 'other' bucket, so KL and TV are lower bounds")


@dataclass(frozen=True, slots=True)
class Row:
    """One token text: its probability and rank under each side (None where not listed)."""

    text: str
    p_active: float | None
    p_other: float | None
    rank_active: int | None
    rank_other: int | None


@dataclass(frozen=True, slots=True)
class Comparison:
    rows: list[Row]
    """The union of both lists, by the active side's probability, then the other's."""
    shared: int
    """How many token texts both lists hold."""
    other_active: float
    """The active side's mass outside the shared tokens (its "other" bucket)."""
    other_other: float
    kl: float
    """KL(active || other) in nats over the shared tokens plus the "other" bucket."""
    tv: float
    """Total variation over the same cells."""
    model_active: str | None
    model_other: str | None
    note: str = NOTE


def kept_distribution(node: Node, model: str, top_k: int = 20) -> Distribution | None:
    """``model``'s next-token distribution after ``node`` as the node keeps it (its current
    one, or one kept under ``node.scores``), when it needs no recomputing; else None."""
    dist = node.distribution
    if dist is not None and dist.complete_for(model, top_k):
        return dist
    kept = node.scores.get(model)
    dist = kept.distribution if kept is not None else None
    return dist if dist is not None and dist.complete_for(model, top_k) else None


def _by_text(d: Distribution) -> tuple[dict[str, float], dict[str, int]]:
    """Probability and best rank per token text (equal texts, different ids: summed)."""
    probs: dict[str, float] = {}
    ranks: dict[str, int] = {}
    for rank, (_, text, lp) in enumerate(d.top, 1):
        probs[text] = probs.get(text, 0.0) + math.exp(lp)
        ranks.setdefault(text, rank)
    return probs, ranks


def compare(active: Distribution, other: Distribution) -> Comparison:
    """Compare two distributions of the same context (see the module's docstring)."""
    pa, ra = _by_text(active)
    pb, rb = _by_text(other)
    shared = [t for t in pa if t in pb]
    rest_a = max(0.0, 1.0 - sum(pa[t] for t in shared))
    rest_b = max(0.0, 1.0 - sum(pb[t] for t in shared))
    cells = [(pa[t], pb[t]) for t in shared] + [(rest_a, rest_b)]
    kl = 0.0
    for p, q in cells:
        if p > 0:
            kl += p * math.log(p / max(q, FLOOR))
    tv = 0.5 * sum(abs(p - q) for p, q in cells)
    texts = list(dict.fromkeys([*pa, *pb]))
    texts.sort(key=lambda t: (-pa.get(t, -1.0), -pb.get(t, -1.0)))
    rows = [Row(t, pa.get(t), pb.get(t), ra.get(t), rb.get(t)) for t in texts]
    return Comparison(rows, len(shared), rest_a, rest_b, max(kl, 0.0), min(tv, 1.0),
                      active.model, other.model)


def format_comparison(c: Comparison, limit: int = 20) -> list[str]:
    """Terminal-safe lines for the CLI: a table of the top rows, then KL, TV and the note."""
    from loomtui.core.text import short, visible

    def pct(p: float | None) -> str:
        return "     -" if p is None else f"{100 * p:5.1f}%"

    def rank(r: int | None) -> str:
        return "  -" if r is None else f"{r:3d}"

    lines = [f"active: {short(c.model_active or '?', 70)}",
             f"other:  {short(c.model_other or '?', 70)}",
             f"{'token':24s} {'active':>6s} {'rank':>4s}  {'other':>6s} {'rank':>4s}"]
    for row in c.rows[:limit]:
        lines.append(f"{short(visible(row.text), 24):24s} {pct(row.p_active)} "
                     f"{rank(row.rank_active):>4s}  {pct(row.p_other)} {rank(row.rank_other):>4s}")
    lines.append(f"other bucket: active {pct(c.other_active).strip()}, other "
                 f"{pct(c.other_other).strip()}  ({c.shared} shared tokens)")
    lines.append(f"KL(active || other) >= {c.kl:.4f} nats   total variation >= {c.tv:.4f}")
    lines.append(f"({c.note})")
    return lines
