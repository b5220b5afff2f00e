"""Command palette entries for predictors: switch to a loaded one, load a listed one, or
connect to the engine URL typed into the palette."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from loomtui.core.errors import ModelError
from loomtui.core.text import inline, short


class PredictorCommands(Provider):
    """``Use predictor: NAME`` for each loaded or loadable predictor (names and details are
    escaped: the palette parses its hits as markup)."""

    def _commands(self) -> list[tuple[str, Callable[[], None], str]]:
        from loomtui.ui.predictors import entries

        app: Any = self.app
        if not hasattr(app, "use_predictor"):
            return []
        try:
            items = entries(app.predictors, app.pred)
        except ModelError:
            return []
        out: list[tuple[str, Callable[[], None], str]] = []
        for e in items:
            if e.error or (e.index is not None and app.predictors[e.index] is app.pred):
                continue
            text = escape(f"Use predictor: {inline(e.text)}")
            if e.index is not None:
                out.append((text, partial(app.use_predictor, app.predictors[e.index]),
                            "Switch to this loaded predictor"))
            elif e.name is not None:
                out.append((text, partial(app.add_predictor, e.name),
                            escape(f"Load it ({inline(e.detail)}) and make it the active "
                                   "predictor")))
        return out

    async def discover(self) -> Hits:
        for text, run, help_ in self._commands():
            yield DiscoveryHit(text, run, text=text, help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, run, help_ in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), run, text=text, help=help_)
        app: Any = self.app
        typed = query.strip()
        if "://" in typed and hasattr(app, "add_predictor"):
            text = escape(f"Connect to engine {short(inline(typed), 60)}")
            yield Hit(1.0, text, partial(app.add_predictor, typed), text=text,
                      help="Load it as a predictor and make it the active one")
