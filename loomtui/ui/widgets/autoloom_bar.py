"""An autoloom run in the loom screen: its thread worker and its progress bar.

The run (:func:`loomtui.core.autoloom.run`) goes in an exclusive thread worker; each phase two
(attaching the children it grew) runs on the main thread through ``App.call_from_thread``, and
the screen's ``on_attach`` redraws the outline lines it touched. The bar shows nodes made /
budget and the best score so far; ``cancel`` stops the run, and what it grew is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Label, ProgressBar
from textual.worker import Worker, WorkerState

from loomtui.core import autoloom
from loomtui.core.autoloom import Plan, Result
from loomtui.core.node import Sampler
from loomtui.core.tree import Tree


class AutoloomBar(Horizontal):
    """Hidden until a run starts; shows its progress; posts :class:`Finished` at the end."""

    class Finished(Message):
        """The run ended: its result, or the one-line error that stopped it."""

        def __init__(self, result: Result | None, error: BaseException | None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cancel_event: threading.Event | None = None
        self.plan: Plan | None = None
        self.made = 0
        self.best: float | None = None

    def compose(self) -> ComposeResult:
        yield Label("", id="autoloom-label")
        yield ProgressBar(total=1, show_eta=False, id="autoloom-progress")
        yield Label("", id="autoloom-stats")

    @property
    def running(self) -> bool:
        return self.cancel_event is not None

    def start(self, tree: Tree, pred: Any, node_id: str, plan: Plan, sampler: Sampler,
              on_attach: Callable[[list[str]], None]) -> None:
        """Start the run (the caller checked nothing else is growing)."""
        self.cancel_event = threading.Event()
        self.plan = plan
        self.made, self.best = 0, None
        self.display = True
        bar = self.query_one(ProgressBar)
        bar.update(total=plan.budget, progress=0)
        self.query_one("#autoloom-label", Label).update(
            Content(f"autoloom {plan.strategy} "))
        self._stats()
        self._run(tree, pred, node_id, plan, sampler, self.cancel_event, on_attach)

    def cancel(self) -> bool:
        """Stop the run (it ends after the step under way); whether one was running."""
        if self.cancel_event is None:
            return False
        self.cancel_event.set()
        self._stats()
        return True

    def _stats(self) -> None:
        assert self.plan is not None
        best = "-" if self.best is None else f"{self.best:.3f}"
        tail = "stopping…" if self.cancel_event is not None and self.cancel_event.is_set() \
            else "esc cancels (keeps what was grown)"
        self.query_one("#autoloom-stats", Label).update(
            Content(f" {self.made}/{self.plan.budget} nodes · best {best} · {tail}"))

    def _progress(self, made: int, budget: int, best: float | None) -> None:
        self.made, self.best = made, best
        self.query_one(ProgressBar).update(total=budget, progress=made)
        self._stats()

    @work(description="autoloom", thread=True, exclusive=True, group="autoloom",
          exit_on_error=False)
    def _run(self, tree: Tree, pred: Any, node_id: str, plan: Plan, sampler: Sampler,
             cancel: threading.Event, on_attach: Callable[[list[str]], None]) -> Result:
        call = self.app.call_from_thread

        def on_main(fn: Callable[[], Any]) -> Any:
            def step() -> Any:
                kids = fn()
                on_attach(kids)
                return kids
            return call(step)

        def on_progress(made: int, budget: int, best: float | None) -> None:
            call(self._progress, made, budget, best)

        return autoloom.run(tree, pred, node_id, plan, sampler, cancel=cancel,
                            on_progress=on_progress, on_main=on_main)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        event.stop()
        if event.worker.group != "autoloom" or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self.cancel_event = None
        self.display = False
        if event.state == WorkerState.SUCCESS:
            self.post_message(self.Finished(event.worker.result, None))
        else:
            self.post_message(self.Finished(None, event.worker.error or RuntimeError(
                "the run was stopped")))
