"""Export a branch (root to a node) as plain text or Markdown."""

from __future__ import annotations

import math
from typing import Literal

from loomtui.core.tree import Tree

ExportFormat = Literal["text", "markdown"]


def export_branch(tree: Tree, node_id: str, fmt: ExportFormat = "text") -> str:
    """The branch's text; Markdown adds a header, the path's provenance and the model."""
    text = tree.context_text(node_id)
    if fmt == "text":
        return text
    path = tree.path(node_id)
    lines = ["# loomtui branch", ""]
    lp = tree.cumulative_logprob(node_id)
    meta = [f"- node: `{node_id}` (depth {len(path) - 1})"]
    if tree.model:
        meta.append(f"- model: `{tree.model}`")
    n_tokens = sum(tree.node(nid).n_tokens for nid in path[1:])
    if lp is not None and n_tokens:
        mean = -lp / n_tokens  # over 709, exp overflows (a file's log-probabilities can be
        ppl = f"{math.exp(mean):.2f}" if mean < 700 else "over 1e304"  # as low as -1e308)
        meta.append(f"- log-probability of the continuation: {lp:.3f} over {n_tokens} tokens "
                    f"(perplexity {ppl})")
    lines += [*meta, "", "```text", text.replace("```", "`\u200b``"), "```", "", "## Segments", ""]
    for nid in path:
        n = tree.node(nid)
        bits = [n.origin]
        if n.seed is not None:
            bits.append(f"seed {n.seed}")
        seg_lp = n.logprob()
        if seg_lp is not None:
            bits.append(f"logprob {seg_lp:.3f}")
        if n.bookmarked:
            bits.append("bookmarked")
        lines.append(f"- `{nid}` ({', '.join(bits)}): {n.text[:60]!r}")
    return "\n".join(lines) + "\n"
