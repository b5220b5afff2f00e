"""The command palette (ctrl+p): every action of the key table, searchable by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from loomtui.ui.keys import APP_ACTIONS, KEYS, Key


def _actions() -> list[tuple[str, str, str]]:
    """(palette text, action string, help) for every action."""
    out: list[tuple[str, str, str]] = []
    for k in KEYS:
        if k.action == "pick_rank":
            out.extend((f"Pick token {r}", f"pick_rank({r})", f"Add the rank-{r} token")
                       for r in range(1, 10))
            continue
        out.append((f"{k.label} ({_key(k)})", k.action, k.help))
    return out


def _key(k: Key) -> str:
    return k.display.split(" ")[0]


class LoomCommands(Provider):
    """Offers every loom action; running one is the same as pressing its key."""

    def _target(self, action: str) -> object:
        """The App for its own actions (files, help, quit), else the loom screen."""
        from loomtui.ui.screens.loom import LoomScreen

        if action.split("(")[0] in APP_ACTIONS:
            return self.app
        return next((s for s in reversed(self.app.screen_stack) if isinstance(s, LoomScreen)),
                    None)

    def _allowed(self, action: str) -> bool:
        target = self._target(action)
        if target is None:
            return False
        return target.check_action(action.split("(")[0], ()) is not False  # type: ignore[attr-defined]

    async def _run(self, action: str) -> None:
        target = self._target(action)
        if target is not None:
            await self.app.run_action(action, target)  # type: ignore[arg-type]

    async def discover(self) -> Hits:
        for text, action, help_ in _actions():
            if not self._allowed(action):
                continue
            yield DiscoveryHit(text, partial(self._run, action), text=text, help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, action, help_ in _actions():
            score = max(matcher.match(text), matcher.match(help_) * 0.8)
            if score > 0 and self._allowed(action):
                yield Hit(score, matcher.highlight(text), partial(self._run, action),
                          text=text, help=help_)
