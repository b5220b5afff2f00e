"""The loomtui app: owns the lifecycle (model loading, open, save, quit); the loom itself is
:class:`~loomtui.ui.screens.loom.LoomScreen`, shown after the prompt screen when there is no
session yet.

Saves never block the screen: the session is snapshotted and written by a thread worker
(exclusive, one at a time; see :mod:`loomtui.ui.saver`), 0.3 s after the last change; quit
waits for it. A file another program changed since we loaded or wrote it is never written
over: the user is told and offered to reload it or save as a new file.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import BindingType
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from loomtui.core import completion, recent, session
from loomtui.core.errors import SessionError
from loomtui.core.node import Node
from loomtui.core.session import ConflictError, FileStamp
from loomtui.core.text import inline, short
from loomtui.core.tree import Tree
from loomtui.ui import compat, keys
from loomtui.ui.commands import LoomCommands
from loomtui.ui.format import one_line, plural
from loomtui.ui.predictor_commands import PredictorCommands
from loomtui.ui.predictors import label
from loomtui.ui.saver import Written, write_session
from loomtui.ui.screens.help import HelpScreen
from loomtui.ui.screens.open_file import OpenFile
from loomtui.ui.screens.opening import OpeningScreen
from loomtui.ui.screens.prompt import Choose, PromptScreen, confirm_quit

if TYPE_CHECKING:
    from loomtui.backends.hosted import ModelHost
    from loomtui.ui.screens.loom import LoomScreen

AUTOSAVE_DELAY = 0.3
SETTLE_DELAY = 0.5
"""Seconds after a loom screen appears before what is alive is frozen (see ``_settle``)."""
RELEASE_DELAY = 2.0
"""Seconds after another session was shown before the old one's memory is collected."""
STEP_GAP = 0.002
"""Seconds a background save leaves the GIL free after each step (a step is about 1 ms)."""
BUSY_WINDOW = 0.25
KEYS_YIELD = 0.08
GC_YOUNG = 20_000
"""Allocations between collections of the youngest generation while the app runs (Python's
default is 700). A key on a deep branch makes some 20,000 short-lived objects (its text
wrapped again); at 700 the collector ran 30 times a key, walking whatever was alive at each
moment: 8-13 ms of every such key, and a full collection every few dozen keys. Most of a
key's objects are freed before 20,000 more are made, so they are never walked."""
SWITCH_INTERVAL = 0.001
"""The GIL's switch interval while the app runs (Python's default is 5 ms)."""
"""A model worker waits between steps until this long after the last key (see
:meth:`LoomApp.yield_to_keys`): long enough for a key's frame, short enough that sampling
goes on between keys held down."""
"""A background save pauses while a key was pressed within this many seconds."""


class LoomApp(App[int]):
    """A loom over one session. Construct with a tree and predictor for tests, or let it load
    the model in a worker (``load_model=True``)."""

    CSS_PATH = Path(__file__).with_name("loom.tcss")
    TITLE = "loomtui"
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(app=True)  # type: ignore[assignment]
    COMMANDS = App.COMMANDS | {LoomCommands, PredictorCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        tree: Tree | None = None,
        predictor: Any = None,
        path: str | os.PathLike[str] | None = None,
        *,
        stamp: FileStamp | None = None,
        prompt: str | None = None,
        model: str | None = None,
        engine: str | None = None,
        threads: int | None = None,
        device: str = "auto",
        dtype: str = "float32",
        load_model: bool = False,
        autosave: bool = True,
        autosave_delay: float = 0.0,
        open_path: str | os.PathLike[str] | None = None,
        sessions_dir: str | os.PathLike[str] | None = None,
        host: ModelHost | None = None,
    ) -> None:
        super().__init__()
        compat.break_strip_cycles()
        self.host = host
        """The model process started before the app (``loomtui open``): the model loads
        there. Without one it loads in this process."""
        self.hosted = host is not None
        """Local models chosen later (``P``) also run in processes of their own."""
        self.host_note: str | None = None
        """Why the model process could not be used (said once the model is ready)."""
        self.loom: Tree | None = tree
        self.open_path: Path | None = Path(open_path) if open_path is not None else None
        """A file to open after the first frame (a big session takes seconds to read)."""
        self.sessions_dir = Path(sessions_dir or "sessions")
        """Where new sessions go (the open dialog lists it)."""
        self._remembered: Path | None = None
        self.startup_error: str | None = None
        """Why the file given at launch could not be opened (printed after the app ends)."""
        self.pred: Any = predictor
        self.predictors: list[Any] = [predictor] if predictor is not None else []
        """The loaded predictors, least recently active first (the active one last)."""
        self.adding: str | None = None
        """What the user asked to load as another predictor, while it loads."""
        self._notes_said: set[tuple[str, str]] = set()
        self.opened: list[Any] = []
        """Predictors the user added here (closed when the app ends: an engine's connections)."""
        self.path: Path | None = Path(path) if path is not None else None
        self.file_stamp: FileStamp | None = stamp if stamp is not None or tree is None or (
            self.path is None) else FileStamp.of(self.path)
        """The identity of the file as we loaded or last wrote it (None: no file yet)."""
        self.initial_prompt = prompt
        self.model_name = model
        self.engine = engine
        self.threads = threads
        self.device = device
        self.dtype = dtype
        self.want_model = load_model and predictor is None
        self.model_loading = self.want_model
        self.model_error: str | None = None
        self.autosave = autosave
        self.autosave_delay = autosave_delay
        self.saved_revision = tree.revision if tree is not None else -1
        self.saved_selected = tree.selected if tree is not None else None
        self.saving = False
        self.save_again = False
        self.conflict = False
        """The file changed under us: autosave stops until a reload or a save as."""
        self.quitting = False
        self.last_error: str | None = None
        self.said: list[str] = []
        """The last notifications (not errors), newest last."""
        self.last_saved: Written | None = None
        self._autosave_timer: Timer | None = None
        self._saving_tree: Tree | None = None
        self._pending_save: tuple[Path, bool] | None = None
        """A save as asked for while another save was running: started when it ends."""
        self.last_key = 0.0
        self._announce = False
        """The save under way was asked for (ctrl+s, save as): say when it is done."""

    # ------------------------------------------------------------------ screens
    @property
    def loom_screen(self) -> LoomScreen | None:
        module = sys.modules.get(LOOM_SCREEN)  # not imported yet: there is no loom screen
        if module is not None:
            for screen in reversed(self.screen_stack):
                if isinstance(screen, module.LoomScreen):
                    return screen
        return None

    def on_mount(self) -> None:
        if self.open_path is not None:  # the model loads once the session says which
            self.push_screen(OpeningScreen(self.open_path))
            self.call_after_refresh(self._open, self.open_path)
            return
        if self.want_model:  # after the first frame: importing torch takes seconds
            self.call_after_refresh(self._load_model, self.loom.model if self.loom else None)
        if self.loom is not None:
            self.push_screen(loom_screen_class()(self.loom))
            self.set_timer(SETTLE_DELAY, self._settle)
        elif self.initial_prompt:
            self._new_session(self.initial_prompt)
        else:
            self.push_screen(PromptScreen(), self._prompt_done)
            self.call_after_refresh(self._import_loom_screen)

    def _import_loom_screen(self) -> None:
        """Import the loom screen (0.2 s) in a worker while the prompt is typed."""
        self.run_worker(loom_screen_class, thread=True, group="import", name="import",
                        exit_on_error=False)

    def _prompt_done(self, text: str | None) -> None:
        if text is None:
            self.exit(0)
            return
        self._new_session(text)

    def _new_session(self, prompt: str) -> None:
        model = self.pred.model_id if self.pred is not None else None
        root = Node(id="0", text=prompt, origin="prompt", created=time.time(), model=model)
        if self.path is not None:  # a new file in the sessions directory, made here
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.show_tree(Tree(root, model=model), self.path, None)
        self.saved_revision = -1  # a new session is unsaved until written
        self.schedule_autosave()

    def show_tree(self, tree: Tree, path: Path | None, stamp: FileStamp | None) -> None:
        """Show another tree (new, opened or reloaded) on a fresh loom screen."""
        old = self.loom_screen
        if old is not None:
            old.stop_growing()
        if self.loom is not None and self.loom is not tree:
            self.set_timer(RELEASE_DELAY, self._release_old_trees)
        self.loom = tree
        self.path = path
        self.file_stamp = stamp
        self.conflict = False
        self.saved_revision = tree.revision
        self.saved_selected = tree.selected
        screen = loom_screen_class()(tree)
        if old is not None:
            while self.screen is not old:
                self.pop_screen()
            self.switch_screen(screen)
        elif any(isinstance(s, (PromptScreen, OpeningScreen)) for s in self.screen_stack):
            while not isinstance(self.screen, (PromptScreen, OpeningScreen)):
                self.pop_screen()  # help opened while the session was read
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
        self.set_timer(SETTLE_DELAY, self._settle)
        self._check_model(tree)

    def _settle(self) -> None:
        """Once a loom screen is up (its widgets, the outline's first lines): freeze what is
        alive, as after loading a model, so full collections during keys walk only what keys
        made since (a 10,000-node tree's screen left 37k objects: a 40-150 ms full
        collection every few dozen keys). Waits for a pause in the keys. What is frozen and
        later dropped with reference cycles (outline lines removed, a rebuilt footer) is not
        collected until another session is shown (``_release_old_trees``): a bounded cost,
        since only what existed now is frozen, not what keys make later. Only the young
        generations are collected first (a few ms: a full collection of a big process held
        the event loop for as long as it took, while the model streamed on)."""
        screen = self.loom_screen
        if (time.monotonic() - self.last_key < BUSY_WINDOW or self.saving
                or (screen is not None and screen.generating)):
            self.set_timer(SETTLE_DELAY, self._settle)
            return
        gc.collect(1)
        gc.freeze()

    def _release_old_trees(self) -> None:
        """Free the trees this app showed before. Loading a session freezes what it parsed
        (``gc.freeze``: see ``session.loads``), so a replaced tree's reference cycles would
        never be collected: unfreeze, collect and freeze again, once keys have paused."""
        if time.monotonic() - self.last_key < BUSY_WINDOW or self.saving:
            self.set_timer(RELEASE_DELAY, self._release_old_trees)
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    # ------------------------------------------------------------------ status
    def model_status(self) -> str:
        adding = f" · loading {short(self.adding, 24)}…" if self.adding else ""
        if self.pred is not None:
            more = f" · {len(self.predictors)} predictors (P)" if len(self.predictors) > 1 else ""
            return f"{short(label(self.pred), 32)} · ready{more}{adding}"
        if self.model_loading:
            return "loading model…" + adding
        return "no model" + adding

    def file_status(self) -> str:
        if self.path is None:
            return "no file (W saves as)"
        state = ("file changed on disk: ctrl+r reloads, W saves as" if self.conflict
                 else "saving…" if self.saving else "unsaved changes" if self.dirty
                 else "saved")
        return f"{short(str(self.path), 40)} · {state}" + (
            " · autosave" if self.autosave else "")

    def _status(self) -> None:
        screen = self.loom_screen
        if screen is not None and screen.is_mounted:
            screen.update_status()

    def say(self, message: str, *, severity: str = "information", timeout: float = 3) -> None:
        """A notification whose text is never parsed as markup (the last few are kept)."""
        self.said.append(message)
        del self.said[:-20]
        self.notify(inline(message), severity=severity,  # type: ignore[arg-type]
                    timeout=timeout, markup=False)

    def report(self, what: str, error: str) -> None:
        """Show a one-line error as a notification (never parsed as markup)."""
        self.last_error = error
        self.notify(inline(error), title=f"{what} failed", severity="error", timeout=8,
                    markup=False)

    # ------------------------------------------------------------------ model
    def _load_model(self, made_by: str | None) -> None:
        """Load the predictor in a worker: ``--engine`` (or a configured profile matching the
        engine that made the session), ``--model``, the session's own model where loomtui may
        load it because a file names it (never a URL or a local path), else the default."""
        self.run_worker(lambda: self._load(made_by), thread=True, exclusive=True,
                        group="model", name="load_model", exit_on_error=False)

    def _load(self, made_by: str | None) -> Any:
        _quiet()
        from loomtui.backends import load_predictor
        from loomtui.backends.engine_config import choose, parse_model_id
        from loomtui.backends.models import trusted_session_model

        spec = choose(self.engine, self.model_name, made_by)
        if spec is not None:
            from loomtui.backends.engine import connect

            self._drop_host()  # an engine: the model process has nothing to do
            engine = connect(spec)
            settle_heap()
            return engine
        name = self.model_name or (
            None if parse_model_id(made_by) else trusted_session_model(made_by))
        host = self.host
        if host is not None:
            hosted = host.load_or_none(name, threads=self.threads, device=self.device,
                                       dtype=self.dtype)
            if hosted is not None:
                settle_heap()
                return hosted
            self.host = None
            self.host_note = f"{host.dead}; the model runs in the app instead"
        pred = load_predictor(name, threads=self.threads, device=self.device, dtype=self.dtype)
        settle_heap()
        return pred

    def _drop_host(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            host.close()

    def _model_done(self, pred: Any, error: str | None) -> None:
        self.model_loading = False
        if self.pred is not None:  # the user chose another predictor meanwhile: it stays
            if pred is not None:
                self.predictors.insert(0, pred)
            elif error is not None:
                self.report("model", error)
            self._status()
            return
        self.pred = pred
        if pred is not None:
            self._remember(pred)
        self.model_error = error
        if error is not None:
            self.report("model", error)
        elif self.loom is not None:
            self._check_model(self.loom)
        if self.host_note is not None:
            self.say(self.host_note, severity="warning", timeout=8)
            self.host_note = None
        screen = self.loom_screen
        if screen is not None:
            screen.model_ready(error)
        self.show_notes()
        self.refresh_bindings()

    def _check_model(self, tree: Tree) -> None:
        """Say once when a session was made by another model than the one loaded."""
        if self.pred is None:
            return
        if tree.model is None:
            tree.model = self.pred.model_id
        elif tree.model != self.pred.model_id:
            self.say(f"this session was made by {short(tree.model, 40)}; the loaded model "
                     f"is {short(self.pred.model_id, 40)}: its picks are re-tokenised "
                     f"(start with --model {short(tree.model, 40)} to use that one)",
                     severity="warning", timeout=10)

    # ------------------------------------------------------------------ predictors
    def action_predictors(self) -> None:
        """The chooser: switch to a loaded predictor, or load another (a worker)."""
        from loomtui.ui.predictors import entries
        from loomtui.ui.screens.predictor_chooser import PredictorChooser

        if self.loom is None:  # the session given at launch is still being read
            return
        offered = list(self.predictors)  # the list may change while the chooser is open

        def done(choice: int | str | None) -> None:
            if isinstance(choice, int) and 0 <= choice < len(offered):
                if offered[choice] in self.predictors:
                    self.use_predictor(offered[choice])
            elif isinstance(choice, str):
                self.add_predictor(choice)

        self.push_screen(PredictorChooser(entries(offered, self.pred)), done)

    def add_predictor(self, name: str) -> None:
        """Load or connect to another predictor in a worker; it becomes the active one when
        ready. On failure: one line, and the active predictor stays."""
        if self.adding is not None:
            self.report("predictor", f"still loading {short(self.adding, 60)}")
            return
        self.adding = name
        self._status()
        self.run_worker(lambda: self._load_named(name), thread=True, group="predictor",
                        name="add_predictor", exit_on_error=False)

    def _load_named(self, name: str) -> Any:
        from loomtui.ui.predictors import load_named

        _quiet()
        return load_named(name, threads=self.threads, device=self.device, dtype=self.dtype,
                          hosted=self.hosted)

    def _added(self, pred: Any, error: str | None) -> None:
        from loomtui.ui.predictors import close

        name, self.adding = self.adding or "", None
        if pred is None:
            shown = short(inline(name), 60)
            self.report("predictor", error if error and shown in error
                        else f"{shown}: {error}")
            self._status()
            return
        same = next((p for p in self.predictors if p.model_id == pred.model_id), None)
        if same is not None and same is not pred:
            close(pred)  # connected twice to the same engine and model: keep the first
            pred = same
        elif same is None:
            self.opened.append(pred)
        self.use_predictor(pred)

    def _remember(self, pred: Any) -> None:
        if pred in self.predictors:
            self.predictors.remove(pred)
        self.predictors.append(pred)

    def use_predictor(self, pred: Any) -> None:
        """Make ``pred`` the active predictor: the selected node's distribution is checked
        again under it (kept per model: switching back costs no model call)."""
        self._remember(pred)
        if pred is self.pred:
            self.say(f"{label(pred)} is the active predictor")
            return
        self.pred = pred
        self.model_error = None
        self.say(f"predictor: {label(pred)}", timeout=2)
        screen = self.loom_screen
        if screen is not None:
            screen.model_ready(None)
        self.show_notes()
        self.refresh_bindings()

    def predictor_for(self, model_id: str | None) -> Any:
        """The loaded predictor of ``model_id`` (what made a growth), or None."""
        return next((p for p in self.predictors if p.model_id == model_id), None)

    def other_predictor(self) -> Any:
        """The most recently active loaded predictor other than the active one (compare)."""
        return next((p for p in reversed(self.predictors) if p is not self.pred), None)

    def show_notes(self) -> None:
        """Say each predictor's notes (what an engine cannot do) once per predictor."""
        for pred in self.predictors:
            for note in list(getattr(pred, "notes", ())):
                key = (str(pred.model_id), str(note))
                if key not in self._notes_said:
                    self._notes_said.add(key)
                    self.say(f"{label(pred)}: {note}", severity="warning", timeout=8)

    # ------------------------------------------------------------------ workers
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Results and failures of the App's workers (model loading, saving, opening)."""
        worker, state = event.worker, event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        error = None if state == WorkerState.SUCCESS else one_line(worker.error)  # type: ignore[arg-type]
        if worker.name == "load_model":
            self._model_done(worker.result if error is None else None, error)
        elif worker.name == "add_predictor":
            self._added(worker.result if error is None else None, error)
        elif worker.name == "save":
            self._saved(worker.result if error is None else None, worker.error)
        elif worker.name == "open":
            first, self.open_path = self.open_path is not None, None
            if error is not None and first:  # the file given at launch: nothing to show
                self.startup_error = error
                self.exit(2, return_code=2)
            elif error is not None:
                self.report("open", error)
            else:
                result: Any = worker.result
                tree, path, stamp, note = result
                self.show_tree(tree, path, stamp)
                self.remember(path)
                if first and self.want_model:
                    self._load_model(tree.model)
                if note or not first:  # at launch the status bar says which file it is
                    self.say(note or f"opened {path} ({plural(len(tree), 'node')})")
                if note:
                    self.saved_revision = -1  # the imported tree is saved to its new file
                    self.schedule_autosave()

    # ------------------------------------------------------------------ saving
    @property
    def dirty(self) -> bool:
        return self.loom is not None and self.loom.revision != self.saved_revision

    def schedule_autosave(self) -> None:
        """After a change: save soon (the last change within the delay wins)."""
        self._status()
        if not self.autosave or self.path is None or self.conflict:
            return
        if self._autosave_timer is not None:
            self._autosave_timer.stop()
        self._autosave_timer = self.set_timer(self.autosave_delay or 0.001, self._autosave)

    def _autosave(self) -> None:
        self._autosave_timer = None
        if self.dirty and self.path is not None:
            self.start_save(autosave=True)

    def start_save(self, path: Path | None = None, *, check: bool = True,
                   autosave: bool = False) -> bool:
        """Start writing the session in the background; False when it cannot start."""
        if self.loom is None:
            return False
        path = path or self.path
        if path is None:
            return False
        if self.saving:  # one save at a time: this one starts when the running one ends
            if path != self.path or not check:
                self._pending_save = (path, check)
            else:
                self.save_again = True
            return True
        if self.conflict and path == self.path and check:
            self._offer_reload()
            return False
        self.saving = True
        expect = self.file_stamp if path == self.path else None
        tree = self._saving_tree = self.loom
        self.run_worker(lambda: write_session(tree, path, expect, check=check,
                                              pause=self._while_busy,
                                              autosave=autosave and not self.quitting),
                        thread=True, exclusive=True, group="save", name="save",
                        exit_on_error=False)
        self._status()
        return True

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.last_key = time.monotonic()
        await super().on_event(event)

    def yield_to_keys(self, cancel: threading.Event | None = None) -> None:
        """Called by a model worker between steps (its thread): while keys are being pressed,
        wait (keys first: a key held down pauses a model running in this process). A key's
        frame needs the GIL for ~25 ms, and a sampling loop over a small model holds it almost
        all the time: sharing it by the switch interval doubled every key. A model in its own
        process goes on; only the drawing of its rows waits."""
        while (time.monotonic() - self.last_key < KEYS_YIELD and not self.quitting
               and not (cancel is not None and cancel.is_set())):
            time.sleep(0.005)

    def _while_busy(self) -> None:
        """Between a background save's steps (worker thread): leave the GIL free for a moment,
        and wait while keys are being pressed (the save can wait; the screen cannot). A quit
        does not wait. The moment matters: the terminal's input and output threads need the
        GIL too, and with ``sleep(0)`` each of them waited a switch interval (5 ms) per hand-over
        behind the next step, which added up to hundreds of ms per key in a real terminal."""
        if self.quitting:
            return
        time.sleep(STEP_GAP)
        while not self.quitting and time.monotonic() - self.last_key < BUSY_WINDOW:
            time.sleep(0.01)

    def _saved(self, written: Written | None, error: BaseException | None) -> None:
        self.saving = False
        tree, self._saving_tree = self._saving_tree, None
        self._announce, announce = False, self._announce
        if written is not None and tree is self.loom:
            self.remember(written.path)
            self.path = written.path  # a save as moves the session to its new file
            self.file_stamp = written.stamp
            self.saved_revision = written.revision
            self.saved_selected = written.selected
            self.last_saved = written
            self.conflict = False
            if announce:
                self.say(f"saved {written.path}", timeout=2)
        elif isinstance(error, session.Superseded):  # the tree kept changing: again soon
            self.save_again = True
        elif isinstance(error, ConflictError) and getattr(error, "path", None) != str(
                self.path):  # a save as onto a file that appeared meanwhile
            self.quitting = False
            self.report("save as", one_line(error))
        elif isinstance(error, ConflictError):
            self.conflict = True
            self.quitting = False
            self.report("save", one_line(error))
            self._offer_reload()
        elif error is not None:
            self.quitting = False
            self.report("save", one_line(error))
        self._status()
        pending, self._pending_save = self._pending_save, None
        if pending is not None:
            self._announce = self.start_save(pending[0], check=pending[1])
        elif self.quitting:
            self._quit_when_idle()
        elif self.save_again or (self.dirty and written is not None and self.autosave):
            self.save_again = False
            self.schedule_autosave()

    def _offer_reload(self) -> None:
        def done(answer: str | None) -> None:
            if answer == "reload":
                self.action_reload()
            elif answer == "save_as":
                self.action_save_as()

        self.push_screen(Choose(
            "The file changed on disk",
            f"{self.path} was changed by another program. Nothing was written over it.",
            [("reload", "r", "Reload it (drops changes here)"), ("save_as", "w", "Save as…"),
             ("cancel", "escape", "Keep editing")]), done)

    def action_save(self) -> None:
        if self.path is None:
            self.action_save_as()
        elif self.conflict:
            self._offer_reload()
        elif not self.dirty and not self.saving:
            self.say(f"saved {self.path} (no changes)", timeout=2)
        else:
            self._announce = self.start_save()

    def action_save_as(self) -> None:
        if self.loom is None or self.open_path is not None:
            return

        def done(path: Path | None) -> None:
            if path is None:
                return
            if completion.is_dir(path):
                self.report("save", f"{path} is a directory")
                return
            if completion.stat(path) is not None and (path != self.path or self.conflict):
                def confirmed(answer: str | None) -> None:
                    if answer == "overwrite":
                        self._announce = self.start_save(path, check=False)

                self.push_screen(Choose("Overwrite?", f"{path} exists. Write this session "
                                        "over it (the old file is kept as .bak)?",
                                        [("overwrite", "y", "Overwrite"),
                                         ("cancel", "escape", "Cancel")]), confirmed)
                return
            self._announce = self.start_save(path)

        self.push_screen(OpenFile(str(self.path or ""), sessions_dir=self.sessions_dir,
                                  title="Save the session as"), done)

    def _growing(self, what: str) -> bool:
        """An expansion or autoloom run is growing the tree: refuse ``what`` in one line."""
        screen = self.loom_screen
        if screen is not None and (screen.generating or screen.autolooming):
            self.report(what, "the tree is growing (an expansion or autoloom run): esc stops "
                        "it first")
            return True
        return False

    def action_open(self) -> None:
        if self.loom is None or self._growing("open"):  # nothing shown yet: the launch open
            return
        if self.dirty and not self.autosave:
            self.report("open", "unsaved changes: save (ctrl+s) or save as (W) first")
            return

        def done(path: Path | None) -> None:
            if path is not None:
                self._open(path)

        start = "" if self.path is None else str(self.path.parent).rstrip(os.sep) + os.sep
        self.push_screen(OpenFile(start, sessions_dir=self.sessions_dir), done)

    def remember(self, path: Path) -> None:
        """Put a file opened or saved under a new name first in the recent list (a thread:
        the list is locked against other loomtui processes)."""
        if path == self._remembered:
            return
        self._remembered = path
        self.run_worker(lambda: recent.remember(path), thread=True, group="recent",
                        name="remember", exit_on_error=False)

    def action_reload(self) -> None:
        if self.loom is None or self._growing("reload"):
            return
        if self.path is None:
            self.report("reload", "this session has no file yet")
            return
        self._open(self.path)

    def _open(self, path: Path) -> None:
        def load() -> tuple[Tree, Path, FileStamp | None, str | None]:
            try:
                tree, stamp = session.load_stamped(path)
            except SessionError as exc:
                if "not a loomtui session" not in exc.problem:
                    raise
                return _import_other_loom(path, exc)
            finally:
                loom_screen_class()  # imported here, not on the event loop when it is shown
            return tree, path, stamp, None

        self.run_worker(load, thread=True, exclusive=True, group="io", name="open",
                        exit_on_error=False)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # ------------------------------------------------------------------ quitting
    async def action_quit(self) -> None:
        self.quitting = True
        self._quit_when_idle()

    def growth_finished(self) -> None:
        """The loom screen's expansion ended (its rollouts attached): quit if asked to."""
        if self.quitting:
            self.call_later(self._quit_when_idle)

    def _quit_when_idle(self) -> None:
        """Quit once nothing is lost: an expansion keeps what streamed, a save finishes."""
        screen = self.loom_screen
        if screen is not None and (screen.generating or screen.autolooming):
            screen.stop_growing()
            return  # growth_finished calls again
        if self.saving:
            return  # _saved calls again
        tree = self.loom
        if tree is None or (not self.dirty and tree.selected == self.saved_selected):
            self.exit(0)
            return
        if self.autosave and self.path is not None and not self.conflict:
            self.start_save()  # _saved calls again
            return
        self.quitting = False

        def done(choice: str | None) -> None:
            if choice == "discard":
                self.exit(0)
            elif choice == "save":
                if self.path is None:
                    self.action_save_as()
                else:
                    self.quitting = True
                    self.start_save()

        self.push_screen(confirm_quit(str(self.path or "This new session")), done)


def _import_other_loom(path: Path, error: SessionError
                       ) -> tuple[Tree, Path, FileStamp | None, str]:
    """A file that is not a loomtui session: import it if another loom wrote it (the file
    itself is never written; the session goes to a new file beside it)."""
    from loomtui.core.importers import import_file, session_paths

    try:
        results = import_file(path)
    except SessionError as exc:
        raise SessionError(path, f"{error.problem}; and as another loom's file: "
                                 f"{exc.problem}") from None
    first = results[0]  # a file of several trees: the first (`loomtui import` writes each)
    tree = first.tree
    target = base = session_paths(path, [first])[0]
    k = 2
    while target.exists():  # never over an existing file
        target = base.with_name(f"{base.name.removesuffix('.loomtui.json')}.loomtui-{k}.json")
        k += 1
    more = f" (1 of {len(results)} trees: loomtui import writes each)" if len(results) > 1 else ""
    return tree, target, None, (f"imported {plural(len(tree), 'node')} from {path.name} "
                                f"({first.fmt}){more}; saved as {target.name}")


LOOM_SCREEN = "loomtui.ui.screens.loom"


def loom_screen_class() -> type[LoomScreen]:
    """The loom screen's class, imported on first use: it brings every widget with it
    (0.2 s), and the first frame (the opening or the prompt screen) needs none of them."""
    from loomtui.ui.screens.loom import LoomScreen

    return LoomScreen


def settle_heap() -> None:
    """Collect once and move every object alive now out of the cyclic GC's sight
    (``gc.freeze``). Importing torch and loading a model leave ~190k long-lived objects;
    while they were visible, each full collection (every few dozen keys: a frame allocates
    thousands of short-lived objects) walked them all and froze a key for 175 ms."""
    gc.collect()
    gc.freeze()


def _quiet() -> None:
    """Keep library log lines and progress bars off the screen."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("transformers", "torch", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def new_session_path(sessions_dir: str | os.PathLike[str] | None) -> Path:
    directory = Path(sessions_dir or "sessions")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"session-{stamp}.json"
    k = 2
    while path.exists():
        path = directory / f"session-{stamp}-{k}.json"
        k += 1
    return path


def finish(app: LoomApp) -> int:
    """After the app ran: its exit status. After a crash (non-zero), the session is saved
    if it has unsaved changes (never over a file changed by another program)."""
    from loomtui.ui.predictors import close

    rc = app.return_code or 0
    if app.startup_error is not None:
        print(f"loomtui: error: {app.startup_error}", file=sys.stderr)
    if app.path is not None and app.loom is not None and app.file_stamp is not None:
        recent.remember(app.path)  # here, not in a worker the process may not wait for
    for pred in app.opened:
        try:
            close(pred)
        except Exception as exc:  # an engine's connection: nothing to lose, say it
            print(f"loomtui: note: closing {inline(str(getattr(pred, 'model_id', '?')))}: "
                  f"{one_line(exc)}", file=sys.stderr)
    app._drop_host()  # its process ends when it reads the quit (or the socket closing)
    if rc and app.loom is not None and app.path is not None and app.dirty:
        try:
            session.save(app.loom, app.path, expect=app.file_stamp)
            print(f"loomtui: error: the app stopped on an error; the session was saved to "
                  f"{inline(str(app.path))}", file=sys.stderr)
        except SessionError as exc:
            print(f"loomtui: error: the app stopped on an error and the session could not be "
                  f"saved: {one_line(exc)}", file=sys.stderr)
    return rc


def run_app(session_path: str | None = None, *, model: str | None = None,
            prompt: str | None = None, threads: int | None = None, device: str = "auto",
            dtype: str = "float32", sessions_dir: str | None = None,
            engine: str | None = None, host: ModelHost | None = None) -> int:
    """Start the app on a session file (or a new session); returns the exit status where it
    cannot start, else ends the process with it (see below). ``host``: the model process,
    started before this module was imported (see ``cli.cmd_open``)."""
    from loomtui.command_line import is_tty

    if not (is_tty(sys.stdin) and is_tty(sys.stdout)):
        if host is not None:
            host.close()
        print("loomtui: error: the app needs a terminal (stdin and stdout are not one); "
              "use the commands (`loomtui --help`) in scripts", file=sys.stderr)
        return 2
    app = make_app(session_path, model=model, prompt=prompt, threads=threads, device=device,
                   dtype=dtype, sessions_dir=sessions_dir, engine=engine, host=host)
    if isinstance(app, str):
        if host is not None:
            host.close()
        print(f"loomtui: error: {app}", file=sys.stderr)
        return 2
    # Our own loop: asyncio.run would wait at its end for every worker thread, and a thread
    # loading or running the model cannot be cancelled (a quit pressed while the model
    # loaded took 8-13 s to give the shell back).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    tune_process()
    app.run(loop=loop)
    rc = finish(app)  # every save is done by now: the app quits only after its last one
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def tune_process() -> None:
    """Set what the app's process runs with (the app benchmark sets it too, to time what a
    user gets): a thread waiting for the GIL gets it after :data:`SWITCH_INTERVAL` (a key
    passes the driver's input thread, then the event loop, each waiting once behind a model
    or save worker), and the youngest objects are collected every :data:`GC_YOUNG`
    allocations."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def make_app(session_path: str | None = None, *, model: str | None = None,
             prompt: str | None = None, threads: int | None = None, device: str = "auto",
             dtype: str = "float32", sessions_dir: str | None = None,
             engine: str | None = None, autosave: bool = True,
             host: ModelHost | None = None) -> LoomApp | str:
    """The app as ``loomtui open`` starts it, or a one-line error. An existing file is read
    after the first frame (a 40,000-node session takes seconds), then the model loads."""
    open_path: Path | None = None
    if session_path:
        path = Path(session_path)
        if not completion.is_dir(path.parent):
            return f"{inline(str(path))}: no directory {inline(str(path.parent))}"
        if completion.is_dir(path):
            return f"{inline(str(path))}: is a directory, not a session file"
        if completion.stat(path) is not None:
            open_path = path
            if prompt:
                print("loomtui: note: --prompt is ignored for an existing session",
                      file=sys.stderr)
                prompt = None
    else:
        path = new_session_path(sessions_dir)
    return LoomApp(path=None if open_path else path, open_path=open_path, prompt=prompt,
                   model=model, engine=engine, threads=threads, device=device, dtype=dtype,
                   load_model=True, autosave=autosave, autosave_delay=AUTOSAVE_DELAY,
                   sessions_dir=sessions_dir, host=host)
