"""The branch: the text from the root to the selected node, each token coloured."""

from __future__ import annotations

import codecs
from functools import lru_cache
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.content import Content
from textual.geometry import Offset, Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style as TStyle

from loomtui.core.node import Node
from loomtui.core.text import terminal_safe
from loomtui.core.tree import Tree
from loomtui.ui import compat
from loomtui.ui.format import plural, token_style
from loomtui.ui.path_cache import PathCache
from loomtui.ui.widgets.rows import changed_rows, refresh_rows

MAX_CHARS = 2400
"""Only the last this-many characters of a branch are drawn (selection stays fast)."""

START_STEP = 8
"""The branch's text starts at a node whose index on the path is a multiple of this, where
that draws at most a quarter more: moving along a chain keeps the start for several keys, so
the wrapped lines stay the same and only those at the end are drawn again (with the start
one node later at every key, every line was wrapped and drawn again)."""

STRIPS_KEPT = 256
"""Branch lines kept drawn, by their content (a few screens' worth)."""

SELECTED = Style(bgcolor="#2b3350")
CURSOR = Style(reverse=True, bold=True)
OUTSIDE = Style(dim=True, strike=True)
HIDDEN = Style(dim=True, italic=True)
WINDOW_MARK = Style(color="#ff79c6", bold=True)
MATCH = Style(bgcolor="#8a6d00", color="#ffffff", bold=True)
"""A search match's span."""


def branch_text(tree: Tree, cache: PathCache, mode: str, cursor: int | None,
                window: int | None, max_chars: int = MAX_CHARS,
                marks: list[tuple[int, int]] | None = None
                ) -> tuple[Content, str, int | None]:
    """(the styled tail of the branch in ``cache``, a one-line summary of the branch, where
    the token cursor is in the text). ``marks`` are spans (offsets in the branch's text) to
    highlight: the active search's matches."""
    path = cache.path
    total = cache.tokens[-1]
    outside = max(0, total - window) if window else 0
    # Walk back from the selected node until enough characters are collected.
    first = len(path) - 1
    while first > 0 and cache.chars[-1] - cache.chars[first - 1] < max_chars:
        first -= 1
    steady = first - first % START_STEP
    if steady < first and cache.chars[-1] - (cache.chars[steady - 1] if steady else 0) \
            <= max_chars * 5 // 4:
        first = steady
    hidden = cache.chars[first - 1] if first else 0
    tok_index = cache.tokens[first - 1] if first else 0
    nodes = [tree.node(n) for n in path[first:]]
    out = _Spans()
    cursor_at: int | None = None
    if hidden:
        out.append(f"… {hidden:,} earlier characters\n", style=HIDDEN)
    last = len(nodes) - 1
    run: list[str] = []
    run_style: Style | None = None
    decode = _PathDecoder()
    for k, node in enumerate(nodes):
        pieces = decode.pieces(node)
        ranges = _piece_ranges(node, pieces, cache, first + k, marks) if marks else None
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
                    cursor_at = out.length + sum(map(len, run))
                    if piece.isspace() or not piece:
                        piece = piece.replace(" ", "␣").replace("\n", "⏎\n") or "∅"
            parts = [(piece, style)] if ranges is None else _marked(
                piece, style, ranges[j], marks)  # type: ignore[arg-type]
            for piece, style in parts:
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
    summary = f"{plural(len(path), 'node')} · {plural(total, 'token')}"
    if outside:
        summary += f" · {outside:,} outside the {window:,}-token window"
    return out.content(), summary, cursor_at


def _piece_ranges(node: Node, pieces: list[str], cache: PathCache, index: int,
                  marks: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Each piece's span in the branch's text, when a mark touches the node (else None)."""
    start = cache.chars[index - 1] if index else 0
    end = start + len(node.text)
    if not any(a < end and b > start for a, b in marks):
        return None
    offs = node.token_offsets
    if offs and len(offs) == len(pieces):
        ends = [*offs[1:], len(node.text)]
        return [(start + a, start + b) for a, b in zip(offs, ends, strict=True)]
    if len(pieces) == 1:
        return [(start, end)]
    return None


def _marked(piece: str, style: Style | None, span: tuple[int, int],
            marks: list[tuple[int, int]]) -> list[tuple[str, Style | None]]:
    """``piece`` cut where marks begin and end, the marked parts styled :data:`MATCH` (a piece
    drawn with other characters than its text, such as a control made visible, is marked
    whole)."""
    a, b = span
    hits = [(max(a, s), min(b, e)) for s, e in marks if s < b and e > a]
    if not hits:
        return [(piece, style)]
    on = MATCH if style is None else style + MATCH
    if len(piece) != b - a:
        return [(piece, on)]
    out: list[tuple[str, Style | None]] = []
    pos = a
    for s, e in sorted(hits):
        if s > pos:
            out.append((piece[pos - a:s - a], style))
        if e > max(s, pos):
            out.append((piece[max(s, pos) - a:e - a], on))
        pos = max(pos, e)
    if pos < b:
        out.append((piece[pos - a:], style))
    return out


class _PathDecoder:
    """Each token's text along a path, decoded from the path's bytes together: a character
    split across tokens (byte-level tokens, one pick each) belongs to the token that completes
    it, never shown as two replacement characters. Controls are made visible."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.open = False

    def pieces(self, node: Node) -> list[str]:
        if node.token_bytes is not None and len(node.token_bytes) == node.n_tokens:
            self.open = True
            return [terminal_safe(self.decoder.decode(b)) for b in node.token_bytes]
        pieces = node.pieces()
        if self.open:  # a character left unfinished before text known only as text
            self.open = False
            rest = self.decoder.decode(b"", final=True)
            self.decoder.reset()
            if rest:
                pieces = [rest + pieces[0], *pieces[1:]] if pieces else [rest]
        return [terminal_safe(p) for p in pieces]


def _same_line(a: Content, b: Content) -> bool:
    return a.plain == b.plain and a.spans == b.spans


@lru_cache(maxsize=512)
def _textual_style(style: Style | None) -> TStyle | None:
    return None if style is None else TStyle.from_rich_style(style)


class _Spans:
    """Collects (text, style) runs and assembles a Textual ``Content`` directly: converting a
    Rich ``Text`` span by span at every redraw was a large share of a keypress."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, TStyle] | str] = []
        self.length = 0

    def append(self, text: str, style: Style | None = None) -> None:
        self.length += len(text)
        ts = _textual_style(style)
        self.parts.append(text if ts is None else (text, ts))

    def content(self) -> Content:
        return Content.assemble(*self.parts)


class BranchView(ScrollView, can_focus=False):
    """The scrollable branch text; the screen calls :meth:`show` when the selection changes.

    It draws its wrapped lines itself (the line API) and knows its own height, so a new branch
    repaints this panel only. As a ``Static`` in a scroll container, every selection measured
    the text's height and laid the whole screen out twice: more than a third of a key.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.text = Content("")
        self.cursor_at: int | None = None
        self._lines: list[Content] = []
        self._strips: LRUCache[tuple[str, tuple[Any, ...], int], Strip] = LRUCache(STRIPS_KEPT)
        """Lines drawn, by their text and spans: a line that only moved (the panel scrolled,
        a line was added above) is not drawn again."""
        self._width = 0
        self._frame: tuple[Offset, int, Style] = (Offset(), 0, Style())

    def show(self, text: Content, summary: str, cursor_at: int | None = None) -> None:
        """Show the branch; scrolled to its end, or to the token cursor at ``cursor_at``.
        Only the rows that changed are repainted (a sibling's branch shares its start, and a
        short branch leaves most rows blank)."""
        compat.set_border_subtitle(self, Content(summary))
        old, top, width = self._lines, self.scroll_offset.y, self._width
        self.text, self.cursor_at = text, cursor_at
        laid_out = self._wrap()
        self._scroll_into_view()
        if laid_out or width != self._width or top != self.scroll_offset.y:
            self.refresh()
            return
        refresh_rows(self, changed_rows(old, self._lines, top,
                                        self.scrollable_content_region.height, _same_line))

    def _wrap(self) -> bool:
        """Wrap the text at the panel's width; returns whether that lays the panel out."""
        width = self.scrollable_content_region.width
        self._width = width
        self._lines = self.text.wrap(width) if width > 0 and self.text else []
        size = Size(width, len(self._lines))
        return compat.resize_scroll_view(self, size)

    def _scroll_into_view(self, again: bool = True) -> None:
        height = self.scrollable_content_region.height
        if self.cursor_at is None:
            want = max(0, len(self._lines) - height)
        else:
            line, top = self._line_of(self.cursor_at), self.scroll_offset.y
            if top <= line < top + height:
                return
            want = max(0, line - height // 2)
        self.scroll_to(y=want, animate=False, immediate=True)
        if again and self.scroll_offset.y != want:  # a layout is pending (a scrollbar came)
            self.call_after_refresh(self._scroll_into_view, False)

    def _line_of(self, offset: int) -> int:
        """The wrapped line holding the character at ``offset``."""
        return max(0, len(self.text[:offset].wrap(self._width)) - 1) if self._width else 0

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._wrap()
            self._scroll_into_view()
            self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        base = self.rich_style
        if base != self._frame[2]:
            self._strips.clear()  # a new theme: the cached lines have the old colours
        self._frame = (self.scroll_offset, self.size.width, base)  # once per frame
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        (_, scroll_y), width, base = self._frame
        index = scroll_y + y
        if index >= len(self._lines):
            return Strip.blank(width, base)
        line = self._lines[index]
        key = (line.plain, tuple(line.spans), width)
        strip = self._strips.get(key)
        if strip is None:
            segments = Segment.apply_style(line.render_segments(), base)
            strip = Strip(list(segments)).crop_extend(0, width, base)
            self._strips[key] = strip
        return strip

    def plain(self) -> str:
        """The text shown (for tests)."""
        return self.text.plain
