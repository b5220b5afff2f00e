"""The branch: the text from the root to the selected node, each token coloured."""

from __future__ import annotations

from functools import lru_cache

from rich.style import Style
from textual.containers import VerticalScroll
from textual.content import Content
from textual.style import Style as TStyle
from textual.widgets import Static

from loomtui.core.tree import Tree
from loomtui.ui.format import token_style
from loomtui.ui.path_cache import PathCache

MAX_CHARS = 2400
"""Only the last this-many characters of a branch are drawn (selection stays fast)."""

SELECTED = Style(bgcolor="#2b3350")
CURSOR = Style(reverse=True, bold=True)
OUTSIDE = Style(dim=True, strike=True)
HIDDEN = Style(dim=True, italic=True)
WINDOW_MARK = Style(color="#ff79c6", bold=True)


def branch_text(tree: Tree, cache: PathCache, mode: str, cursor: int | None,
                window: int | None, max_chars: int = MAX_CHARS) -> tuple[Content, str]:
    """(the styled tail of the branch in ``cache``, a one-line summary of the branch)."""
    path = cache.path
    total = cache.tokens[-1]
    outside = max(0, total - window) if window else 0
    # Walk back from the selected node until enough characters are collected.
    first = len(path) - 1
    while first > 0 and cache.chars[-1] - cache.chars[first - 1] < max_chars:
        first -= 1
    hidden = cache.chars[first - 1] if first else 0
    tok_index = cache.tokens[first - 1] if first else 0
    nodes = [tree.node(n) for n in path[first:]]
    out = _Spans()
    if hidden:
        out.append(f"… {hidden:,} earlier characters\n", style=HIDDEN)
    last = len(nodes) - 1
    run: list[str] = []
    run_style: Style | None = None
    for k, node in enumerate(nodes):
        pieces = node.pieces()
        lps = node.token_logprobs
        alts = node.alternatives if mode == "entropy" else None
        tokenised = node.token_ids is not None and len(pieces) == node.n_tokens
        for j, piece in enumerate(pieces):
            if tokenised and outside and tok_index == outside:
                out.append("".join(run), style=run_style)
                run, run_style = [], None
                out.append("▐window▌", style=WINDOW_MARK)
            style = token_style(mode, lps[j] if tokenised and lps else None,
                                alts[j] if tokenised and alts is not None else None)
            if tokenised and tok_index < outside:
                style = OUTSIDE if style is None else style + OUTSIDE
            if k == last:
                style = SELECTED if style is None else style + SELECTED
                if cursor == j:
                    style += CURSOR
                    if piece.isspace() or not piece:
                        piece = piece.replace(" ", "␣").replace("\n", "⏎\n") or "∅"
            if style == run_style:
                run.append(piece)
            else:
                if run:
                    out.append("".join(run), style=run_style)
                run, run_style = [piece], style
            if tokenised:
                tok_index += 1
    if run:
        out.append("".join(run), style=run_style)
    summary = f"{len(path)} nodes · {total:,} tokens"
    if outside:
        summary += f" · {outside:,} outside the {window:,}-token window"
    return out.content(), summary


@lru_cache(maxsize=512)
def _textual_style(style: Style | None) -> TStyle | None:
    return None if style is None else TStyle.from_rich_style(style)


class _Spans:
    """Collects (text, style) runs and assembles a Textual ``Content`` directly: converting a
    Rich ``Text`` span by span at every redraw was a large share of a keypress."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, TStyle] | str] = []

    def append(self, text: str, style: Style | None = None) -> None:
        ts = _textual_style(style)
        self.parts.append(text if ts is None else (text, ts))

    def content(self) -> Content:
        return Content.assemble(*self.parts)


class BranchView(VerticalScroll, can_focus=False):
    """Scrollable branch text; the app calls :meth:`show` when the selection changes."""

    def compose(self):  # type: ignore[override]
        yield Static(id="branch-text")

    def show(self, text: Content, summary: str) -> None:
        self.border_subtitle = summary
        self.query_one("#branch-text", Static).update(text)
        self.call_after_refresh(self.scroll_end, animate=False)

    def plain(self) -> str:
        """The text shown (for tests)."""
        return str(self.query_one("#branch-text", Static).render())
