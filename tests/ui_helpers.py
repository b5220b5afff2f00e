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
