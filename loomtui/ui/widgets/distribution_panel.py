"""The predictor panel: the next-token distribution (or a position's alternatives)."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from loomtui.core.node import Choices, Distribution
from loomtui.ui.format import bar, percent, visible

BAR_WIDTH = 10
TOKEN_WIDTH = 12


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
        yield OptionList(id="dist-list")
        yield Static("", id="dist-stats")

    def _fill(self, title: str, choices: Choices, stats: str, current: int | None = None) -> None:
        self.choices = choices
        self.query_one("#dist-title", Static).update(title, layout=False)
        self.query_one("#dist-stats", Static).update(stats, layout=False)
        options = []
        for rank, (tid, tok, lp) in enumerate(choices, 1):
            shown = visible(tok)
            if len(shown) > TOKEN_WIDTH:
                shown = shown[: TOKEN_WIDTH - 1] + "…"
            row = Content.assemble(
                (f"{rank:>2} ", "dim"),
                (shown.ljust(TOKEN_WIDTH), "bold underline" if tid == current else "bold"),
                " ", (bar(math.exp(lp), BAR_WIDTH), "#56b6c2"), f" {percent(lp)}")
            options.append(Option(row, id=f"r{rank}"))
        ol = self.query_one("#dist-list", OptionList)
        ol.set_options(options)
        if options:
            ol.highlighted = 0

    def show_distribution(self, node_label: str, dist: Distribution) -> None:
        self.mode = "distribution"
        ent = "?" if dist.entropy is None else f"{dist.entropy:.2f} nats"
        stats = (f"entropy {ent} · top-{len(dist.top)} mass {100 * dist.mass:.1f}%"
                 + (f"\nmodel {dist.model}" if dist.model else ""))
        self._fill(f"Next token after {node_label}", dist.top, stats)

    def show_alternatives(self, node_label: str, index: int, token: str, choices: Choices,
                          token_id: int | None) -> None:
        self.mode = "alternatives"
        title = f"At token {index} of {node_label}: {visible(token)}"
        stats = "1-9 / enter: branch here with that token" if len(choices) else (
            "no alternatives stored here")
        self._fill(title, choices, stats, token_id)

    def show_message(self, title: str, message: str) -> None:
        self.mode = "message"
        self.choices = Choices()
        self.query_one("#dist-title", Static).update(title, layout=False)
        self.query_one("#dist-stats", Static).update(message, layout=False)
        self.query_one("#dist-list", OptionList).clear_options()

    def rows(self) -> list[str]:
        """The rows as plain text (for tests)."""
        ol = self.query_one("#dist-list", OptionList)
        return [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Picked(int(event.option.id[1:])))
