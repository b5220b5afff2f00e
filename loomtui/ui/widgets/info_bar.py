"""Facts about the selected node: origin, sampler, seed, log-probabilities, note."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from loomtui.core.text import inline, short
from loomtui.core.tree import Tree
from loomtui.ui.format import plural, sampler_summary
from loomtui.ui.path_cache import PathCache
from loomtui.ui.predictors import name_of


def node_info(tree: Tree, cache: PathCache) -> Text:
    node_id = cache.path[-1]
    node = tree.node(node_id)
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f"node {short(node.id, 14)}", style="bold")
    out.append(f" · {inline(node.origin)}")
    if node.bookmarked:
        out.append(" · ★", style="yellow")
    out.append(f" · {node.n_tokens} tok · depth {len(cache.path) - 1}"
               f" · {plural(tree.n_children(node_id), 'child', 'children')}")
    if node.model:
        out.append(f" · {short(inline(name_of(node.model)), 30)}", style="dim")
    samp = sampler_summary(node)
    if samp:
        out.append(f" · {samp}")
    if node.seed is not None:
        out.append(f" · seed {node.seed}")
    out.append("\n")
    lp = node.logprob()
    cum = cache.cum[-1]
    out.append("logprob " + ("?" if lp is None else f"{lp:.3f}"))
    out.append(" · cumulative " + ("?" if cum is None else f"{cum:.3f}"))
    if node.note:
        out.append(f" · note: {inline(node.note)}", style="italic")
    if "stale" in node.tags:
        out.append(" · scores stale (the prompt changed)", style="yellow")
    return out


class InfoBar(Static):
    """Two lines about the selected node."""
