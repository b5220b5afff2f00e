"""The loom screen: tree (left), branch (centre), predictor (right), one key per action.

It owns one session's tree while it is shown: layout, bindings, actions and redraws. The search
bar (``/``) and an autoloom run's progress bar (``A``) are widgets of their own that run their
workers; while a run grows the tree, every edit is refused here (``refuse_edit``). Growth
goes through :mod:`loomtui.core.grow`: phase one (``sample``, ``score_tokens``, ``score_text``,
``choose_token``) runs in thread workers given the tree and predictor as arguments; phase two
(``attach``, then ``adopt`` in a worker) runs here on the main thread. Worker results and
failures arrive through one ``Worker.StateChanged`` handler. The App owns the model, files and
quitting; this screen asks it to autosave after each change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static
from textual.widgets.tree import TreeNode
from textual.worker import Worker, WorkerState

from loomtui.core import grow
from loomtui.core.autoloom import Plan, Result
from loomtui.core.compare import kept_distribution
from loomtui.core.errors import LoomError
from loomtui.core.history import Patch
from loomtui.core.node import Choices, Node, Sampler
from loomtui.core.text import inline, short
from loomtui.core.tree import ChildOrder, Tree
from loomtui.ui import keys
from loomtui.ui.format import COLOUR_MODES, one_line, plural
from loomtui.ui.messages import ExpandProgress, StreamState
from loomtui.ui.navigation import History, TokenCursor, next_bookmark
from loomtui.ui.path_cache import PathCache
from loomtui.ui.screens.autoloom import AutoloomScreen
from loomtui.ui.screens.prompt import TextPrompt
from loomtui.ui.screens.sampler import SamplerScreen
from loomtui.ui.widgets.autoloom_bar import AutoloomBar
from loomtui.ui.widgets.branch_view import MAX_CHARS, BranchView, branch_text
from loomtui.ui.widgets.compare_panel import ComparePanel
from loomtui.ui.widgets.distribution_panel import DistributionPanel
from loomtui.ui.widgets.info_bar import InfoBar, node_info
from loomtui.ui.widgets.key_footer import KeyFooter
from loomtui.ui.widgets.search_bar import SearchBar
from loomtui.ui.widgets.tree_view import Line, LoomTree

if TYPE_CHECKING:
    from loomtui.ui.app import LoomApp

STREAM_INTERVAL = 1 / 30
"""Streamed tokens reach the screen at most this often (seconds)."""
KEYS_FIRST = 0.15
"""Streamed rows are not redrawn within this many seconds of a key (its repaint comes first)."""
TOP_K = 20
MORE_K = 100
"""How many alternatives `+` asks the model for."""
_LOOM_ACTIONS = {k.action for k in keys.KEYS} - keys.APP_ACTIONS


class LoomScreen(Screen[None]):
    """The workspace over one tree."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(app=False)  # type: ignore[assignment]

    colour: var[str] = var(COLOUR_MODES[0], init=False)
    order: var[ChildOrder] = var("created", init=False)
    token_cursor: var[int | None] = var(None, init=False)
    generating: var[bool] = var(False, init=False)

    def __init__(self, tree: Tree) -> None:
        super().__init__()
        self.loom = tree
        self.history = History()
        self.cursor = TokenCursor()
        self.paths = PathCache()
        self.stream: StreamState | None = None
        self.expanding: grow.Stamp | None = None
        """The stamp of the expansion running (its progress messages carry it)."""
        self.cancel_event: threading.Event | None = None
        self._status_text = ""
        self.dist_pending: grow.Stamp | None = None
        """The context whose distribution a worker is computing (not asked twice)."""
        self.queued: list[tuple[str, Callable[[], None]]] = []
        """Model actions pressed while the model loads: run when it is ready, esc drops."""
        self.busy: str | None = None
        """Long model work under way, for the status bar (scoring typed text...)."""
        self.more: tuple[grow.Stamp, str, int, Choices] | None = None
        """Alternatives computed on demand (``+``): (the node's context, the model that
        computed them, the token index, the alternatives)."""
        self.more_pending: str | None = None
        """``+`` at the token cursor is being computed (for the status bar)."""
        self.stream_updates = 0
        """How many streamed updates reached the screen (tests and the benchmark read it)."""
        self._protect_timer: Timer | None = None
        self.comparing = False
        """The compare panel (C) is shown in place of the distribution panel."""
        self._stream_timer: Timer | None = None
        self.last_plan: Plan | None = None
        """The last autoloom run's settings (the dialog opens with them)."""
        self.last_run: Result | None = None
        self._search_shown = False

    # ------------------------------------------------------------------ the App's side
    @property
    def loom_app(self) -> LoomApp:
        return self.app  # type: ignore[return-value]

    @property
    def pred(self) -> Any:
        return self.loom_app.pred

    def say(self, message: str, *, severity: str = "information", timeout: float = 3) -> None:
        """A notification whose text is never parsed as markup."""
        self.loom_app.say(message, severity=severity, timeout=timeout)

    def report(self, what: str, error: str) -> None:
        self.loom_app.report(what, error)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield LoomTree(id="tree")
            with Vertical(id="centre"):
                yield BranchView(id="branch")
                yield InfoBar("", id="info")
            yield DistributionPanel(id="dist")
            yield ComparePanel(id="compare")
        yield SearchBar(id="search")
        yield AutoloomBar(id="autoloom")
        yield Static("", id="status")
        yield KeyFooter()

    @property
    def tree_view(self) -> LoomTree:
        return self.query_one("#tree", LoomTree)

    @property
    def branch(self) -> BranchView:
        return self.query_one("#branch", BranchView)

    @property
    def dist_panel(self) -> DistributionPanel:
        return self.query_one("#dist", DistributionPanel)

    @property
    def search_bar(self) -> SearchBar:
        return self.query_one("#search", SearchBar)

    @property
    def autoloom_bar(self) -> AutoloomBar:
        return self.query_one("#autoloom", AutoloomBar)

    @property
    def autolooming(self) -> bool:
        """An autoloom run is growing the tree."""
        try:
            return self.autoloom_bar.running
        except NoMatches:
            return False

    def on_mount(self) -> None:
        self.tree_view.border_title = "Tree"
        self.tree_view.cursor_moved = self._follow_line
        self.branch.border_title = "Branch"
        self.dist_panel.border_title = "Predictor"
        self.tree_view.load(self.loom, self.order)
        self.show_selection()
        self.tree_view.focus()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100, "narrow")
        self.set_class(self.size.width < 72, "stacked")

    # ------------------------------------------------------------------ reactives
    def watch_colour(self) -> None:
        self.show_branch()
        self.update_status()

    def watch_order(self) -> None:
        self.tree_view.resort(self.order)
        self.show_selection()

    def watch_token_cursor(self, old: int | None, new: int | None) -> None:
        self.cursor.index = new
        self.show_branch()
        self.show_predictor()
        self.update_status()
        if (old is None) != (new is None):
            self.refresh_bindings()

    def watch_generating(self) -> None:
        self.update_status()
        self.refresh_bindings()

    # ------------------------------------------------------------------ showing
    def show_selection(self) -> None:
        """Redraw what depends on the selected node (cheap: no rebuild of the outline)."""
        tree = self.loom
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
        if self.pred is not None:
            self._protect_worker(self.loom, self.pred, self.loom.selected)

    @work(description="protect", thread=True, group="protect", exclusive=True,
          exit_on_error=False)
    def _protect_worker(self, tree: Tree, pred: Any, node_id: str) -> None:
        if node_id in tree:
            pred.protect(tree, node_id)

    def show_branch(self) -> None:
        window = getattr(self.pred, "context_window", None)
        self.paths.get(self.loom, self.loom.selected)
        # Draw only what can be on screen: wrapped lines hold at most `width` characters, so
        # width x height characters before the end fill the view (rendering dominated moves).
        size = self.branch.content_size
        visible = size.width * size.height if size.width and size.height else MAX_CHARS
        try:
            marks = self.search_bar.spans(self.paths.path)
        except NoMatches:
            marks = []
        text, summary, cursor_at = branch_text(
            self.loom, self.paths, self.colour, self.token_cursor, window,
            max_chars=max(200, min(MAX_CHARS, visible)), marks=marks)
        self.branch.show(text, summary, cursor_at)

    def show_predictor(self) -> None:
        tree = self.loom
        if self.comparing:
            self.query_one(ComparePanel).show(tree, tree.selected, self.pred,
                                              self.loom_app.other_predictor())
        nid = tree.selected
        node = tree.node(nid)
        panel = self.dist_panel
        label = short(nid, 14)
        at_cursor = self.token_cursor is not None and node.alternatives is not None
        if self.token_cursor is not None and node.alternatives is not None:
            i = min(self.token_cursor, len(node.alternatives) - 1)
            more = self._more_here()
            panel.show_alternatives(label, i, node.pieces()[i],
                                    more if more is not None else node.alternatives[i],
                                    node.token_ids[i] if node.token_ids else None,
                                    on_demand=more is not None)
            if not self.comparing:  # the compare panel still wants the node's own
                return
        dist = node.distribution
        if dist is not None and not at_cursor:
            panel.show_distribution(label, dist)
        pred = self.pred
        if dist is not None and (pred is None or dist.complete_for(pred.model_id, TOP_K)):
            return
        if pred is None:
            if dist is None and not at_cursor:
                panel.show_message(f"Next token after {label}", "not computed: " + (
                    "loading model…" if self.loom_app.model_loading else "no model loaded"))
            return
        if dist is None and not at_cursor:
            panel.show_message(f"Next token after {label}", "computing…")
        stamp = grow.Stamp.of(tree, nid, self.paths.get(tree, nid))
        if stamp != self.dist_pending:
            self.dist_pending = stamp
            self._distribution(tree, pred, stamp)

    def update_status(self) -> None:
        app = self.loom_app
        bits = [app.model_status()]
        if self.generating and self.stream is not None:
            bits.append(f"generating {sum(self.stream.tokens)} tokens… esc keeps them")
        if self.busy or self.more_pending:
            bits.append(self.busy or self.more_pending or "")
        elif self.dist_pending is not None:
            bits.append(f"scoring the context of node {short(self.dist_pending.node_id, 14)}…")
        if self.queued:
            bits.append("queued: " + ", ".join(name for name, _ in self.queued)
                        + " (esc drops)")
        bits.append(app.file_status())
        bits.append(f"{plural(len(self.loom), 'node')} · {self.order} · {self.colour}")
        if self.token_cursor is not None:
            bits.append(f"token {self.token_cursor}")
        text = inline("  │  ".join(bits))
        if text == self._status_text:
            return  # unchanged: no repaint (most keys)
        try:
            status = self.query_one("#status", Static)
        except NoMatches:  # the screen is being taken down (a late worker message)
            return
        self._status_text = text
        status.update(Content(text), layout=False)

    # ------------------------------------------------------------------ changes
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":  # always shown (dimmed when idle): no footer rebuild per run
            return True if (self.generating or self.token_cursor is not None
                            or bool(self.queued) or self.autolooming
                            or self.search_bar.active) else None
        if action == "undo":
            return True if self.loom.can_undo else None
        if action == "redo":
            return True if self.loom.can_redo else None
        if action == "split":
            return True if self.token_cursor else None
        return True

    def change(self, fn: Callable[[Tree], Any], *, keep_cursor: bool = False,
               what: str = "edit") -> Any:
        """Run one edit of the tree, then redraw only what it touched and autosave."""
        if self.refuse_edit(what):
            return None
        tree = self.loom
        stack = tree.history.undo_stack
        before = stack[-1] if stack else None
        old_sel = tree.selected
        try:
            result = fn(tree)
        except (LoomError, ValueError) as exc:
            self.report(what, one_line(exc))
            return None
        patch = stack[-1] if stack and stack[-1] is not before else None
        self.after_change(patch, old_sel, keep_cursor=keep_cursor)
        return result

    def after_change(self, patch: Patch | None, old_selected: str | None = None, *,
                     keep_cursor: bool = False) -> None:
        tree = self.loom
        if patch is not None:
            self.tree_view.refresh_nodes(patch.touched())
        if old_selected is not None and old_selected != tree.selected:
            self.history.remember(old_selected)
        if not keep_cursor:
            self.token_cursor = None
        self.show_selection()
        self.loom_app.schedule_autosave()
        self.refresh_bindings()
        self.search_bar.tree_changed()

    # ------------------------------------------------------------------ navigation
    def select(self, node_id: str | None, *, record: bool = True) -> None:
        tree = self.loom
        if node_id is None or node_id not in tree:
            self.app.bell()
            return
        if node_id == tree.selected:
            return
        if record:
            self.history.remember(tree.selected)
        tree.select(node_id)
        if self.token_cursor is not None:
            self.token_cursor = None  # its watcher redraws the branch and predictor again
        self.show_selection()

    def action_parent(self) -> None:
        self.select(self.loom.parent(self.loom.selected))

    def action_first_child(self) -> None:
        kids = self.loom.children(self.loom.selected, self.order)
        self.select(kids[0] if kids else None)

    def _sibling(self, step: int) -> None:
        tree = self.loom
        sibs = tree.siblings(tree.selected, self.order)
        i = sibs.index(tree.selected) + step
        self.select(sibs[i] if 0 <= i < len(sibs) else None)

    def action_next_sibling(self) -> None:
        self._sibling(1)

    def action_previous_sibling(self) -> None:
        self._sibling(-1)

    def action_root(self) -> None:
        self.select(self.loom.root_id)

    def action_branch_end(self) -> None:
        tree = self.loom
        nid = tree.selected
        while tree.n_children(nid):
            nid = tree.children(nid, self.order)[0]
        self.select(nid if nid != tree.selected else None)

    def _bookmark(self, step: int) -> None:
        target = next_bookmark(self.loom, self.loom.selected, step)
        if target is None:
            self.say("no bookmarks yet: b bookmarks the selected node")
        else:
            self.select(target)

    def action_next_bookmark(self) -> None:
        if not self._step_match(1):
            self._bookmark(1)

    def action_previous_bookmark(self) -> None:
        if not self._step_match(-1):
            self._bookmark(-1)

    def action_back(self) -> None:
        target = self.history.go_back(self.loom)
        if target is None:
            self.app.bell()
        else:
            self.select(target, record=False)

    def action_forward(self) -> None:
        target = self.history.go_forward(self.loom)
        if target is None:
            self.app.bell()
        else:
            self.select(target, record=False)

    @on(LoomTree.NodeHighlighted)
    def _line_highlighted(self, event: LoomTree.NodeHighlighted[Any]) -> None:
        self._follow_line(event.node)

    def _follow_line(self, tnode: TreeNode[Any]) -> None:
        """Select the line the outline's cursor is on (a key there, or the mouse)."""
        line = tnode.data
        if (tnode is not self.tree_view.cursor_node or not isinstance(line, Line)
                or line.focus not in self.loom):
            return
        if line.focus != self.loom.selected:
            self.select(line.focus)

    @on(DistributionPanel.Picked)
    def _row_picked(self, event: DistributionPanel.Picked) -> None:
        self.action_pick_rank(event.rank)

    def action_branch_up(self) -> None:
        self.branch.scroll_relative(y=-max(1, self.branch.size.height - 2), animate=False)

    def action_branch_down(self) -> None:
        self.branch.scroll_relative(y=max(1, self.branch.size.height - 2), animate=False)

    # ------------------------------------------------------------------ token cursor
    def _tokens(self) -> int:
        n = self.loom.node(self.loom.selected).n_tokens
        if not n:
            self.say("this node has no tokens to move over", severity="warning")
        return n

    def action_token_left(self) -> None:
        self.token_cursor = self.cursor.step(self._tokens(), -1)

    def action_token_right(self) -> None:
        self.token_cursor = self.cursor.step(self._tokens(), 1)

    def action_word_left(self) -> None:
        if self._tokens():
            self.token_cursor = self.cursor.word(self.loom.node(self.loom.selected).pieces(), -1)

    def action_word_right(self) -> None:
        if self._tokens():
            self.token_cursor = self.cursor.word(self.loom.node(self.loom.selected).pieces(), 1)

    def action_segment_start(self) -> None:
        self.token_cursor = self.cursor.end(self._tokens(), last=False)

    def action_segment_end(self) -> None:
        self.token_cursor = self.cursor.end(self._tokens(), last=True)

    def action_cancel(self) -> None:
        if self.generating and self.cancel_event is not None:
            self.cancel_event.set()
            self.say("cancelling: keeping what was generated")
        elif self.autolooming:
            self.autoloom_bar.cancel()
            self.say("stopping the autoloom run: keeping what it grew")
        elif self.queued:
            names = ", ".join(name for name, _ in self.queued)
            self.queued.clear()
            self.say(f"dropped: {names}")
            self.update_status()
            self.refresh_bindings()
        elif self.token_cursor is not None:
            self.token_cursor = None
        elif self.search_bar.active:
            self.search_bar.end()

    # ------------------------------------------------------------------ the model
    def need_model(self, what: str, run: Callable[[], None]) -> bool:
        """Whether the model is here. While it loads, ``run`` is queued (shown in the status
        bar, esc drops it) and runs once it is ready."""
        if self.pred is not None:
            return True
        if self.loom_app.model_loading:
            self.queued.append((what, run))
            self.say(f"{what} runs when the model is ready (esc drops it)")
            self.update_status()
            self.refresh_bindings()
        else:
            self.report(what, "no model is loaded (start with --model NAME)")
        return False

    def model_ready(self, error: str | None) -> None:
        """The App loaded the model (or failed to): run what was queued, redraw."""
        queued, self.queued = self.queued, []
        if error is None:
            for _, run in queued:
                run()
        elif queued:
            self.say(f"dropped: {', '.join(n for n, _ in queued)} (no model)",
                     severity="warning")
        self.show_selection()
        self.refresh_bindings()

    @work(description="distribution", thread=True, group="distribution", exit_on_error=False)
    def _distribution(self, tree: Tree, pred: Any, stamp: grow.Stamp, top_k: int = TOP_K
                      ) -> tuple[Any, Any]:
        with tree.lock:  # kept from an earlier switch to this predictor: no model call
            kept = kept_distribution(tree.node(stamp.node_id), pred.model_id, top_k) if (
                stamp.node_id in tree and top_k <= TOP_K) else None  # `+` asks for more
        return stamp, kept or pred.distribution(tree, stamp.node_id, top_k)

    # ------------------------------------------------------------------ more alternatives
    def _more_here(self) -> Choices | None:
        """The alternatives computed on demand for the token cursor's position, if they are
        still true: the same node, context and position, and the model now loaded."""
        more, cursor, pred = self.more, self.token_cursor, self.pred
        if more is None or cursor is None or pred is None:
            return None
        stamp, model, at, choices = more
        tree = self.loom
        if (stamp.node_id != tree.selected or at != cursor or model != pred.model_id
                or not stamp.valid(tree)):
            return None
        return choices

    def action_more_alternatives(self) -> None:
        """Every alternative the model gives: at the token cursor, the distribution before
        that token (the token stored only a few); else the next token's top ``MORE_K``."""
        if not self.need_model("more alternatives", self.action_more_alternatives):
            return
        tree, pred, nid = self.loom, self.pred, self.loom.selected
        if self.token_cursor is None:
            self.dist_pending = grow.Stamp.of(tree, nid)
            self.update_status()
            self._distribution(tree, pred, self.dist_pending, MORE_K)
            return
        if self._more_here() is not None:
            return
        self.more_pending = f"computing the alternatives at token {self.token_cursor}…"
        self.update_status()
        self._more(tree, pred, grow.Stamp.of(tree, nid), self.token_cursor)

    @work(description="more", thread=True, group="more", exclusive=True, exit_on_error=False)
    def _more(self, tree: Tree, pred: Any, stamp: grow.Stamp, at: int
              ) -> tuple[grow.Stamp, str, int, Choices]:
        top = grow.distribution_at(tree, pred, stamp.node_id, at, MORE_K).top
        return stamp, str(pred.model_id), at, top

    def _more_done(self, result: tuple[grow.Stamp, str, int, Choices]) -> None:
        self.more = result
        if self._more_here() is not None:
            self.show_predictor()

    def _distribution_done(self, result: tuple[grow.Stamp, Any]) -> None:
        stamp, dist = result
        if self.dist_pending == stamp:
            self.dist_pending = None
            self.update_status()
        tree = self.loom
        if not stamp.valid(tree):
            if tree.selected == stamp.node_id:  # computed for an old context: again
                self.show_predictor()
            return
        cur = tree.node(stamp.node_id).distribution
        if (cur is not None and cur.model == dist.model and cur.entropy is not None
                and len(cur.top) > len(dist.top)):
            return  # `+` stored more of the same distribution meanwhile: keep it
        tree.set_distribution(stamp.node_id, dist)
        if tree.selected == stamp.node_id and self.token_cursor is None:
            self.show_predictor()
            self.query_one("#info", InfoBar).update(node_info(tree, self.paths), layout=False)
        self.tree_view.relabel(stamp.node_id)
        self.loom_app.schedule_autosave()

    # ------------------------------------------------------------------ worker results
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker results and failures arrive."""
        worker = event.worker
        name = worker.name
        self.loom_app.show_notes()
        if event.state == WorkerState.ERROR:
            error = worker.error
            assert error is not None
            if name == "_distribution":
                self.dist_pending = None
                self.update_status()
            self._finish(name)
            what = {"_expand": "expand", "_pick": "pick", "_type": "type",
                    "_distribution": "distribution", "_adopt": "cache",
                    "_more": "more alternatives"}.get(name, name)
            self.report(what, one_line(error))
        elif event.state == WorkerState.CANCELLED:
            self._finish(name)
        elif event.state == WorkerState.SUCCESS:
            result: Any = worker.result
            if name == "_distribution":
                self._distribution_done(result)
            elif name == "_more":
                self._finish(name)
                self._more_done(result)
            elif name in ("_expand", "_pick", "_type"):
                self._finish(name)
                self._grown(result)

    def _finish(self, name: str) -> None:
        if name == "_expand":
            self.generating = False
            self.stream = None
            self.expanding = None
            self.tree_view.clear_pending()
            self.loom_app.growth_finished()
        elif name in ("_pick", "_type"):
            self.busy = None
            self.update_status()
        elif name == "_more":
            self.more_pending = None
            self.update_status()

    def _grown(self, growth: grow.Growth) -> None:
        """Phase two on the main thread: attach (one undo step), then adopt in a worker."""
        tree = self.loom
        if growth.stamp.tree_id != id(tree):
            return
        nodes: list[Node] = self.change(lambda t: grow.attach(t, growth),
                                        what="add") or []
        maker = self.loom_app.predictor_for(growth.model)  # its caches: not another model's
        if nodes and maker is not None:
            self._adopt(tree, maker, nodes, growth)
        if growth.cancelled:
            self.say(f"cancelled: kept {plural(len(nodes), 'partial rollout')}")

    @work(description="adopt", thread=True, group="adopt", exit_on_error=False)
    def _adopt(self, tree: Tree, pred: Any, nodes: list[Node], growth: grow.Growth) -> None:
        """Hand the computed KV caches to the predictor (it takes its lock: not on the loop)."""
        grow.adopt(tree, pred, nodes, growth)

    # ------------------------------------------------------------------ sampling
    def action_expand(self) -> None:
        if self.refuse_edit("expand"):
            return
        tree = self.loom
        nid = tree.selected
        if not self.need_model("expand", lambda: self._start_expand(nid)):
            return
        self._start_expand(nid)

    def _start_expand(self, nid: str) -> None:
        if self.refuse_edit("expand"):  # queued while the model loaded, and a run began since
            return
        tree, pred = self.loom, self.pred
        if self.generating:
            self.say("already generating: esc cancels", severity="warning")
            return
        if nid not in tree:
            self.say("the node to expand was deleted", severity="warning")
            return
        window = getattr(pred, "context_window", None)
        try:
            sampler = tree.sampler.validated(window)
        except ValueError as exc:
            self.report("expand", one_line(exc))
            return
        if window and sampler.max_tokens > window // 2:
            sampler = sampler.with_(max_tokens=window // 2)
            self.say(f"max tokens {tree.sampler.max_tokens} is over half the model's "
                     f"{window}-token window: sampling {sampler.max_tokens} (recorded)",
                     severity="warning", timeout=6)
        seed = tree.seed if tree.seed is not None else grow.new_seed()
        try:
            grow.check_seed(seed + sampler.n - 1)
        except LoomError as exc:
            self.report("expand", one_line(exc))
            return
        self.cancel_event = threading.Event()
        self.expanding = grow.Stamp.of(tree, nid)
        self.stream = StreamState([""] * sampler.n, [0] * sampler.n)
        self.tree_view.show_pending(nid, sampler.n)
        self.generating = True
        self._expand(tree, pred, nid, sampler, seed, self.cancel_event, self.expanding)

    @work(description="expand", thread=True, exclusive=True, group="expand", exit_on_error=False)
    def _expand(self, tree: Tree, pred: Any, node_id: str, sampler: Sampler, seed: int,
                cancel: threading.Event, stamp: grow.Stamp) -> grow.Growth:
        texts = [""] * sampler.n
        tokens = [0] * sampler.n
        last = [0.0]
        keys_first = self.loom_app.yield_to_keys

        def on_token(i: int, seg: Any) -> None:
            texts[i] = seg.text
            tokens[i] = len(seg.token_ids)
            now = time.monotonic()
            if now - last[0] >= STREAM_INTERVAL:
                last[0] = now
                self.post_message(ExpandProgress(stamp, StreamState(list(texts),
                                                                    list(tokens))))
            keys_first(cancel)

        return grow.sample(tree, pred, node_id, sampler, seed, on_token=on_token, cancel=cancel)

    def on_expand_progress(self, message: ExpandProgress) -> None:
        if message.stamp != self.expanding or not self.generating:
            return
        self.stream = message.state
        if time.monotonic() - self.loom_app.last_key < KEYS_FIRST:
            # keys first: while the user is pressing them, streamed rows wait a moment
            if self._stream_timer is None:
                self._stream_timer = self.set_timer(KEYS_FIRST, self._draw_stream)
            return
        self._draw_stream()

    def _draw_stream(self) -> None:
        self._stream_timer = None
        if not self.generating or self.stream is None:
            return
        self.stream_updates += 1
        self.tree_view.update_pending(self.stream.texts)
        self.update_status()

    # ------------------------------------------------------------------ picking and typing
    def action_pick_rank(self, rank: int) -> None:
        if self.refuse_edit("pick"):
            return
        tree = self.loom
        nid = tree.selected
        if self.token_cursor is not None:
            at, more = self.token_cursor, self._more_here()
            model = self.pred.model_id if more is not None else None
            self.change(lambda t: grow.branch_at(t, nid, at, rank, choices=more, model=model))
            return
        dist = tree.node(nid).distribution
        if dist is None:
            self.say("the distribution is not computed yet", severity="warning")
            return
        if rank > len(dist.top):
            self.say(f"only {len(dist.top)} tokens are stored here", severity="warning")
            return
        pred = self.pred
        if pred is None:  # the stored distribution is enough: no need to wait for the model
            self.change(lambda t: grow.pick_stored(t, nid, rank))
            return
        tid, text, _ = dist.top[rank - 1]
        same_model = dist.model == pred.model_id and tid is not None
        self.busy = f"picking {inline(text)!r}…"
        self.update_status()
        self._pick(tree, pred, nid, tid if same_model else None, text, dist.model)

    @work(description="pick", thread=True, group="score", exit_on_error=False)
    def _pick(self, tree: Tree, pred: Any, node_id: str, token_id: int | None, text: str,
              made_by: str | None) -> grow.Growth:
        if token_id is None:
            # A distribution another model made: its ids mean nothing to this model. The
            # shown text, re-tokenised here, must be one token (choose_token refuses if not).
            token_id = grow.choose_token(tree, pred, node_id, token_text=text)
            self.app.call_from_thread(
                self.say, f"{inline(text)!r} is from {made_by or 'another model'}'s "
                f"distribution: picked {pred.model_id}'s token {token_id} for it")
        return grow.score_tokens(tree, pred, node_id, [token_id])

    def action_type_text(self) -> None:
        if self.refuse_edit("type"):
            return
        nid = self.loom.selected

        def done(text: str | None) -> None:
            if not text:
                return
            if self.need_model("type", lambda: self._start_type(nid, text)):
                self._start_type(nid, text)

        self.app.push_screen(TextPrompt(f"Type text to add after node {short(nid, 14)}",
                                        hint="ctrl+s / F2: add · esc: cancel"), done)

    def _start_type(self, nid: str, text: str) -> None:
        if self.refuse_edit("type"):  # queued while the model loaded, and a run began since
            return
        if nid not in self.loom:
            self.say("the node to type after was deleted", severity="warning")
            return
        self.busy = f"scoring {len(text):,} typed characters…"
        self.update_status()
        self._type(self.loom, self.pred, nid, text)

    @work(description="type", thread=True, group="score", exit_on_error=False)
    def _type(self, tree: Tree, pred: Any, node_id: str, text: str) -> grow.Growth:
        return grow.score_text(tree, pred, node_id, text)

    # ------------------------------------------------------------------ editing
    def action_edit(self) -> None:
        if self.refuse_edit("edit"):
            return
        tree = self.loom
        nid = tree.selected
        root = nid == tree.root_id
        title = ("Edit the prompt (in place: one undo step; later scores become stale)" if root
                 else f"Edit node {short(nid, 14)} (makes an edited fork)")

        def done(text: str | None) -> None:
            if text is None or nid not in tree or text == tree.node(nid).text:
                return
            if root:
                self.change(lambda t: t.edit_prompt(text))
                self.tree_view.load(tree, self.order)
                self.show_selection()
            else:
                self.change(lambda t: t.edit(nid, text))

        self.app.push_screen(TextPrompt(title, tree.node(nid).text), done)

    def action_split(self) -> None:
        if not self.token_cursor:
            self.say("move the token cursor ([ or ]) to where the split goes",
                     severity="warning")
            return
        nid, at = self.loom.selected, self.token_cursor
        self.change(lambda t: t.split(nid, at_token=at))

    def action_merge(self) -> None:
        nid = self.loom.selected
        self.change(lambda t: t.merge(nid))

    def action_delete(self) -> None:
        nid = self.loom.selected
        doomed = self.change(lambda t: t.delete(nid))
        if doomed:
            self.say(f"deleted {plural(len(doomed), 'node')}: u undoes")

    def action_bookmark(self) -> None:
        nid = self.loom.selected
        on_ = not self.loom.node(nid).bookmarked
        self.change(lambda t: t.set_bookmark(nid, on_), keep_cursor=True)

    def action_note(self) -> None:
        if self.refuse_edit("note"):
            return
        tree = self.loom
        nid = tree.selected

        def done(text: str | None) -> None:
            if text is not None and nid in tree and text != tree.node(nid).note:
                self.change(lambda t: t.set_note(nid, text), keep_cursor=True)

        self.app.push_screen(TextPrompt(f"Note on node {short(nid, 14)}",
                                        tree.node(nid).note), done)

    def _undo_redo(self, patch: Patch | None, what: str) -> None:
        if patch is None:
            self.say(f"nothing to {what}")
            return
        self.after_change(patch)
        self.say(f"{what}: {patch.label}", timeout=2)

    def action_undo(self) -> None:
        if self.refuse_edit("undo"):
            return
        try:
            patch = self.loom.undo()
        except LoomError as exc:
            self.report("undo", one_line(exc))
            return
        self._undo_redo(patch, "undo")

    def action_redo(self) -> None:
        if self.refuse_edit("redo"):
            return
        try:
            patch = self.loom.redo()
        except LoomError as exc:
            self.report("redo", one_line(exc))
            return
        self._undo_redo(patch, "redo")

    # ------------------------------------------------------------------ view
    def action_compare(self) -> None:
        """Show (or hide) the compare panel in place of the distribution panel."""
        self.comparing = not self.comparing
        panel = self.query_one(ComparePanel)
        panel.forget_failures()
        panel.display = self.comparing
        self.dist_panel.display = not self.comparing
        self.show_predictor()

    def action_toggle_order(self) -> None:
        self.order = "probability" if self.order == "created" else "created"
        self.say(f"children ordered by {self.order}", timeout=2)

    def action_cycle_colour(self) -> None:
        self.colour = COLOUR_MODES[(COLOUR_MODES.index(self.colour) + 1) % len(COLOUR_MODES)]

    def action_sampler(self) -> None:
        if self.refuse_edit("sampler"):
            return
        tree = self.loom
        window = getattr(self.pred, "context_window", None)

        def done(result: tuple[Sampler, int | None] | None) -> None:
            if result is None:
                return
            sampler, seed = result
            if sampler != tree.sampler or seed != tree.seed:
                tree.set_sampler(sampler, seed)
                self.loom_app.schedule_autosave()
            self.say("sampler: " + ", ".join(
                f"{k}={v}" for k, v in sampler.to_json().items()), timeout=3)

        self.app.push_screen(SamplerScreen(tree.sampler, tree.seed, window), done)

    # ------------------------------------------------------------------ leaving
    def stop_growing(self) -> bool:
        """Cancel an expansion (its partial rollouts are kept when it ends); returns whether
        one was running."""
        if self.generating and self.cancel_event is not None:
            self.cancel_event.set()
            return True
        return self.autoloom_bar.cancel()

    # ------------------------------------------------------------------ search
    def action_search(self) -> None:
        self.search_bar.open(self.loom)

    def _step_match(self, step: int) -> bool:
        """While a search is active: select the next/previous match (True if it was)."""
        bar = self.search_bar
        if not bar.active:
            return False
        target = bar.step(self.loom.selected, step)
        if target is None:
            self.say(f"no matches for {inline(bar.line)!r:.60}: esc ends the search")
        else:
            self.select(target)
            self.say(f"match {bar.index + 1}/{len(bar.matches)}", timeout=1)
        return True

    @on(SearchBar.Chosen)
    def _search_chosen(self, event: SearchBar.Chosen) -> None:
        self.select(event.node_id)
        self.tree_view.focus()

    @on(SearchBar.Updated)
    def _search_updated(self) -> None:
        self.tree_view.mark_matches(self.search_bar.hit_ids())
        self.show_branch()
        if self.search_bar.active != self._search_shown:  # esc's state in the footer
            self._search_shown = self.search_bar.active
            self.refresh_bindings()

    @on(SearchBar.Closed)
    def _search_closed(self) -> None:
        self.tree_view.focus()

    # ------------------------------------------------------------------ autoloom
    def refuse_edit(self, what: str) -> bool:
        """While an autoloom run grows the tree, refuse an edit in one line (True)."""
        if not self.autolooming:
            return False
        self.say(f"{what}: refused while autoloom grows the tree (its undo step would take "
                 "the edit); esc stops the run", severity="warning")
        return True

    def action_autoloom(self) -> None:
        if self.refuse_edit("autoloom"):
            return
        nid = self.loom.selected

        def done(plan: Plan | None) -> None:
            if plan is None:
                return
            self.last_plan = plan
            if self.need_model("autoloom", lambda: self._start_autoloom(nid, plan)):
                self._start_autoloom(nid, plan)

        self.app.push_screen(AutoloomScreen(self.last_plan, self.loom.sampler.max_tokens), done)

    def _start_autoloom(self, nid: str, plan: Plan) -> None:
        tree, pred = self.loom, self.pred
        if self.generating or self.autolooming:
            self.say("already growing: esc cancels", severity="warning")
            return
        if self.busy:  # a pick or typed text being scored would be refused when it lands
            self.say(f"autoloom: wait until {self.busy.rstrip('…')} is done",
                     severity="warning")
            return
        if nid not in tree:
            self.say("the node to grow from was deleted", severity="warning")
            return
        window = getattr(pred, "context_window", None)
        try:
            sampler = tree.sampler.with_(n=plan.width).validated(window)
        except ValueError as exc:
            self.report("autoloom", one_line(exc))
            return
        self.token_cursor = None
        self.autoloom_bar.start(tree, pred, nid, plan, sampler, self._autoloom_attached)
        self.refresh_bindings()

    def _autoloom_attached(self, kids: list[str]) -> None:
        """A step of the run attached its children (main thread): redraw their lines."""
        tree = self.loom
        touched = {k for k in kids if k in tree}
        if touched:
            parent = tree.parent(next(iter(touched)))
            if parent is not None:
                touched.add(parent)
            self.tree_view.refresh_nodes(touched)
            self.update_status()
        self.loom_app.schedule_autosave()  # each step is saved as it lands, not at the end

    @on(AutoloomBar.Finished)
    def _autoloom_finished(self, event: AutoloomBar.Finished) -> None:
        tree = self.loom
        self.last_run = result = event.result
        if result is None:
            self.report("autoloom", one_line(event.error or RuntimeError("stopped")))
        else:
            if result.best is not None and result.best in tree:
                self.select(result.best)
            best = ("" if result.best is None else
                    f"; best leaf {short(result.best, 14)} (score {result.best_score:.3f})")
            self.say(f"autoloom run {result.run}: {plural(len(result.made), 'node')} "
                     f"({result.stopped}){best}; u undoes the whole run", timeout=6)
        self.after_change(None, keep_cursor=True)
        self.loom_app.growth_finished()
