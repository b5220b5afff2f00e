"""What the app's Pilot tests share: the terminal size, the loom screen, and waiting for
workers and their messages."""

from __future__ import annotations

import contextlib

from textual.worker import WorkerFailed

from loomtui.ui.app import LoomApp
from loomtui.ui.screens.loom import LoomScreen

SIZE = (120, 36)


def screen(app: LoomApp) -> LoomScreen:
    loom = app.loom_screen
    assert loom is not None
    return loom


async def settle(pilot, rounds: int = 3) -> None:
    """Let workers finish and their messages be handled (a worker that failed fails the
    test)."""
    for _ in range(rounds):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def settle_tolerant(pilot, rounds: int = 3) -> None:
    """As :func:`settle`, where a failed worker is the app's to report (a refused save)."""
    for _ in range(rounds):
        await pilot.pause()
        with contextlib.suppress(WorkerFailed):
            await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def screen_rows(app: LoomApp, *, styled: bool = True) -> list[str]:
    """The screen row by row, each run of text with its style, as the app would paint it now
    (from the widgets' cached lines: a row a partial repaint missed shows here as it was,
    in its text or in its colours)."""
    import html
    import re

    svg = app.export_screenshot()
    styles = dict(re.findall(r"\.(terminal-r\d+) \{ ([^}]*) \}", svg))
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="([^"]*)" x="([0-9.]+)" y="([0-9.]+)"[^>]*>(.*?)</text>',
                         svg):
        text = html.unescape(m.group(4)).replace("\xa0", " ")
        style = styles.get(m.group(1), m.group(1))
        rows.setdefault(float(m.group(3)), []).append(
            (float(m.group(2)), f"[{style}]{text}" if styled else text))
    return ["".join(t for _, t in sorted(row)) for _, row in sorted(rows.items())]


async def repainted_whole(pilot) -> list[str]:
    """:func:`screen_rows` after every widget is repainted from scratch: the rows the app
    keeps drawn (the outline's, the branch's, Textual's line caches) are dropped first, so a
    kept row that went stale shows as a difference."""
    for widget in pilot.app.screen.walk_children():
        forget = getattr(widget, "_repaint_all", None)
        if forget is not None:
            forget()
        for kept in ("_line_cache", "_strips"):
            cache = getattr(widget, kept, None)
            if cache is not None:
                cache.clear()
        widget.refresh()
    await pilot.pause()
    return screen_rows(pilot.app)
