"""The help screen: every key, grouped, from the one key table."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from loomtui.ui.format import ORIGIN_MARK, SCALE_STYLES, UNKNOWN_STYLE
from loomtui.ui.keys import KEYS

ROW_MARKS = [
    *((mark, f"made by: {origin}") for origin, mark in ORIGIN_MARK.items()),
    ("★", "bookmarked (on a node of the row)"),
    ("◆", "holds a match of the active search (a bookmarked row's ★ turns magenta)"),
    ("✎", "has a note"),
    ("42%", "mean probability of the row's first node's tokens"),
    ("·3/7", "the selected node is the 3rd of the row's chain of 7 only-children"),
    ("⋯", "streamed rollout, or rows above the outline's start"),
]
_COLOURS = ("probability ≥ 80% · low entropy · little surprise", "50-80%", "20-50%",
            "5-20%", "below 5% · high entropy · a surprise")


def help_table() -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    table.add_column("keys", style="bold cyan", no_wrap=True)
    table.add_column("action")
    group = None
    for k in KEYS:
        if k.group != group:
            group = k.group
            table.add_row(f"[bold underline]{group}[/]", "")
        table.add_row("1 … 9" if k.action == "pick_rank" else k.display, k.help)
    table.add_row("[bold underline]Everywhere[/]", "")
    table.add_row("ctrl+p", "Command palette: search every action")
    table.add_row("tab", "Move focus between the tree and the distribution")
    table.add_row("enter", "Pick the highlighted token (distribution) / fold a line (tree)")
    table.add_row("ctrl+q", "Quit")
    table.add_row("[bold underline]Tree rows[/]", "")
    for mark, meaning in ROW_MARKS:
        table.add_row(mark, meaning)
    table.add_row("[bold underline]Token colours[/]", "")
    for style, meaning in zip(SCALE_STYLES[::-1], _COLOURS, strict=True):
        table.add_row(Text("████", style=style), meaning)
    table.add_row(Text("████", style=UNKNOWN_STYLE), "not scored (v cycles the colouring)")
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the keys; any of escape, q, F1 or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f1,question_mark", "dismiss", "Close", show=True),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "loomtui keys"
            box.border_subtitle = "esc closes"
            yield Static(help_table())

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
