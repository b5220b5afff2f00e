"""The footer: Textual's, rebuilt only when the keys it shows change."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    """Textual's ``Footer`` rebuilds all its keys (about 20 widgets, then a layout of the whole
    screen: 30-60 ms) whenever the screen's bindings are refreshed, which the loom screen does
    after every edit to update undo and redo. This one rebuilds only when a shown key, its
    description, whether it is enabled or its tooltip changed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple[tuple[str, str, bool, str], ...] | None = None
        self.rebuilds = 0

    def bindings_changed(self, screen: Screen[Any]) -> None:
        shown = tuple((b.key, b.description, enabled, tooltip)
                      for _, b, enabled, tooltip in screen.active_bindings.values() if b.show)
        if shown == self._shown:
            return
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._shown = shown  # a rebuild is scheduled now (without focus, Textual waits)
            self.rebuilds += 1
        super().bindings_changed(screen)
