"""The rollout tree as an outline: one line per chain of only children, children loaded lazily.

Textual's ``Tree`` widget walks expanded lines recursively, so it is never given a deep chain:
an unbranched run of nodes is one line (which remembers which of its nodes is selected), lines
are built only when their parent line is expanded, and when the branch to the selection has
more than ``MAX_DEPTH`` branch points the outline starts from a nearer ancestor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree as TreeWidget
from textual.widgets.tree import TreeNode

from loomtui.core.text import short
from loomtui.core.tree import ChildOrder, Tree
from loomtui.ui import compat
from loomtui.ui.format import ORIGIN_MARK, mean_prob

MAX_DEPTH = 200
"""Most branch points shown above the selected line (Textual's outline recurses per level)."""
KEEP_DEPTH = 150
PREVIEW = 48
MATCH_MARK = "◆"
MATCH_STYLE = "bold magenta"
"""A line holding a search match: ◆ in the mark column (a bookmarked one's ★ turns magenta)."""


@dataclass(slots=True)
class Line:
    """One outline line: the chain ``head`` .. ``chain[-1]``; ``focus`` is its selected node."""

    head: str
    chain: list[str]
    focus: str
    loaded: bool = False
    index: dict[str, int] = field(default_factory=dict)
    marked: bool = False
    hit: bool = False
    """A node of the line matches the active search."""

    def position(self, node_id: str) -> int:
        if not self.index or len(self.index) != len(self.chain):
            self.index = {n: i for i, n in enumerate(self.chain)}
        return self.index.get(node_id, -1)


@dataclass(slots=True)
class Pending:
    """A rollout being streamed (not in the tree yet)."""

    row: int
    shown: str = ""
    """The preview its row shows."""


class LoomTree(compat.OwnLineRefresh, TreeWidget[Line | Pending], inherit_bindings=False):
    """Outline of a :class:`~loomtui.core.tree.Tree`, updated line by line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move('cursor_up')", "Up", show=False),
        Binding("down", "move('cursor_down')", "Down", show=False),
        Binding("pageup", "move('page_up')", "Page up", show=False),
        Binding("pagedown", "move('page_down')", "Page down", show=False),
        Binding("home", "move('scroll_home')", "Top", show=False),
        Binding("end", "move('scroll_end')", "Bottom", show=False),
        Binding("enter", "toggle_node", "Fold", show=False),
    ]
    MOVES: ClassVar[frozenset[str]] = frozenset(
        {"cursor_up", "cursor_down", "page_up", "page_down", "scroll_home", "scroll_end"})

    cursor_moved: Callable[[TreeNode[Line | Pending]], None] | None = None
    """Called as soon as a key moves the cursor, so that the selection follows in the same
    frame: ``NodeHighlighted`` is handled after the frame with the moved cursor is drawn
    (two frames a key, 45-60 ms)."""

    def action_move(self, action: str) -> None:
        """A cursor key: Textual's action (one of :attr:`MOVES`), then the selection follows
        at once (:attr:`cursor_moved`)."""
        if action not in self.MOVES:
            return
        getattr(super(), f"action_{action}")()
        node = self.cursor_node
        if self.cursor_moved is not None and node is not None:
            self.cursor_moved(node)

    def scroll_to_line(self, line: int, animate: bool = True) -> None:
        """Bring a line into view in a jump: a line below the view lands a third of the view
        above its bottom (above it: below its top), so the next moves the same way need no
        scroll. Scrolling repaints the whole outline (30-45 ms a key in a big tree), and
        Textual's one-line scroll did so at every key held down past the edge."""
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height
        if height <= 0:  # not laid out yet (a session just opened): once it is
            if not self._scroll_waits:
                self._scroll_waits = True
                self.call_after_refresh(self._scroll_to_cursor)
            return
        if top <= line < top + height:
            return
        jump = height // 3
        target = line - height + 1 + jump if line >= top + height else line - jump
        self.scroll_to(y=max(0, min(target, self.max_scroll_y)), animate=False,
                       immediate=True)

    _scroll_waits = False

    def _scroll_to_cursor(self) -> None:
        self._scroll_waits = False
        node = self.cursor_node
        if node is not None and node.line >= 0 and self.scrollable_content_region.height > 0:
            self.scroll_to_line(node.line)

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.guide_depth = 2
        self.auto_expand = False
        self.loom: Tree | None = None
        self.order: ChildOrder = "created"
        self._lines: dict[str, TreeNode[Line | Pending]] = {}
        self._base = ""
        self._pending: list[TreeNode[Line | Pending]] = []
        self.matches: Collection[str] = ()
        """Nodes matching the active search (their lines are marked)."""

    # ------------------------------------------------------------ structure
    def _is_head(self, node_id: str, parent: str | None) -> bool:
        assert self.loom is not None
        return parent is None or parent == self.loom.root_id or self.loom.n_children(parent) > 1

    def head_of(self, node_id: str) -> str:
        """The first node of the line that holds ``node_id``."""
        loom = self.loom
        assert loom is not None
        cur = node_id
        while True:
            parent = loom.parent(cur)
            if self._is_head(cur, parent):
                return cur
            cur = parent  # type: ignore[assignment]

    def _new_line(self, head: str) -> Line:
        chain = self._chain(head)
        return Line(head, chain, chain[-1], marked=self._marked(chain), hit=self._hit(chain))

    def _hit(self, chain: list[str]) -> bool:
        matches = self.matches
        return bool(matches) and any(n in matches for n in chain)

    def _marked(self, chain: list[str]) -> bool:
        assert self.loom is not None
        return any(self.loom.node(n).bookmarked for n in chain)

    def _chain(self, head: str) -> list[str]:
        loom = self.loom
        assert loom is not None
        chain = [head]
        if head == loom.root_id:
            return chain
        succ = loom.graph.succ
        cur = head
        while len(succ[cur]) == 1:
            cur = next(iter(succ[cur]))
            chain.append(cur)
        return chain

    def _child_heads(self, line: Line) -> list[str]:
        assert self.loom is not None
        last = line.chain[-1]
        if self.loom.n_children(last) == 0:
            return []
        return self.loom.children(last, self.order)

    # ------------------------------------------------------------ labels
    def label_for(self, line: Line) -> Text:
        loom = self.loom
        assert loom is not None
        node = loom.node(line.focus if line.focus in loom else line.head)
        head = loom.node(line.head)
        text = Text(no_wrap=True, overflow="ellipsis")
        marked = line.marked
        if line.hit:
            text.append("★" if marked else MATCH_MARK, style=MATCH_STYLE)
        else:
            text.append("★" if marked else " ", style="bold yellow")
        text.append(ORIGIN_MARK.get(head.origin, "?"), style="dim")
        if line.head != loom.root_id:
            p = mean_prob(head)
            text.append(f"{'  ?' if p is None else f'{100 * p:3.0f}'}% ", style="cyan")
        else:
            text.append(" ")
        preview = ""
        for nid in line.chain:
            preview += loom.node(nid).text
            if len(preview) > PREVIEW:
                break
        text.append(short(preview, PREVIEW) or "∅", style="italic" if head.origin == "prompt"
                    else "")
        if len(line.chain) > 1:
            pos = line.position(line.focus) + 1
            text.append(f" ·{pos}/{len(line.chain)}", style="dim")
        if node.note:
            text.append(" ✎", style="dim")
        return text

    def _add_line(self, parent: TreeNode[Line | Pending], head: str) -> TreeNode[Line | Pending]:
        line = self._new_line(head)
        tnode = parent.add(self.label_for(line), line,
                           allow_expand=self.loom is not None and bool(self._child_heads(line)))
        self._lines[head] = tnode
        return tnode

    def _populate(self, tnode: TreeNode[Line | Pending]) -> None:
        line = tnode.data
        if not isinstance(line, Line) or line.loaded:
            return
        line.loaded = True
        for head in self._child_heads(line):
            self._add_line(tnode, head)

    def _drop(self, tnode: TreeNode[Line | Pending]) -> None:
        """Forget the lines under (and including) ``tnode`` before it is removed."""
        stack = [tnode]
        while stack:
            t = stack.pop()
            if isinstance(t.data, Line) and self._lines.get(t.data.head) is t:
                del self._lines[t.data.head]
            stack.extend(t.children)

    # ------------------------------------------------------------ public
    def load(self, loom: Tree, order: ChildOrder = "created", base: str | None = None) -> None:
        """Show ``loom`` from scratch (only on open/new, never per keypress)."""
        self.loom = loom
        self.order = order
        self._lines.clear()
        self._pending = []
        self.clear()
        base = base or loom.root_id
        self._base = base
        line = self._new_line(base)
        self.root.data = line
        self.root.set_label(self.label_for(line) if base == loom.root_id else
                            Text("⋯ ", style="dim") + self.label_for(line))
        self._lines[base] = self.root
        self._populate(self.root)
        self.root.expand()

    def line_of(self, node_id: str) -> TreeNode[Line | Pending] | None:
        if self.loom is None or node_id not in self.loom:
            return None
        return self._lines.get(self.head_of(node_id))

    def reveal(self, node_id: str, heads: list[str] | None = None) -> None:
        """Expand the lines down to ``node_id``, focus it in its line, move the cursor there.

        ``heads`` are the line heads on the path to ``node_id`` (computed when not given).
        """
        loom = self.loom
        if loom is None:
            return
        if heads is None:
            path = loom.path(node_id)
            heads = [n for i, n in enumerate(path)
                     if i <= 1 or loom.n_children(path[i - 1]) > 1]
        if not (self._base in heads and len(heads) - heads.index(self._base) <= MAX_DEPTH):
            self.load(loom, self.order,
                      loom.root_id if len(heads) <= MAX_DEPTH else heads[-KEEP_DEPTH])
        start = heads.index(self._base)
        tnode = self.root
        for head in heads[start + 1:]:
            self._populate(tnode)
            if not tnode.is_expanded:
                tnode.expand()
            nxt = self._lines.get(head)
            if nxt is None:  # out of sync: rebuild this line's children
                self.reconcile(tnode)
                nxt = self._lines[head]
            tnode = nxt
        line = tnode.data
        assert isinstance(line, Line)
        if line.focus != node_id:
            line.focus = node_id
            tnode.set_label(self._root_label(tnode, line))
        compat.lay_out_lines(self)  # so the node has its line number
        if self.cursor_node is not tnode:
            self.move_cursor(tnode)
        else:
            self.scroll_to_node(tnode, animate=False)

    def _root_label(self, tnode: TreeNode[Line | Pending], line: Line) -> Text:
        label = self.label_for(line)
        if tnode is self.root and self._base != (self.loom.root_id if self.loom else ""):
            return Text("⋯ ", style="dim") + label
        return label

    def reconcile(self, tnode: TreeNode[Line | Pending]) -> None:
        """Bring one line (its chain, label and child lines) in line with the tree."""
        line = tnode.data
        if not isinstance(line, Line) or self.loom is None:
            return
        line.chain = self._chain(line.head)
        line.index = {}
        line.marked = self._marked(line.chain)
        line.hit = self._hit(line.chain)
        if line.position(line.focus) < 0:
            line.focus = line.chain[-1]
        tnode.set_label(self._root_label(tnode, line))
        heads = self._child_heads(line)
        tnode.allow_expand = bool(heads)
        if not line.loaded:
            return
        wanted = {h: i for i, h in enumerate(heads)}
        have: dict[str, TreeNode[Line | Pending]] = {}
        for child in list(tnode.children):
            data = child.data
            if isinstance(data, Line) and data.head in wanted and data.head not in have:
                have[data.head] = child
            elif isinstance(data, Line):
                self._drop(child)
                child.remove()
        for head in heads:
            if head not in have:
                self._add_line(tnode, head)
        compat.reorder_children(
            self, tnode, lambda c: wanted.get(c.data.head, len(wanted))
            if isinstance(c.data, Line) else len(wanted) + 1)

    def refresh_nodes(self, touched: set[str]) -> None:
        """Update only the lines holding ``touched`` nodes (after an edit, undo or redo)."""
        loom = self.loom
        if loom is None:
            return
        if self._base not in loom:
            self.load(loom, self.order)
            return
        done: set[str] = set()
        alive = sorted((n for n in touched if n in loom), key=loom.depth)
        for nid in alive:
            head = self.head_of(nid)
            if head in done:
                continue
            done.add(head)
            tnode = self._lines.get(head)
            if tnode is not None:
                self.reconcile(tnode)

    def mark_matches(self, matches: Collection[str]) -> None:
        """Mark the lines holding ``matches`` (the active search's), unmark the others."""
        self.matches = matches
        for tnode in list(self._lines.values()):
            line = tnode.data
            if isinstance(line, Line):
                hit = self._hit(line.chain)
                if hit != line.hit:
                    line.hit = hit
                    tnode.set_label(self._root_label(tnode, line))

    def relabel(self, node_id: str) -> None:
        tnode = self.line_of(node_id)
        if tnode is not None and isinstance(tnode.data, Line):
            tnode.set_label(self._root_label(tnode, tnode.data))

    def resort(self, order: ChildOrder) -> None:
        self.order = order
        for tnode in list(self._lines.values()):
            if isinstance(tnode.data, Line) and tnode.data.loaded:
                self.reconcile(tnode)

    # ------------------------------------------------------------ streaming rows
    def show_pending(self, node_id: str, n: int) -> None:
        """Add ``n`` placeholder rows under the line of ``node_id`` for streamed rollouts."""
        self.clear_pending()
        tnode = self.line_of(node_id)
        if tnode is None:
            return
        self._populate(tnode)
        self._pending = [tnode.add_leaf(Text("⋯ waiting", style="dim italic"), Pending(i))
                         for i in range(n)]
        tnode.expand()

    def update_pending(self, texts: list[str]) -> None:
        """Show each streamed rollout's start; a row whose preview is unchanged (once a
        rollout is longer than the preview, every later token) is not repainted."""
        for tnode in self._pending:
            pending = tnode.data
            assert isinstance(pending, Pending)
            if pending.row < len(texts) and texts[pending.row]:
                preview = short(texts[pending.row][:PREVIEW + 1], PREVIEW)  # same as whole
                if preview != pending.shown:
                    pending.shown = preview
                    tnode.set_label(Text("⋯ " + preview, style="italic"))

    def clear_pending(self) -> None:
        for tnode in self._pending:
            if tnode.parent is not None and tnode in tnode.parent.children:
                tnode.remove()
        self._pending = []

    def pending_labels(self) -> list[str]:
        return [str(t.label) for t in self._pending]

    # ------------------------------------------------------------ events
    def on_tree_node_expanded(self, event: TreeWidget.NodeExpanded[Line | Pending]) -> None:
        event.stop()
        self._populate(event.node)
        compat.invalidate(self)
