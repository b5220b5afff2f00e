"""The predictor panel: the next-token distribution (or a position's alternatives)."""

from __future__ import annotations

import math
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.css.scalar import Scalar
from textual.geometry import Offset, Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from loomtui.core.node import Choices, Distribution
from loomtui.core.text import inline, short, terminal_safe, visible
from loomtui.ui import compat
from loomtui.ui.format import bar, percent
from loomtui.ui.predictors import name_of
from loomtui.ui.widgets.rows import changed_rows, refresh_rows

BAR_WIDTH = 10
TOKEN_WIDTH = 12


Row = tuple[tuple[str, Style], ...]
"""A ranked row: its runs of text, each with its style."""

RANK = Style(dim=True)
TOKEN = Style(bold=True)
CURRENT = Style(bold=True, underline=True)
BAR = Style(color="#56b6c2")
HIGHLIGHT = Style(reverse=True)
PLAIN = Style()


class TokenList(ScrollView, can_focus=True):
    """The ranked rows, drawn line by line from pre-built styled runs. It is redrawn on every
    selection, so it must be cheap: an ``OptionList`` rebuilt 20 options and cost a third of a
    keypress, and one ``Static`` laying out 20 ``Content`` rows still cost 12 ms.

    up/down move the highlight, enter or a click picks a row.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("enter", "pick", "Pick", show=False, tooltip="Add the highlighted token"),
    ]

    class Chosen(Message):
        def __init__(self, rank: int) -> None:
            super().__init__()
            self.rank = rank

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rows: list[Row] = []
        self.highlighted = 0
        self._frame: tuple[Offset, int, Style, bool] = (Offset(), 0, Style(), False)

    def set_rows(self, rows: list[Row]) -> None:
        """Show these rows from the top, repainting only those that changed."""
        old, top, highlighted = self.rows, self.scroll_offset.y, self.highlighted
        self.rows = rows
        self.highlighted = 0
        size = Size(0, len(rows))  # rows are cut at the panel's width, never scrolled across
        laid_out = compat.resize_scroll_view(self, size)
        self.scroll_to(y=0, animate=False, immediate=True)
        if laid_out or top != 0:
            self.refresh()
            return
        changed = changed_rows(old, rows, 0, self.scrollable_content_region.height,
                               lambda a, b: a == b)
        refresh_rows(self, [*changed, highlighted, 0] if self.has_focus else changed)

    def plain(self) -> list[str]:
        return ["".join(text for text, _ in row) for row in self.rows]

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = (self.scroll_offset, self.size.width, self.rich_style,
                       self.has_focus)  # once per frame: each costs more than a row
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        (scroll_x, scroll_y), width, base, focused = self._frame
        index = scroll_y + y
        if index >= len(self.rows):
            return Strip.blank(width, base)
        extra = HIGHLIGHT if index == self.highlighted and focused else None
        segments = [Segment(text, base + style if extra is None else base + style + extra)
                    for text, style in self.rows[index]]
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_move(self, step: int) -> None:
        if self.rows:
            self.highlighted = max(0, min(len(self.rows) - 1, self.highlighted + step))
            self.refresh()
            top, height = self.scroll_offset.y, self.scrollable_content_region.height
            if self.highlighted < top:
                self.scroll_to(y=self.highlighted, animate=False)
            elif height and self.highlighted >= top + height:
                self.scroll_to(y=self.highlighted - height + 1, animate=False)

    def action_pick(self) -> None:
        if self.rows:
            self.post_message(self.Chosen(self.highlighted + 1))

    def on_click(self, event: events.Click) -> None:
        row = event.y + self.scroll_offset.y
        if 0 <= row < len(self.rows):
            self.highlighted = row
            self.refresh()
            self.post_message(self.Chosen(row + 1))


class DistributionPanel(Vertical):
    """Top tokens with bars and percentages; entropy and mass underneath."""

    class Picked(Message):
        """The user chose a row (enter or click)."""

        def __init__(self, rank: int) -> None:
            super().__init__()
            self.rank = rank

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.choices: Choices = Choices()
        self.mode = "empty"

    def compose(self) -> ComposeResult:
        yield Static("", id="dist-title")
        yield TokenList(id="dist-list")
        yield Static("", id="dist-stats")

    def _fill(self, title: str, choices: Choices, stats: str, current: int | None = None) -> None:
        self.choices = choices
        self.query_one("#dist-title", Static).update(Content(inline(title)), layout=False)
        self._stats_height(None)
        self.query_one("#dist-stats", Static).update(Content(terminal_safe(stats)), layout=False)
        options: list[Row] = []
        for rank, (tid, tok, lp) in enumerate(choices, 1):
            shown = visible(tok)
            if len(shown) > TOKEN_WIDTH:
                shown = shown[: TOKEN_WIDTH - 1] + "…"
            options.append(((f"{rank:>2} ", RANK),
                            (shown.ljust(TOKEN_WIDTH), CURRENT if tid == current else TOKEN),
                            (f" {percent(lp)} ", PLAIN), (bar(math.exp(lp), BAR_WIDTH), BAR)))
        self.query_one("#dist-list", TokenList).set_rows(options)

    def _stats_height(self, lines: int | None) -> None:
        """Set the stats' height only when it changes: setting it, even to the same value,
        lays the whole screen out again (a third of a navigation key's time)."""
        stats = self.query_one("#dist-stats", Static)
        want = None if lines is None else Scalar.from_number(lines)
        if stats.styles.inline.height != want:  # the inline value (None: the stylesheet's)
            stats.styles.height = lines

    def show_distribution(self, node_label: str, dist: Distribution) -> None:
        self.mode = "distribution"
        model = f"model {short(name_of(dist.model), 30)}" if dist.model else ""
        partial = dist.partial or dist.entropy is None
        if partial:
            # only the top entries are known (an engine's top-k): the entropy of the whole
            # distribution is unknown, and what the list leaves out is the remaining mass
            rest = max(0.0, 1.0 - dist.mass)
            stats = (f"top-{len(dist.top)} only\nremaining mass {100 * rest:.1f}%\n"
                     "entropy unknown" + (f"\n{model}" if model else ""))
        else:
            stats = (f"entropy {dist.entropy:.2f} nats · top-{len(dist.top)} mass "
                     f"{100 * dist.mass:.1f}%" + (f"\n{model}" if model else ""))
        self._fill(f"Next token after {node_label}", dist.top, stats)
        if partial:  # its facts each get a line (the panel is 24 wide at 80 columns)
            self._stats_height(4 if model else 3)

    def show_alternatives(self, node_label: str, index: int, token: str, choices: Choices,
                          token_id: int | None, *, on_demand: bool = False) -> None:
        self.mode = "alternatives"
        title = f"At token {index} of {node_label}: {visible(token)}"
        stats = "1-9 / enter: branch here" if len(choices) else "no alternatives stored here"
        stats += (f"\ntop {len(choices)}, computed on demand" if on_demand
                  else "\n+: more alternatives here")
        self._fill(title, choices, stats, token_id)

    def show_message(self, title: str, message: str) -> None:
        self.mode = "message"
        self.choices = Choices()
        self._stats_height(None)
        self.query_one("#dist-title", Static).update(Content(inline(title)), layout=False)
        self.query_one("#dist-stats", Static).update(Content(terminal_safe(message)),
                                                     layout=False)
        self.query_one("#dist-list", TokenList).set_rows([])

    def stats(self) -> str:
        """The lines under the rows as plain text (for tests)."""
        content = self.query_one("#dist-stats", Static).content
        return content.plain if isinstance(content, Content) else str(content)

    def rows(self) -> list[str]:
        """The rows as plain text (for tests)."""
        return self.query_one("#dist-list", TokenList).plain()

    def on_token_list_chosen(self, event: TokenList.Chosen) -> None:
        event.stop()
        self.post_message(self.Picked(event.rank))
