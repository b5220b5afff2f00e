"""The screen shown while the session given at launch is read (after the first frame)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, LoadingIndicator, Static

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
    """"Opening PATH (SIZE)…" with a spinner; the App replaces it with the loom."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="opening-box"):
            yield Static(f"opening {short(inline(str(self.path)), 60)}{_size(self.path)}…",
                         id="opening-text", markup=False)
            yield LoadingIndicator()
        yield Footer()
