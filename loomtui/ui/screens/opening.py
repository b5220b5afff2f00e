"""The screen shown while the session given at launch is read (after the first frame)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from loomtui.core.text import inline, short


def _size(path: Path) -> str:
    try:
        n = float(path.stat().st_size)
    except OSError:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f" ({n:.0f} {unit})" if unit == "bytes" else f" ({n:.1f} {unit})"
        n /= 1024
    return ""


class OpeningScreen(Screen[None]):
    """"Opening PATH (SIZE)… N s"; the App replaces it with the loom. No spinner: reading a
    session is Python work that needs the GIL, and an animation drawn 20 times a second took
    a third of it (a 40,000-node file: 8 s to open against 4.7 s)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.seconds = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="opening-box"):
            yield Static(self._text(), id="opening-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def _text(self) -> str:
        after = f" {self.seconds} s" if self.seconds else ""
        return f"opening {short(inline(str(self.path)), 60)}{_size(self.path)}…{after}"

    def _tick(self) -> None:
        self.seconds += 1
        self.query_one("#opening-text", Static).update(self._text())
