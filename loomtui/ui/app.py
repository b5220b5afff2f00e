"""The loomtui app: tree (left), branch (centre), predictor (right), one key per action.

The app is a thin view: every change goes through :mod:`loomtui.core` on the main thread, and
anything that runs the model happens in a thread worker that reports back with a message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Static

from loomtui.core import grow, session
from loomtui.core.errors import LoomError, SessionError
from loomtui.core.history import Patch
from loomtui.core.node import Alternatives, Node, Sampler
from loomtui.core.text import short
from loomtui.core.tree import ChildOrder, Tree
from loomtui.ui import keys
from loomtui.ui.commands import LoomCommands
from loomtui.ui.format import COLOUR_MODES
from loomtui.ui.messages import (
    DistributionReady,
    ExpandDone,
    ExpandProgress,
    ModelFailed,
    ModelLoaded,
    Scored,
    StreamState,
    TaskFailed,
)
from loomtui.ui.path_cache import PathCache
from loomtui.ui.screens.help import HelpScreen
from loomtui.ui.screens.prompt import ConfirmQuit, LinePrompt, TextPrompt
from loomtui.ui.screens.sampler import SamplerScreen
from loomtui.ui.widgets.branch_view import MAX_CHARS, BranchView, branch_text
from loomtui.ui.widgets.distribution_panel import DistributionPanel
from loomtui.ui.widgets.info_bar import InfoBar, node_info
from loomtui.ui.widgets.tree_view import Line, LoomTree

STREAM_INTERVAL = 1 / 30
"""Streamed tokens reach the screen at most this often (seconds)."""
HISTORY_LIMIT = 500
_ACTIONS = {k.action for k in keys.KEYS}
_NEEDS_TREE = _ACTIONS - {"help", "quit", "open"}


def one_line(exc: BaseException) -> str:
    """A user-facing one-line message for any exception."""
    if isinstance(exc, LoomError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t")


class LoomApp(App[int]):
    """A loom over one session. Construct with a tree and predictor for tests, or let it load
    the model in a worker (``load_model=True``)."""

    CSS_PATH = "loom.tcss"
    TITLE = "loomtui"
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings()  # type: ignore[assignment]
    COMMANDS = App.COMMANDS | {LoomCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        tree: Tree | None = None,
        predictor: Any = None,
        path: str | os.PathLike[str] | None = None,
        *,
        prompt: str | None = None,
        model: str | None = None,
        engine: str | None = None,
        threads: int | None = None,
        device: str = "auto",
        dtype: str = "float32",
        load_model: bool = False,
        autosave: bool = True,
        autosave_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.loom: Tree | None = tree
        self.pred: Any = predictor
        self.path: Path | None = Path(path) if path is not None else None
        self.initial_prompt = prompt
        self.model_name = model
        self.engine = engine
        self.threads = threads
        self.device = device
        self.dtype = dtype
        self.want_model = load_model and predictor is None
        self.model_state = "ready" if predictor is not None else (
            "loading model…" if self.want_model else "no model")
        self.autosave = autosave
        self.autosave_delay = autosave_delay
        self.saved_revision = tree.revision if tree is not None else -1
        self.saved_selected = tree.selected if tree is not None else None
        self.order: ChildOrder = "created"
        self.colour = COLOUR_MODES[0]
        self.token_cursor: int | None = None
        self.back: list[str] = []
        self.forward: list[str] = []
        self.generating = False
        self.stream: StreamState | None = None
        self._job = 0
        self._cancel: threading.Event | None = None
        self._autosave_timer: Timer | None = None
        self._protect_timer: Timer | None = None
        self._computing: set[str] = set()
        self.last_error: str | None = None
        self.paths = PathCache()
        self.stream_updates = 0
        """How many streamed updates reached the screen (tests and the benchmark read it)."""

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield LoomTree(id="tree")
            with Vertical(id="centre"):
                yield BranchView(id="branch")
                yield InfoBar("", id="info")
            yield DistributionPanel(id="dist")
        yield Static("", id="status")
        yield Footer()

    @property
    def tree_view(self) -> LoomTree:
        return self.query_one("#tree", LoomTree)

    @property
    def branch(self) -> BranchView:
        return self.query_one("#branch", BranchView)

    @property
    def dist_panel(self) -> DistributionPanel:
        return self.query_one("#dist", DistributionPanel)

    def on_mount(self) -> None:
        self.tree_view.border_title = "Tree"
        self.branch.border_title = "Branch"
        self.dist_panel.border_title = "Predictor"
        if self.want_model:
            self._load_model()
        if self.loom is not None:
            self.set_tree(self.loom, self.path)
        elif self.initial_prompt:
            self._new_session(self.initial_prompt)
        else:
            self._ask_prompt()
        self.tree_view.focus()

    # ------------------------------------------------------------------ sessions
    def _ask_prompt(self) -> None:
        def done(text: str | None) -> None:
            if not text or not text.strip():
                if self.loom is None:
                    self.exit(0)
                return
            self._new_session(_unescape(text))

        self.push_screen(LinePrompt("New session: the prompt", placeholder="Once upon a time",
                                    hint="enter: start · \\n: newline · esc: quit"), done)

    def _new_session(self, prompt: str) -> None:
        root = Node(id="0", text=prompt, origin="prompt", created=time.time(),
                    model=self.pred.model_id if self.pred is not None else None)
        tree = Tree(root, model=self.pred.model_id if self.pred is not None else None)
        self.set_tree(tree, self.path)
        self.saved_revision = -1  # a new session is unsaved until written
        self._schedule_autosave()

    def set_tree(self, tree: Tree, path: Path | None) -> None:
        """Show another tree (new or opened): the one place the outline is rebuilt."""
        self._job += 1  # results of jobs started on the previous tree are dropped
        self._computing.clear()
        if self.generating:
            if self._cancel is not None:
                self._cancel.set()
            self.generating = False
            self.stream = None
        self.loom = tree
        self.path = path
        self.saved_revision = tree.revision
        self.saved_selected = tree.selected
        self.back.clear()
        self.forward.clear()
        self.token_cursor = None
        self.tree_view.load(tree, self.order)
        self.show_selection()

    @property
    def dirty(self) -> bool:
        return self.loom is not None and self.loom.revision != self.saved_revision

    def save(self, path: Path | None = None) -> bool:
        """Save atomically; a failure is a notification and returns False."""
        if self.loom is None:
            return False
        path = path or self.path
        if path is None:
            self.action_save_as()
            return False
        try:
            session.save(self.loom, path)
        except SessionError as exc:
            self.report("save", one_line(exc))
            return False
        self.path = path
        self.saved_revision = self.loom.revision
        self.saved_selected = self.loom.selected
        self.update_status()
        return True

    def _schedule_autosave(self) -> None:
        if not self.autosave or self.path is None:
            self.update_status()
            return
        if self._autosave_timer is not None:
            self._autosave_timer.stop()
            self._autosave_timer = None
        if self.autosave_delay > 0:
            self._autosave_timer = self.set_timer(self.autosave_delay, self._autosave)
        else:
            self.call_later(self._autosave)

    def _autosave(self) -> None:
        self._autosave_timer = None
        if self.dirty and self.path is not None:
            self.save()

    # ------------------------------------------------------------------ model
    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def _load_model(self) -> None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TQDM_DISABLE", "1")
        try:
            from loomtui.backends import load_predictor
            from loomtui.backends.engine_config import choose, parse_model_id
            from loomtui.backends.models import trusted_session_model

            made_by = self.loom.model if self.loom is not None else None
            spec = choose(self.engine, self.model_name, made_by)
            if spec is not None:  # --engine, or a configured profile matching the session
                from loomtui.backends.engine import connect

                pred = connect(spec)
            else:  # never a URL or a local path that the session names by itself
                name = self.model_name or (
                    None if parse_model_id(made_by) else trusted_session_model(made_by))
                pred = load_predictor(name, threads=self.threads, device=self.device,
                                      dtype=self.dtype)
        except Exception as exc:
            self.post_message(ModelFailed(one_line(exc)))
            return
        self.post_message(ModelLoaded(pred))

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.pred = message.predictor
        self.model_state = "ready"
        tree = self.loom
        if tree is not None:
            if tree.model is None:
                tree.model = self.pred.model_id
            elif tree.model != self.pred.model_id:
                self.notify(f"session was scored by {short(tree.model, 80)}; using "
                            f"{self.pred.model_id}", severity="warning", markup=False)
            self.show_selection()
        self.refresh_bindings()

    def on_model_failed(self, message: ModelFailed) -> None:
        self.model_state = "no model"
        self.report("model", message.error)
        self.show_selection()

    def need_model(self) -> bool:
        if self.pred is not None:
            return True
        if self.model_state.startswith("loading"):
            self.notify("the model is still loading…", severity="warning")
        else:
            self.report("model", "no model is loaded (start with --model NAME)")
        return False

    def report(self, what: str, error: str) -> None:
        """Show a one-line error as a notification; the app keeps running."""
        self.last_error = error
        self.notify(error, title=f"{what} failed", severity="error", timeout=8, markup=False)

    def on_task_failed(self, message: TaskFailed) -> None:
        self.report(message.what, message.error)

    # ------------------------------------------------------------------ showing
    def show_selection(self) -> None:
        """Redraw what depends on the selected node (cheap: no rebuild of the outline)."""
        tree = self.loom
        if tree is None:
            return
        nid = tree.selected
        self.paths.get(tree, nid)
        self.tree_view.reveal(nid, self.paths.head_ids())
        self.show_branch()
        self.query_one("#info", InfoBar).update(node_info(tree, self.paths), layout=False)
        self.show_predictor()
        if self.pred is not None and hasattr(self.pred, "protect"):
            if self._protect_timer is not None:
                self._protect_timer.stop()
            self._protect_timer = self.set_timer(0.2, self._protect)
        self.update_status()

    def _protect(self) -> None:
        """Tell the predictor to keep the selected branch cached (once the user pauses)."""
        self._protect_timer = None
        if self.loom is not None and self.pred is not None:
            self.pred.protect(self.loom, self.loom.selected)

    def show_branch(self) -> None:
        assert self.loom is not None
        window = getattr(self.pred, "context_window", None)
        self.paths.get(self.loom, self.loom.selected)
        # Draw only what can be on screen: wrapped lines hold at most `width` characters, so
        # width x height characters before the end fill the view (rendering dominated moves).
        size = self.branch.content_size
        visible = size.width * size.height if size.width and size.height else MAX_CHARS
        text, summary = branch_text(self.loom, self.paths, self.colour, self.token_cursor,
                                    window, max_chars=max(200, min(MAX_CHARS, visible)))
        self.branch.show(text, summary)

    def show_predictor(self) -> None:
        tree = self.loom
        assert tree is not None
        nid = tree.selected
        node = tree.node(nid)
        panel = self.dist_panel
        if self.token_cursor is not None and node.alternatives is not None:
            i = self.token_cursor
            panel.show_alternatives(nid, i, node.pieces()[i], node.alternatives[i],
                                    node.token_ids[i] if node.token_ids else None)
            return
        dist = node.distribution
        if dist is not None:
            panel.show_distribution(nid, dist)
        if dist is None or dist.entropy is None or len(dist.top) < 20:
            if self.pred is None:
                if dist is None:
                    panel.show_message(f"Next token after {nid}", "not computed: "
                                       + ("loading model…" if self.model_state.startswith(
                                           "loading") else "no model loaded"))
                return
            if dist is None:
                panel.show_message(f"Next token after {nid}", "computing…")
            if nid not in self._computing:
                self._computing.add(nid)
                self._compute_distribution(nid, self.stamp(nid))

    def stamp(self, node_id: str) -> tuple[Tree | None, str]:
        """What a worker's result for ``node_id`` depends on: this session, and the node's
        context as it is now (ids repeat across sessions, and split/merge change contexts)."""
        tree = self.loom
        return tree, tree.context_text(node_id) if tree is not None else ""

    def still_valid(self, stamp: Any, node_id: str) -> bool:
        """Whether a result stamped before its worker ran still applies to ``node_id``."""
        if stamp is None:
            return True
        tree, context = stamp
        return (tree is self.loom and tree is not None and node_id in tree
                and tree.context_text(node_id) == context)

    @work(thread=True, group="distribution", exit_on_error=False)
    def _compute_distribution(self, node_id: str, stamp: Any = None) -> None:
        tree, pred = self.loom, self.pred
        if tree is None or pred is None:
            return
        lock = getattr(pred, "lock", None) or threading.RLock()
        try:
            with lock:
                if tree.selected != node_id or node_id not in tree:
                    self.post_message(DistributionReady(node_id, None))
                    return
                dist = pred.distribution(tree, node_id, 20)
        except Exception as exc:
            self.post_message(TaskFailed("distribution", one_line(exc)))
            self.post_message(DistributionReady(node_id, None, stamp))
            return
        self.post_message(DistributionReady(node_id, dist, stamp))

    def on_distribution_ready(self, message: DistributionReady) -> None:
        self._computing.discard(message.node_id)
        tree = self.loom
        if tree is None or message.node_id not in tree or message.distribution is None:
            return
        if not self.still_valid(message.stamp, message.node_id):
            if tree.selected == message.node_id:  # computed for an old context: again
                self.show_predictor()
            return
        tree.update(message.node_id, distribution=message.distribution)
        if tree.selected == message.node_id:
            self.show_selection()
        else:
            self.tree_view.relabel(message.node_id)
        self._schedule_autosave()

    def update_status(self) -> None:
        tree = self.loom
        bits = []
        model = self.pred.model_id if self.pred is not None else ""
        bits.append(f"{model} · {self.model_state}" if model else self.model_state)
        if self.generating and self.stream is not None:
            bits.append(f"generating {sum(self.stream.tokens)} tokens… esc cancels")
        if tree is not None:
            name = str(self.path) if self.path is not None else "no file (W saves as)"
            state = "unsaved changes" if self.dirty else (
                "saved" if self.path is not None else "no changes")
            bits.append(f"{name} · {state}" + (" · autosave" if self.autosave and self.path
                                                 else ""))
            bits.append(f"{len(tree):,} nodes · order {self.order} · colour {self.colour}")
            if self.token_cursor is not None:
                bits.append(f"token cursor {self.token_cursor}")
        self.query_one("#status", Static).update("  │  ".join(bits), layout=False)

    # ------------------------------------------------------------------ changes
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _NEEDS_TREE and self.loom is None:
            return False
        if action == "cancel":
            return self.generating or self.token_cursor is not None
        if action == "undo" and self.loom is not None:
            return True if self.loom.can_undo else None
        if action == "redo" and self.loom is not None:
            return True if self.loom.can_redo else None
        if action == "split":
            return True if self.token_cursor else None
        return True

    def change(self, fn: Callable[[Tree], Any], *, keep_cursor: bool = False) -> Any:
        """Run one edit of the tree, then redraw only what it touched and autosave."""
        tree = self.loom
        if tree is None:
            return None
        stack = tree.history.undo_stack
        before = stack[-1] if stack else None
        old_sel = tree.selected
        try:
            result = fn(tree)
        except (LoomError, ValueError) as exc:
            self.report("edit", one_line(exc))
            return None
        patch = stack[-1] if stack and stack[-1] is not before else None
        self.after_change(patch, old_sel, keep_cursor=keep_cursor)
        return result

    def after_change(self, patch: Patch | None, old_selected: str | None = None, *,
                     keep_cursor: bool = False) -> None:
        tree = self.loom
        assert tree is not None
        if patch is not None:
            self.tree_view.refresh_nodes(patch.touched())
        if old_selected is not None and old_selected != tree.selected:
            self._remember(old_selected)
        if not keep_cursor:
            self.token_cursor = None
        self.show_selection()
        self._schedule_autosave()
        self.refresh_bindings()

    # ------------------------------------------------------------------ navigation
    def _remember(self, node_id: str) -> None:
        self.back.append(node_id)
        del self.back[:-HISTORY_LIMIT]
        self.forward.clear()

    def select(self, node_id: str | None, *, record: bool = True) -> None:
        tree = self.loom
        if tree is None or node_id is None or node_id not in tree:
            self.bell()
            return
        if node_id == tree.selected:
            return
        if record:
            self._remember(tree.selected)
        tree.select(node_id)
        had_cursor = self.token_cursor is not None
        self.token_cursor = None
        self.show_selection()
        if had_cursor:  # the footer only changes with the token cursor (never per move)
            self.refresh_bindings()

    def action_parent(self) -> None:
        assert self.loom is not None
        self.select(self.loom.parent(self.loom.selected))

    def action_first_child(self) -> None:
        assert self.loom is not None
        kids = self.loom.children(self.loom.selected, self.order)
        self.select(kids[0] if kids else None)

    def _sibling(self, step: int) -> None:
        tree = self.loom
        assert tree is not None
        sibs = tree.siblings(tree.selected, self.order)
        i = sibs.index(tree.selected) + step
        self.select(sibs[i] if 0 <= i < len(sibs) else None)

    def action_next_sibling(self) -> None:
        self._sibling(1)

    def action_previous_sibling(self) -> None:
        self._sibling(-1)

    def action_root(self) -> None:
        assert self.loom is not None
        self.select(self.loom.root_id)

    def action_branch_end(self) -> None:
        tree = self.loom
        assert tree is not None
        nid = tree.selected
        while tree.n_children(nid):
            nid = tree.children(nid, self.order)[0]
        self.select(nid if nid != tree.selected else None)

    def _bookmark(self, step: int) -> None:
        tree = self.loom
        assert tree is not None
        order = [n for n, _ in tree.iter_preorder()]
        marks = [i for i, n in enumerate(order) if tree.node(n).bookmarked]
        if not marks:
            self.notify("no bookmarks yet: b bookmarks the selected node")
            return
        here = order.index(tree.selected)
        later = [i for i in marks if i > here] if step > 0 else [i for i in marks if i < here]
        target = (later[0] if later else marks[0]) if step > 0 else (
            later[-1] if later else marks[-1])
        self.select(order[target])

    def action_next_bookmark(self) -> None:
        self._bookmark(1)

    def action_previous_bookmark(self) -> None:
        self._bookmark(-1)

    def _travel(self, source: list[str], dest: list[str]) -> None:
        """Step through selection history: pop ``source`` (skipping deleted nodes), and push
        the current node on ``dest``."""
        tree = self.loom
        assert tree is not None
        while source and source[-1] not in tree:
            source.pop()
        if not source:
            self.bell()
            return
        dest.append(tree.selected)
        self.select(source.pop(), record=False)

    def action_back(self) -> None:
        self._travel(self.back, self.forward)

    def action_forward(self) -> None:
        self._travel(self.forward, self.back)

    @on(LoomTree.NodeHighlighted)
    def _line_highlighted(self, event: LoomTree.NodeHighlighted[Any]) -> None:
        line = event.node.data
        if (self.loom is None or event.node is not self.tree_view.cursor_node
                or not isinstance(line, Line) or line.focus not in self.loom):
            return
        if line.focus != self.loom.selected:
            self.select(line.focus)

    @on(DistributionPanel.Picked)
    def _row_picked(self, event: DistributionPanel.Picked) -> None:
        self.action_pick_rank(event.rank)

    # ------------------------------------------------------------------ token cursor
    def _move_token(self, step: int) -> None:
        tree = self.loom
        assert tree is not None
        node = tree.node(tree.selected)
        n = node.n_tokens
        if not n:
            self.notify("this node has no tokens to move over", severity="warning")
            return
        if self.token_cursor is None:
            self.token_cursor = n - 1 if step < 0 else 0
        else:
            self.token_cursor = max(0, min(n - 1, self.token_cursor + step))
        self.show_branch()
        self.show_predictor()
        self.update_status()
        self.refresh_bindings()

    def action_token_left(self) -> None:
        self._move_token(-1)

    def action_token_right(self) -> None:
        self._move_token(1)

    def action_cancel(self) -> None:
        if self.generating and self._cancel is not None:
            self._cancel.set()
            self.notify("cancelling: keeping what was generated")
        elif self.token_cursor is not None:
            self.token_cursor = None
            self.show_selection()
            self.refresh_bindings()

    # ------------------------------------------------------------------ sampling
    def action_expand(self) -> None:
        tree = self.loom
        assert tree is not None
        if not self.need_model():
            return
        if self.generating:
            self.notify("already generating: esc cancels", severity="warning")
            return
        try:
            sampler = tree.sampler.validated()
        except ValueError as exc:
            self.report("expand", str(exc))
            return
        seed = tree.seed if tree.seed is not None else random.randrange(2**31)
        self._job += 1
        self._cancel = threading.Event()
        self.generating = True
        self.stream = StreamState([""] * sampler.n, [0] * sampler.n)
        self.tree_view.show_pending(tree.selected, sampler.n)
        self.update_status()
        self.refresh_bindings()
        self._expand(self._job, tree.selected, sampler, seed, self._cancel,
                     self.stamp(tree.selected))

    @work(thread=True, exclusive=True, group="expand", exit_on_error=False)
    def _expand(self, job: int, node_id: str, sampler: Sampler, seed: int,
                cancel: threading.Event, stamp: Any = None) -> None:
        tree, pred = self.loom, self.pred
        assert tree is not None and pred is not None
        texts = [""] * sampler.n
        tokens = [0] * sampler.n
        last = [0.0]

        def on_token(i: int, seg: Any) -> None:
            texts[i] = seg.text
            tokens[i] = len(seg.token_ids)
            now = time.monotonic()
            if now - last[0] >= STREAM_INTERVAL:
                last[0] = now
                self.post_message(ExpandProgress(job, StreamState(list(texts), list(tokens))))

        try:
            segs = pred.sample(tree, node_id, sampler.n, sampler, seed, on_token=on_token,
                               cancel=cancel)
        except Exception as exc:
            self.post_message(TaskFailed("expand", one_line(exc)))
            segs = []
        done = ExpandDone(job, node_id, segs, sampler, cancel.is_set())
        done.stamp = stamp
        self.post_message(done)

    def on_expand_progress(self, message: ExpandProgress) -> None:
        if message.job != self._job or not self.generating:
            return
        self.stream = message.state
        self.stream_updates += 1
        self.tree_view.update_pending(message.state.texts)
        self.update_status()

    def on_expand_done(self, message: ExpandDone) -> None:
        if message.job != self._job:
            return
        self.generating = False
        self.stream = None
        self.tree_view.clear_pending()
        tree, pred = self.loom, self.pred
        assert tree is not None
        segs = [s for s in message.segments if s.token_ids]
        if not self.still_valid(message.stamp, message.node_id):
            if segs:
                self.notify("the expanded node was deleted or changed; rollouts discarded",
                            severity="warning")
            self.after_change(None)
            return

        def add(t: Tree) -> list[Node]:
            kids = []
            with t.transaction("expand"):
                for seg in segs:
                    node = grow.node_from_segment(t, seg, "sampled", pred.model_id,
                                                  message.sampler)
                    kids.append(t.add_child(message.node_id, node))
            return kids

        kids = self.change(add) or []
        self._adopt([(k.id, s) for k, s in zip(kids, segs, strict=False)])
        if message.cancelled:
            self.notify(f"cancelled: kept {len(kids)} partial rollout(s)")
        self.refresh_bindings()

    @work(thread=True, group="adopt", exit_on_error=False)
    def _adopt(self, pairs: list[tuple[str, Any]]) -> None:
        """Hand the computed KV caches to the predictor (it takes its lock: not on the loop)."""
        tree, pred = self.loom, self.pred
        adopt = getattr(pred, "adopt", None)
        if tree is None or adopt is None:
            return
        for nid, seg in pairs:
            # the node may be gone already; the cache is only a speed-up
            with contextlib.suppress(Exception):
                adopt(tree, nid, seg)

    # ------------------------------------------------------------------ picking and typing
    def action_pick_rank(self, rank: int) -> None:
        tree = self.loom
        assert tree is not None
        if self.token_cursor is not None:
            self._branch_at_cursor(rank)
            return
        node = tree.node(tree.selected)
        dist = node.distribution
        if dist is None:
            self.notify("the distribution is not computed yet", severity="warning")
            return
        if rank > len(dist.top):
            self.notify(f"only {len(dist.top)} tokens are stored here", severity="warning")
            return
        if not self.need_model():
            return
        self._score(tree.selected, "picked", token_ids=[dist.top.ids[rank - 1]],
                    stamp=self.stamp(tree.selected))

    def action_type_text(self) -> None:
        tree = self.loom
        assert tree is not None
        if not self.need_model():
            return
        nid = tree.selected

        def done(text: str | None) -> None:
            if text:
                self._score(nid, "typed", text=_unescape(text), stamp=self.stamp(nid))

        self.push_screen(LinePrompt(f"Type text to add after node {nid}",
                                    hint="enter: add · \\n: newline · esc: cancel"), done)

    @work(thread=True, group="score", exit_on_error=False)
    def _score(self, node_id: str, origin: str, *, token_ids: list[int] | None = None,
               text: str | None = None, stamp: Any = None) -> None:
        tree, pred = self.loom, self.pred
        assert tree is not None and pred is not None
        try:
            seg = (pred.score_tokens(tree, node_id, token_ids) if token_ids is not None
                   else pred.score(tree, node_id, text))
        except Exception as exc:
            self.post_message(TaskFailed("pick" if origin == "picked" else "type",
                                         one_line(exc)))
            return
        self.post_message(Scored(node_id, seg, origin, stamp))

    def on_scored(self, message: Scored) -> None:
        tree, pred = self.loom, self.pred
        assert tree is not None
        if not self.still_valid(message.stamp, message.node_id):
            self.notify("the parent node was deleted or changed; nothing added",
                        severity="warning")
            return

        def add(t: Tree) -> Node:
            with t.transaction("pick" if message.origin == "picked" else "type"):
                node = grow.node_from_segment(t, message.segment, message.origin,
                                              pred.model_id)
                t.add_child(message.node_id, node)
                t.select(node.id)
            return node

        node = self.change(add)
        if node is not None:
            self._adopt([(node.id, message.segment)])

    def _branch_at_cursor(self, rank: int) -> None:
        """Pick an alternative at the token cursor: split there and add it (one undo step)."""
        tree = self.loom
        assert tree is not None and self.token_cursor is not None
        nid, i = tree.selected, self.token_cursor
        node = tree.node(nid)
        if node.alternatives is None or node.token_ids is None:
            self.notify("no alternatives are stored for this node", severity="warning")
            return
        alts = node.alternatives[i]
        if not 1 <= rank <= len(alts):
            self.notify(f"only {len(alts)} alternatives are stored here", severity="warning")
            return
        tid, text, lp = alts[rank - 1]
        if tid == node.token_ids[i]:
            self.notify("that is the token already here", severity="warning")
            return
        parent = nid if i > 0 else tree.parent(nid)
        if parent is None:
            self.report("branch", "cannot branch before the first token of the prompt")
            return

        def branch(t: Tree) -> Node:
            with t.transaction("branch"):
                if i > 0:
                    t.split(nid, at_token=i)
                child = t.new_node(text, "picked", token_ids=[tid], token_offsets=[0],
                                   token_logprobs=[lp], alternatives=Alternatives.of([alts]),
                                   model=node.model)
                t.add_child(parent, child)
                t.select(child.id)
            return child

        self.change(branch)

    # ------------------------------------------------------------------ editing
    def action_edit(self) -> None:
        tree = self.loom
        assert tree is not None
        nid = tree.selected
        if nid == tree.root_id:
            self.report("edit", "the prompt cannot be forked; start a new session from it")
            return

        def done(text: str | None) -> None:
            if text is not None and text != tree.node(nid).text and nid in tree:
                self.change(lambda t: t.edit(nid, text))

        self.push_screen(TextPrompt(f"Edit node {nid} (makes an edited fork)",
                                    tree.node(nid).text), done)

    def action_split(self) -> None:
        tree = self.loom
        assert tree is not None
        if not self.token_cursor:
            self.notify("move the token cursor ([ or ]) to where the split goes",
                        severity="warning")
            return
        nid, at = tree.selected, self.token_cursor
        self.change(lambda t: t.split(nid, at_token=at))

    def action_merge(self) -> None:
        assert self.loom is not None
        nid = self.loom.selected
        self.change(lambda t: t.merge(nid))

    def action_delete(self) -> None:
        tree = self.loom
        assert tree is not None
        nid = tree.selected
        doomed = self.change(lambda t: t.delete(nid))
        if doomed:
            self.notify(f"deleted {len(doomed)} node(s): u undoes")

    def action_bookmark(self) -> None:
        tree = self.loom
        assert tree is not None
        nid = tree.selected
        on_ = not tree.node(nid).bookmarked
        self.change(lambda t: t.set_bookmark(nid, on_), keep_cursor=True)

    def action_note(self) -> None:
        tree = self.loom
        assert tree is not None
        nid = tree.selected

        def done(text: str | None) -> None:
            if text is not None and nid in tree and text != tree.node(nid).note:
                self.change(lambda t: t.set_note(nid, text), keep_cursor=True)

        self.push_screen(LinePrompt(f"Note on node {nid}", tree.node(nid).note), done)

    def _history(self, patch: Patch | None, what: str) -> None:
        if patch is None:
            self.notify(f"nothing to {what}")
            return
        self.after_change(patch)
        self.notify(f"{what}: {patch.label}", timeout=2)

    def action_undo(self) -> None:
        assert self.loom is not None
        self._history(self.loom.undo(), "undo")

    def action_redo(self) -> None:
        assert self.loom is not None
        self._history(self.loom.redo(), "redo")

    # ------------------------------------------------------------------ view
    def action_toggle_order(self) -> None:
        self.order = "probability" if self.order == "created" else "created"
        self.tree_view.resort(self.order)
        self.show_selection()
        self.notify(f"children ordered by {self.order}", timeout=2)

    def action_cycle_colour(self) -> None:
        self.colour = COLOUR_MODES[(COLOUR_MODES.index(self.colour) + 1) % len(COLOUR_MODES)]
        self.show_branch()
        self.update_status()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_sampler(self) -> None:
        tree = self.loom
        assert tree is not None

        def done(result: tuple[Sampler, int | None] | None) -> None:
            if result is None:
                return
            sampler, seed = result
            if sampler != tree.sampler or seed != tree.seed:
                tree.set_sampler(sampler, seed)
                self._schedule_autosave()
            self.notify("sampler: " + ", ".join(
                f"{k}={v}" for k, v in sampler.to_json().items()), timeout=3)

        self.push_screen(SamplerScreen(tree.sampler, tree.seed), done)

    # ------------------------------------------------------------------ files
    def action_save(self) -> None:
        if self.save():
            self.notify(f"saved {self.path}", timeout=2)

    def action_save_as(self) -> None:
        def done(text: str | None) -> None:
            if text and text.strip():
                path = Path(text.strip()).expanduser()
                if self.save(path):
                    self.notify(f"saved {path}", timeout=2)

        self.push_screen(LinePrompt("Save session as", str(self.path or "")), done)

    def action_open(self) -> None:
        if self.dirty:
            self._autosave()
            if self.dirty:
                self.report("open", "unsaved changes: save (ctrl+s) or save as (W) first")
                return

        def done(text: str | None) -> None:
            if text and text.strip():
                self._open(Path(text.strip()).expanduser())

        self.push_screen(LinePrompt("Open session file", str(self.path or "")), done)

    @work(thread=True, exclusive=True, group="io", exit_on_error=False)
    def _open(self, path: Path) -> None:
        try:
            tree = session.load(path)
        except Exception as exc:
            self.post_message(TaskFailed("open", one_line(exc)))
            return
        self.call_from_thread(self._opened, tree, path)

    def _opened(self, tree: Tree, path: Path) -> None:
        if self.generating and self._cancel is not None:
            self._cancel.set()
        self.set_tree(tree, path)
        self.notify(f"opened {path} ({len(tree):,} nodes)", timeout=3)

    async def action_quit(self) -> None:
        if self.generating and self._cancel is not None:
            self._cancel.set()
        tree = self.loom
        if tree is None or (not self.dirty and tree.selected == self.saved_selected):
            self.exit(0)
            return
        if self.autosave and self.path is not None and self.save():
            self.exit(0)
            return
        if not self.dirty:
            self.exit(0)
            return

        def done(choice: str | None) -> None:
            if choice == "discard" or (choice == "save" and self.save()):
                self.exit(0)

        self.push_screen(ConfirmQuit(str(self.path or "This new session")), done)


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


def run_app(session_path: str | None = None, *, model: str | None = None,
            prompt: str | None = None, threads: int | None = None, device: str = "auto",
            dtype: str = "float32", sessions_dir: str | None = None,
            engine: str | None = None) -> int:
    """Start the app on a session file (or a new session); returns the exit status."""
    import sys

    _quiet()
    tree: Tree | None = None
    if session_path:
        path = Path(session_path)
        if path.exists():
            try:
                tree = session.load(path)
            except SessionError as exc:
                print(f"loomtui: error: {exc}", file=sys.stderr)
                return 2
    else:
        path = new_session_path(sessions_dir)
    if tree is not None and prompt:
        print("loomtui: note: --prompt is ignored for an existing session", file=sys.stderr)
    app = LoomApp(tree=tree, path=path, prompt=prompt, model=model, engine=engine,
                  threads=threads, device=device, dtype=dtype, load_model=True,
                  autosave_delay=0.3)
    rc = app.run()
    return int(rc or 0)

