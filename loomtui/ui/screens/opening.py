"""The screen shown while the session given at launch is read (after the first frame)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from loomtui.core.text import inline, short
from loomtui.ui.format import file_size


class OpeningScreen(Screen[None]):
    """"Opening PATH (SIZE)… N s"; the App replaces it with the loom. No spinner: reading a
    session is Python work that needs the GIL, and an animation drawn 20 times a second took
    a third of it (a 40,000-node file: 8 s to open against 4.7 s)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.seconds = 0
        try:  # once: the file does not change while it is read
            self.size_text = f" ({file_size(path.stat().st_size)})"
        except OSError:
            self.size_text = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="opening-box"):
            yield Static(self._text(), id="opening-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def _text(self) -> str:
        after = f" {self.seconds} s" if self.seconds else ""
        return f"opening {short(inline(str(self.path)), 60)}{self.size_text}…{after}"

    def _tick(self) -> None:
        self.seconds += 1
        self.query_one("#opening-text", Static).update(self._text())
