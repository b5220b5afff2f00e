"""The compare panel (``C``): the selected node's next-token distribution under the active
predictor (A) and another loaded one (B), side by side, with KL(A || B) and total variation
from :mod:`loomtui.core.compare` (the numbers ``loomtui compare`` prints).

B's distribution is computed by a thread worker of this panel and kept on the node under
``scores`` (so showing it again, or switching to B, costs no model call). Token texts are
untrusted: drawn as plain :class:`~textual.content.Content` with controls made visible.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from loomtui.core import grow
from loomtui.core.compare import Comparison, compare, kept_distribution
from loomtui.core.node import Distribution, TokenScores
from loomtui.core.text import inline, one_line, short, visible
from loomtui.core.tree import Tree
from loomtui.ui.predictors import label

TOP_K = 20
SETTLE = 0.1
"""Seconds the selection rests before B's distribution is asked for."""
NOTE = "matched by text; remaining mass lumped into one 'other' bucket: lower bounds"


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{100 * p:.1f}%"


def _rank(r: int | None) -> str:
    return "-" if r is None else str(r)


class ComparePanel(Vertical):
    """Two predictors' next-token distributions after the selected node."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    ComparePanel {
        display: none;
        width: 48;
        border: round $primary-background-lighten-2;
    }
    LoomScreen.narrow ComparePanel { width: 38; }
    LoomScreen.stacked ComparePanel { width: 100%; height: 12; }
    ComparePanel #cmp-title { height: auto; padding: 0 1; text-wrap: nowrap;
                              text-overflow: ellipsis; }
    ComparePanel #cmp-scroll { height: 1fr; scrollbar-size-vertical: 1; }
    ComparePanel #cmp-table { text-wrap: nowrap; text-overflow: clip; padding: 0 1; }
    ComparePanel #cmp-stats { height: auto; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.comparison: Comparison | None = None
        """What the panel shows (tests read it); None while a side is missing."""
        self.message = ""
        self._pending: set[tuple[grow.Stamp, str]] = set()
        self._failed: dict[tuple[grow.Stamp, str], str] = {}
        self._shown: tuple[Tree, str, Any, Any] | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="cmp-title")
        with VerticalScroll(id="cmp-scroll"):
            yield Static("", id="cmp-table")
        yield Static("", id="cmp-stats")

    def forget_failures(self) -> None:
        """Let B's distributions that failed be asked for again (the panel was reopened)."""
        self._failed.clear()

    # ------------------------------------------------------------------ showing
    def show(self, tree: Tree, node_id: str, active: Any, other: Any) -> None:
        """Show A (``active``) against B (``other``) after ``node_id``; B's distribution is
        computed in a worker when the node does not keep it."""
        self._shown = (tree, node_id, active, other)
        self.comparison = None
        self.border_title = Content(f"Compare · node {inline(short(node_id, 14))}")
        head = ""
        if active is None:
            self._message(head, [], "no predictor is loaded")
            return
        names = [f"A {label(active)} (active)",
                 f"B {label(other)}" if other is not None else "B -"]
        if other is None:
            self._message(head, names, "only one predictor is loaded: P loads another to "
                          "compare with")
            return
        if node_id not in tree:  # deleted while B was computed
            self._message(head, names, "the node was deleted")
            return
        node = tree.node(node_id)
        a = kept_distribution(node, active.model_id, TOP_K)
        b = kept_distribution(node, other.model_id, TOP_K)
        waiting = []
        if a is None:
            waiting.append("A")
        if b is None:
            stamp = grow.Stamp.of(tree, node_id)
            key = (stamp, str(other.model_id))
            if key in self._failed:
                self._message(head, names, f"B failed: {self._failed[key]}")
                return
            waiting.append("B")
            if key not in self._pending:  # once the selection rests (arrows held: no flood)
                if self._timer is not None:
                    self._timer.stop()
                self._timer = self.set_timer(SETTLE, lambda: self._start(key, tree, other))
        if a is None or b is None:
            self._message(head, names, f"computing {' and '.join(waiting)}…")
            return
        self._draw(head, names, compare(a, b))

    def _start(self, key: tuple[grow.Stamp, str], tree: Tree, pred: Any) -> None:
        self._timer = None
        if key in self._pending or self._shown is None or self._shown[1] != key[0].node_id:
            return
        self._pending.add(key)
        self.run_worker(lambda: _compute(key, tree, pred), thread=True, group="compare",
                        name="compare_other", exit_on_error=False)

    def on_resize(self) -> None:
        if self._shown is not None and self.display:
            self.show(*self._shown)

    def _message(self, head: str, names: list[str], message: str) -> None:
        self.message = message
        self._title(head, names)
        self.query_one("#cmp-table", Static).update(Content(one_line(message)), layout=False)
        self.query_one("#cmp-stats", Static).update("", layout=False)

    def _title(self, head: str, names: list[str]) -> None:
        lines = [*([Content.styled(inline(head), "bold")] if head else []),
                 *(Content(inline(n)) for n in names)]
        self.query_one("#cmp-title", Static).update(Content("\n").join(lines))

    def _draw(self, head: str, names: list[str], c: Comparison) -> None:
        self.comparison = c
        self.message = ""
        self._title(head, names)
        # the table's width: the panel's, less the table's padding and the scrollbar
        width = max(6, (self.content_size.width or 36) - 3 - 22)
        rows = [Content.styled(f"{'token':<{width}} {'A':>6} {'#A':>3} {'B':>6} {'#B':>3}",
                               "dim")]
        # the top tokens of both sides first (the core orders by A's probability)
        for row in sorted(c.rows, key=lambda r: -max(r.p_active or 0.0, r.p_other or 0.0)):
            shown = visible(row.text)
            if len(shown) > width:
                shown = shown[: width - 1] + "…"
            rows.append(Content.assemble(
                (shown.ljust(width), "bold"),
                f" {_pct(row.p_active):>6} {_rank(row.rank_active):>3}"
                f" {_pct(row.p_other):>6} {_rank(row.rank_other):>3}"))
        self.query_one("#cmp-table", Static).update(Content("\n").join(rows))
        self.query_one("#cmp-stats", Static).update(Content("\n".join(stats_lines(c))))

    def text(self) -> str:
        """Everything the panel shows, as plain text (tests)."""
        parts = (self.query_one(f"#cmp-{part}", Static).content
                 for part in ("title", "table", "stats"))
        return "\n".join(p.plain if isinstance(p, Content) else str(p) for p in parts)

    # ------------------------------------------------------------------ B's worker
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "compare_other":
            return
        event.stop()
        if event.state != WorkerState.SUCCESS:
            return
        result: Any = event.worker.result
        key, dist, error = result
        self._pending.discard(key)
        if dist is not None:
            self._keep(key[0], key[1], dist)
        else:
            self._failed[key] = error
            report = getattr(self.app, "report", None)
            if report is not None:
                report("compare", error)
        notes = getattr(self.app, "show_notes", None)
        if notes is not None:
            notes()
        shown = self._shown
        if shown is not None and self.display and shown[1] in shown[0]:
            self.show(*shown)

    def _keep(self, stamp: grow.Stamp, model: str, dist: Distribution) -> None:
        """Keep B's distribution on the node (under ``scores``), unless its context changed
        meanwhile or it is the node's current distribution already."""
        tree = self._shown[0] if self._shown is not None else None
        if tree is None or not stamp.valid(tree):
            return
        node = tree.node(stamp.node_id)
        current = node.distribution
        if current is not None and current.model == model:
            return
        old = node.scores.get(model) or TokenScores()
        if tree.update_if(stamp.node_id, {"distribution": current},
                          scores={**node.scores, model: replace(old, distribution=dist)}):
            save = getattr(self.app, "schedule_autosave", None)
            if save is not None:
                save()


def _compute(key: tuple[grow.Stamp, str], tree: Tree, pred: Any
             ) -> tuple[tuple[grow.Stamp, str], Distribution | None, str]:
    """B's distribution (worker thread), or the one-line reason it failed."""
    try:
        return key, pred.distribution(tree, key[0].node_id, TOP_K), ""
    except Exception as exc:  # any failure of the other predictor is one line in the panel
        return key, None, one_line(str(exc)) or type(exc).__name__


def stats_lines(c: Comparison) -> list[str]:
    """The numbers under the table: the 'other' buckets, KL, TV and what they mean."""
    return [f"other bucket A {_pct(c.other_active)} · B {_pct(c.other_other)}",
            f"KL(A || B) >= {c.kl:.4f} nats",
            f"total variation >= {c.tv:.4f}",
            NOTE]
