"""The help screen: every key, grouped, from the one key table."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from loomtui.ui.keys import KEYS


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
