"""The search bar of the loom screen: a query line, a one-line status and the results.

It is docked at the bottom of the screen (the tree and branch stay in sight). The line is
:mod:`loomtui.core.search_line`'s syntax (text and ``loomtui search``'s flags). Each change of
the line, after a short pause, runs the search in an exclusive thread worker; a result that
arrives after a newer line was typed is dropped. The bar keeps the matches while a search is
active (after ``enter`` the result list folds away, the line stays): the screen asks it for
the next or previous match (``n``/``N``), the row marks and the branch's highlighted spans.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import ClassVar, NamedTuple

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from loomtui.core import search as core_search
from loomtui.core.errors import LoomError
from loomtui.core.search import Match
from loomtui.core.search_line import SYNTAX, parse_line, toggle_flag
from loomtui.core.text import inline, one_line, short
from loomtui.core.tree import Tree
from loomtui.ui.format import plural

DEBOUNCE = 0.12
"""Seconds after the last keystroke before the line is searched."""
LIST_LIMIT = 50
"""Result rows listed (n/N step through every match)."""
SNIPPET = 28
PLACEHOLDER = ("find: text --regex --context --origin sampled --tag T --max-logprob -5 … "
               "(alt+r regex · alt+c context · enter selects · esc closes)")


class _Found(NamedTuple):
    """A search's results, as its worker hands them over."""

    generation: int
    line: str
    revision: int
    matches: list[Match]
    by_id: dict[str, int]
    """Each matching node's index in ``matches``."""
    error: str | None
    took_ms: float | None


def result_row(tree: Tree, match: Match) -> Content:
    """One result: the node's path (short ids), depth, and the match in its text; node text
    is untrusted, so it is made terminal-safe and never parsed as markup."""
    node = tree.node(match.node_id)
    path = tree.path(match.node_id)
    shown = "/".join(path[-4:])
    if len(path) > 4:
        shown = "…/" + shown
    a, b = match.segment_span
    if a < 0:  # a context match begun in an ancestor
        text = tree.context_text(match.node_id)
        a, b = match.start, match.end
    else:
        text = node.text
    if a == b:  # filters alone: the start of the node's text
        before, hit, after = "", "", text[:2 * SNIPPET]
    else:
        before, hit, after = text[max(0, a - SNIPPET):a], text[a:b], text[b:b + SNIPPET]
    lead = "…" if a > SNIPPET else ""
    return Content.assemble(
        (f"{short(inline(shown), 24):24s} ", "$text-muted"),
        (f"d{match.depth:<3}", "$text-muted"),
        lead + inline(before),
        (inline(hit[:80]), "bold reverse"),
        inline(after),
    )


class SearchBar(Vertical):
    """Hidden until opened (``/``); the screen gives it the tree when opening it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close search", show=True),
        Binding("alt+r", "toggle_flag('--regex')", "Regex", show=True),
        Binding("alt+c", "toggle_flag('--context')", "Context", show=True),
        Binding("down", "to_results", "Results", show=False),
    ]

    class Chosen(Message):
        """A result was chosen (enter): select its node."""

        def __init__(self, node_id: str) -> None:
            super().__init__()
            self.node_id = node_id

    class Updated(Message):
        """The matches changed (new results, or the search ended): redraw marks."""

    class Closed(Message):
        """The bar was closed (esc): the search ended."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.loom: Tree | None = None
        self.matches: list[Match] = []
        self.by_id: dict[str, int] = {}
        self.line = ""
        """The line whose results are shown."""
        self.error: str | None = None
        self.active = False
        """A search is active: n/N step through its matches, rows and spans are marked."""
        self.index = -1
        self.took_ms: float | None = None
        self.searches = 0
        """Searches whose results arrived (tests wait on it)."""
        self._generation = 0
        self._revision = -1
        self._timer: Timer | None = None
        self._enter_pending = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder=PLACEHOLDER, id="search-input", tooltip=SYNTAX)
        yield Static("", id="search-status")
        yield OptionList(id="search-results")

    @property
    def input(self) -> Input:
        return self.query_one("#search-input", Input)

    @property
    def results(self) -> OptionList:
        return self.query_one("#search-results", OptionList)

    @property
    def pending(self) -> bool:
        """A search was asked for and its results have not arrived."""
        return self._timer is not None or any(
            w.group == "search" and w.is_running for w in self.workers)

    # ------------------------------------------------------------ opening and closing
    def open(self, tree: Tree) -> None:
        """Show the bar with its list, focus the line, and warm the search's index."""
        self.loom = tree
        self.display = True
        self.results.display = True
        self.input.focus()
        if not self.active or tree.revision != self._revision:
            self._schedule(0.0)

    def action_close(self) -> None:
        self.end()
        self.post_message(self.Closed())

    def end(self) -> None:
        """End the search: hide the bar, forget the matches."""
        was = self.active or bool(self.matches)
        self._generation += 1
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.active = False
        self.matches, self.by_id, self.index = [], {}, -1
        self.display = False
        if was:
            self.post_message(self.Updated())

    def fold(self) -> None:
        """Keep the line and the matches, hide the result list (after a choice)."""
        self.results.display = False

    def action_toggle_flag(self, flag: str) -> None:
        self.input.value = toggle_flag(self.input.value, flag)
        self.input.cursor_position = len(self.input.value)

    def action_to_results(self) -> None:
        if self.results.option_count:
            self.results.display = True
            self.results.focus()
            if self.results.highlighted is None:
                self.results.highlighted = 0

    # ------------------------------------------------------------ searching
    @on(Input.Changed, "#search-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self._schedule(DEBOUNCE)

    def tree_changed(self) -> None:
        """The tree changed: search again (soon) if a search is active."""
        if self.active and self.loom is not None and self.loom.revision != self._revision:
            self._generation += 1  # a search under way holds ids that may be gone: drop it
            self._schedule(DEBOUNCE)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay or 0.001, self._start)

    def _start(self) -> None:
        self._timer = None
        if self.loom is None:
            return
        self._generation += 1
        self._search(self.loom, self.input.value, self._generation)

    @work(description="search", thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search(self, tree: Tree, line: str, generation: int) -> _Found:
        t0 = time.perf_counter()
        revision = tree.revision
        if not line.strip():
            core_search.prepare(tree)  # the index the next search reuses
            return _Found(generation, line, revision, [], {}, None, None)
        try:
            query = parse_line(line, time.time())
            found = core_search.search(tree, query)
        except LoomError as exc:
            return _Found(generation, line, revision, [], {}, one_line(str(exc)), None)
        by_id = {m.node_id: i for i, m in enumerate(found.matches)}  # here, not on the loop
        return _Found(generation, line, revision, found.matches, by_id, None,
                      1000 * (time.perf_counter() - t0))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        event.stop()
        if event.worker.group != "search":
            return
        if event.state == WorkerState.ERROR:
            self._show_error(one_line(str(event.worker.error)))
        elif event.state == WorkerState.SUCCESS:
            found = event.worker.result
            assert isinstance(found, _Found)
            if found.generation != self._generation or self.loom is None:
                return  # a newer line was typed, or the search ended
            self.searches += 1
            self._revision = found.revision
            if found.error is not None:
                self._enter_pending = False
                self._show_error(found.error)
            else:
                self._show(found)

    def _show_error(self, error: str) -> None:
        self.error = error
        self.query_one("#search-status", Static).update(
            Content.assemble(("⚠ ", "bold $error"), (error, "$error")))

    def _show(self, found: _Found) -> None:
        tree = self.loom
        assert tree is not None
        self.error = None
        line, matches = found.line, found.matches
        if any(m.node_id not in tree for m in matches):  # deleted since: search again
            self._schedule(0)
            return
        self.line = line
        self.took_ms = found.took_ms
        old = self.by_id.get(self.matches[self.index].node_id) if 0 <= self.index < len(
            self.matches) else None
        self.matches = matches
        self.by_id = found.by_id
        self.active = bool(line.strip())
        self.index = -1 if old is None else min(old, len(matches) - 1)
        rows = [Option(result_row(tree, m), id=m.node_id) for m in matches[:LIST_LIMIT]]
        self.results.set_options(rows)
        self._status()
        self.post_message(self.Updated())
        if self._enter_pending and not self.pending:
            self._enter_pending = False
            if matches:
                self._choose(0)

    def _status(self) -> None:
        n = len(self.matches)
        if not self.active:
            text = "type to search · " + PLACEHOLDER.split("(", 1)[1].rstrip(")")
        else:
            text = plural(n, "match", "matches")
            if 0 <= self.index < n:
                text = f"{self.index + 1}/{n} matches"
            if n > LIST_LIMIT:
                text += f" (first {LIST_LIMIT} listed)"
            if self.took_ms is not None:
                text += f" · {self.took_ms:.0f} ms"
            if n:
                text += " · enter selects · n/N step · esc ends the search"
        self.query_one("#search-status", Static).update(Content(text))

    # ------------------------------------------------------------ choosing and stepping
    @on(Input.Submitted, "#search-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.pending:  # chosen when the results arrive
            self._enter_pending = True
            return
        if self.error is not None or not self.matches:
            self.app.bell()
            return
        highlighted = self.results.highlighted
        self._choose(highlighted if highlighted is not None else max(self.index, 0))

    @on(OptionList.OptionSelected, "#search-results")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._choose(event.option_index)

    def _choose(self, index: int) -> None:
        if not 0 <= index < len(self.matches):
            return
        self.index = index
        self._status()
        self.fold()
        self.post_message(self.Chosen(self.matches[index].node_id))

    def step(self, selected: str, step: int) -> str | None:
        """The next (``step`` 1) or previous (-1) match from the selected node, wrapping;
        None when there are none left in the tree."""
        if not self.matches or self.loom is None:
            return None
        n = len(self.matches)
        at = self.by_id.get(selected, self.index)
        if at < 0:
            at = -1 if step > 0 else 0
        for k in range(1, n + 1):
            i = (at + step * k) % n
            if self.matches[i].node_id in self.loom:
                self.index = i
                self._status()
                if self.results.display and i < self.results.option_count:
                    self.results.highlighted = i
                return self.matches[i].node_id
        return None

    def hit_ids(self) -> Collection[str]:
        """The matching nodes (a view: no copy of a large result)."""
        return self.by_id.keys() if self.active else ()

    def spans(self, path: list[str]) -> list[tuple[int, int]]:
        """The matches' spans (offsets in the context text) of the nodes on ``path``."""
        if not self.active:
            return []
        out = []
        by_id, matches = self.by_id, self.matches
        for nid in path:
            i = by_id.get(nid)
            if i is not None:
                m = matches[i]
                if m.end > m.start:
                    out.append((m.start, m.end))
        return out
