"""The footer: Textual's, rebuilt only when the keys it shows change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from textual.screen import Screen
from textual.widgets import Footer

from loomtui.ui import compat


class _Shown(NamedTuple):
    key: str
    action: str
    description: str
    enabled: bool
    tooltip: str


class KeyFooter(Footer):
    """Textual's ``Footer`` rebuilds all its keys (about 20 widgets, then a layout of the whole
    screen: 30-60 ms) whenever the screen's bindings are refreshed, which the loom screen does
    after every edit to update undo and redo. This one rebuilds only when a shown key, its
    description or its tooltip changed; a key that only became enabled or disabled (esc while
    the model samples, undo after the first edit) is dimmed or lit in place, with no layout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple[_Shown, ...] | None = None
        self.rebuilds = 0

    def bindings_changed(self, screen: Screen[Any]) -> None:
        shown = tuple(_Shown(b.key, b.action, b.description, enabled, tooltip)
                      for _, b, enabled, tooltip in screen.active_bindings.values() if b.show)
        if shown == self._shown:
            return
        if not (screen.app.app_focus and self.is_attached and screen is self.screen):
            super().bindings_changed(screen)  # Textual waits for focus, or ignores it
            return
        old = self._shown
        if old is not None and [s._replace(enabled=True) for s in old] == [
                s._replace(enabled=True) for s in shown] and compat.set_footer_keys_enabled(
                self, _first_per_action(s for s, o in zip(shown, old, strict=True) if s != o)):
            self._shown = shown
            return
        self._shown = shown  # a rebuild is scheduled now
        self.rebuilds += 1
        super().bindings_changed(screen)


def _first_per_action(changed: Iterable[_Shown]) -> dict[str, bool]:
    """Each changed action's new state, from its first binding (the one the footer shows)."""
    out: dict[str, bool] = {}
    for s in changed:
        out.setdefault(s.action, s.enabled)
    return out
