"""Every use of Textual's private API, in one place (tests/test_ui_compat.py checks each
still exists, so a Textual upgrade that moves one fails loudly there, not deep in the app).

Textual has no public way to reorder a tree node's children in place, to lay out a tree's
lines on demand, to dim a footer key in place, to list the notifications shown, or to observe
frames and inject keys the way a terminal would (which the app benchmark needs to time a
keypress to its repaint).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.cache import LRUCache
from textual.content import Content
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Tree
from textual.widgets.tree import TreeNode


def reorder_children(tree: Tree[Any], node: TreeNode[Any],
                     key: Callable[[TreeNode[Any]], Any]) -> None:
    """Sort ``node``'s children in place (keeping their subtrees and expansion) and redraw."""
    node._children.sort(key=key)
    tree._invalidate()


def lay_out_lines(tree: Tree[Any]) -> None:
    """Build the tree's visible lines now, so a node just added has its line number."""
    _ = tree._tree_lines


def invalidate(tree: Tree[Any]) -> None:
    """Rebuild the tree's lines on the next refresh (after nodes were added under one)."""
    tree._invalidate()


def resize_scroll_view(view: ScrollView, size: Size) -> bool:
    """Give a line-API scroll view a new virtual size without laying the screen out again:
    its region does not depend on it (only its scrollbars do), unless a scrollbar appears or
    goes, which changes its content width (then the normal route, a layout, is taken).
    Returns whether the view will be laid out (and so repainted whole); if not, the caller
    repaints what changed."""
    old = view.virtual_size
    if old == size:
        return False
    height, width = view.scrollable_content_region.height, view.size.width
    if old.width > width or size.width > width or (old.height > height) != (
            size.height > height):
        view.virtual_size = size
        return True
    view.set_reactive(Widget.virtual_size, size)
    scroll_update(view, size, repaint=False)
    return False


def set_border_subtitle(widget: Widget, subtitle: Content) -> None:
    """Set a widget's border subtitle, repainting its bottom border row only (Textual's
    setter repaints the whole widget, which defeats repainting only the rows that changed)."""
    new = widget.render_str(subtitle).expand_tabs(4).split()[0]
    old = widget._border_subtitle
    if old is not None and old.plain == new.plain and old.spans == new.spans:
        return
    widget._border_subtitle = new
    region, offset = widget.region, widget.content_offset
    if not region:
        widget.refresh()
        return
    widget.refresh(Region(-offset.x, region.height - 1 - offset.y, region.width, 1))


def scroll_update(view: Widget, size: Size, *, repaint: bool = True) -> None:
    """Tell a view's scrollbars its new virtual size (what a layout would do); the scrollbars
    repaint themselves, and the view too unless ``repaint`` is False."""
    view._scroll_update(size)
    if repaint:
        view.refresh()


ROWS_KEPT = 256
"""Tree rows kept by what they show (see ``OwnLineRefresh._render_line``): a few screens'
worth (each row's strip holds some 20 objects that every full collection walks)."""


class OwnLineRefresh:
    """For a Textual ``Tree`` whose selected guides look like the others (the app's CSS): when
    the cursor or the mouse moves, repaint the node's own line only. Textual repaints every
    visible line under the node (to recolour the guides of its subtree), and since its line
    cache is keyed on each ancestor's state, every one of them is drawn again: moving to or
    from the root redrew the whole panel (36 lines, 25 ms a key)."""

    def _refresh_node(self, node: TreeNode[Any]) -> None:
        line = node._line
        if line != -1:
            self._refresh_line(line)  # type: ignore[attr-defined]

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False, repaint=False)
    """The lines' extent: a change repaints the scrollbar (the rows that changed repaint
    themselves), and lays the screen out only when the scrollbar comes or goes (adding the
    pending rows of an expansion laid everything out at its start and at its end: 30-50 ms
    frames)."""

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        height = self.scrollable_content_region.height  # type: ignore[attr-defined]
        if (old.height > height) != (new.height > height):
            self.refresh(layout=True)  # type: ignore[attr-defined]  # a scrollbar comes or goes
        else:
            scroll_update(self, new, repaint=False)  # type: ignore[arg-type]

    _painted: tuple[int, list[Any]] | None = None
    """The view's top line and its visible lines' looks (see ``_line_look``) when the rows
    were last repainted for a change of lines; None: repaint every row at the next change."""
    _lines_changed = False

    def _invalidate(self) -> None:
        """Textual's, without laying the whole screen out (adding, removing or expanding
        nodes changes the tree's lines, not its region; the new line count arrives as a
        virtual size, see ``watch_virtual_size``), and without repainting every row: when the
        frame is drawn, only the rows whose line looks different are (opening a node's line
        repaints the rows from it down, not the 30 above it). The line cache still goes
        whole, as in Textual, so a repainted row is never drawn from a stale entry."""
        self._clear_line_cache()
        self._updates += 1  # type: ignore[attr-defined]
        self.root._reset()  # type: ignore[attr-defined]
        self._lines_changed = True
        self.refresh(Region(0, 0, 0, 0))  # type: ignore[attr-defined]  # into the next frame

    def _changed_rows(self) -> list[Region]:
        """The rows whose line looks different since the last change of lines."""
        self._lines_changed = False
        lines = self._tree_lines  # type: ignore[attr-defined]
        top, (width, height) = self.scroll_offset.y, self.size  # type: ignore[attr-defined]
        looks = [_line_look(line) for line in lines[top:top + height]]
        before, self._painted = self._painted, (top, looks)
        if before is None or before[0] != top:  # first, or scrolled since (all repainted)
            return [Region(0, 0, width, height)]
        old = before[1]
        return [Region(0, y, width, 1) for y in range(height)
                if (y < len(looks)) != (y < len(old))
                or (y < len(looks) and looks[y] != old[y])]

    def _clear_line_cache(self) -> None:
        """Textual's, emptying the old lines as they go: ``_build`` fills the list from a
        recursive closure, a reference cycle that would keep every old line (and its path)
        until a full collection; a big tree's lines are rebuilt at every change."""
        old = self._tree_lines_cached  # type: ignore[attr-defined]
        super()._clear_line_cache()  # type: ignore[misc]
        if old is not None:
            old.clear()

    def _exchange_repaint_regions(self) -> Any:
        if self._lines_changed:  # the frame is being drawn: repaint the rows that changed
            self._set_dirty(*self._changed_rows())  # type: ignore[attr-defined]
        return super()._exchange_repaint_regions()  # type: ignore[misc]

    def render_lines(self, crop: Region) -> Any:
        if self._lines_changed:  # a frame that lays the screen out asked for no regions
            rows = self._changed_rows()
            if rows:
                self.refresh(*rows)  # type: ignore[attr-defined]
        return super().render_lines(crop)  # type: ignore[misc]

    _rows: LRUCache[tuple[Any, ...], tuple[int, Strip]] | None = None

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """Textual's row, kept by what the row shows rather than by its index: when a node's
        lines open or close, the rows below only move, and each is taken from here (its
        ``line`` meta, which a click or the mouse reads, set to its new index) instead of
        drawn again (about 0.8 ms a row: opening a line deep in a big tree drew 30 rows,
        25 ms of a 60 ms key)."""
        view: Any = self  # a Textual Tree
        lines = view._tree_lines
        if not 0 <= y < len(lines):
            return super()._render_line(y, x1, x2, base_style)  # type: ignore[misc]
        line = lines[y]
        path, node = line.path, line.path[-1]
        hover_line, width = view.hover_line, view.size.width
        key = (_line_look(line), node._updates,
               tuple((n._hover_, n._selected_) for n in path),
               hover_line >= 0 and any(n._hover_ for n in path), hover_line == y,
               view.cursor_line == y, x1, x2, width, max(view.virtual_size.width, width),
               base_style, view._pseudo_class_state, view.has_focus, view.show_guides)
        rows = self._rows
        if rows is None:
            rows = self._rows = LRUCache(ROWS_KEPT)
        kept = rows.get(key)
        if kept is not None and kept[0] == y:
            return kept[1]
        strip = (super()._render_line(y, x1, x2, base_style)  # type: ignore[misc]
                 if kept is None else _at_line(kept[1], y))
        rows[key] = (y, strip)
        return strip

    def _repaint_all(self) -> None:
        self._painted = None
        if self._rows is not None:
            self._rows.clear()

    # Textual's other callers of ``_invalidate`` change every row: they repaint them all.
    def clear(self) -> Any:
        self._repaint_all()
        return super().clear()  # type: ignore[misc]

    def unselect(self) -> None:
        self._repaint_all()
        super().unselect()  # type: ignore[misc]

    def notify_style_update(self) -> None:
        self._repaint_all()
        super().notify_style_update()  # type: ignore[misc]

    def watch_guide_depth(self, guide_depth: int) -> None:
        self._repaint_all()
        super().watch_guide_depth(guide_depth)  # type: ignore[misc]

    def watch_show_root(self, show_root: bool) -> None:
        self._repaint_all()
        super().watch_show_root(show_root)  # type: ignore[misc]

    def _on_resize(self, event: Any) -> None:  # Textual calls the Tree's own after this
        self._repaint_all()


def _at_line(strip: Strip, y: int) -> Strip:
    """A tree row's strip with the ``line`` its segments carry (Textual's Tree reads it to
    know which line was clicked or hovered) set to ``y``."""
    meta = Style.from_meta({"line": y})
    return Strip([Segment(seg.text, seg.style + meta, seg.control)
                  if seg.style is not None and "line" in seg.style.meta else seg
                  for seg in strip], strip.cell_length)


def _line_look(line: Any) -> tuple[Any, ...]:
    """What a tree line's row shows, apart from its label (a label's change repaints its own
    row): which node (the node itself: an id could be a freed node's, reused), its guides
    (whether it and each ancestor is a last child), and its expand mark."""
    node = line.path[-1]
    return (node, tuple(n._parent is None or n._parent._children[-1] is n for n in line.path),
            node._expanded, node._allow_expand, bool(node._children))


def break_strip_cycles() -> None:
    """Stop Textual's strips from caching themselves. ``Strip.divide`` keeps ``[self]`` in
    the strip's own cache when there is nothing to cut (the compositor's case for almost
    every row it draws), and ``crop_extend`` keeps ``self`` when there is nothing to crop or
    extend: each strip so used (and its eight caches) became a reference cycle, freed only by
    a full collection. Moving about a 10,000-node tree made 23,000 such objects every 40 keys,
    and their collections (40-110 ms) were the slowest keys. Both return the same strips as
    before; they just no longer cache a strip in itself. Idempotent."""
    if getattr(Strip.divide, "_loomtui", False):
        return
    divide, crop_extend = Strip.divide, Strip.crop_extend

    def divide_once(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
        length = self.cell_length
        cuts = [cut for cut in cuts if cut <= length]
        return [self] if cuts == [length] else divide(self, cuts)

    def crop_extend_once(self: Strip, start: int, end: int, style: Style | None) -> Strip:
        if start <= 0 and end == self.cell_length:
            return self
        return crop_extend(self, start, end, style)

    divide_once._loomtui = True  # type: ignore[attr-defined]
    Strip.divide = divide_once  # type: ignore[method-assign]
    Strip.crop_extend = crop_extend_once  # type: ignore[method-assign]


def set_footer_keys_enabled(footer: Widget, enabled: dict[str, bool]) -> bool:
    """Dim or light a footer's keys in place (``enabled`` maps an action to its new state);
    returns False, changing nothing, unless each of those actions has a key shown."""
    from textual.widgets._footer import FooterKey

    keys = [k for k in footer.query(FooterKey) if k.action in enabled]
    if {k.action for k in keys} != set(enabled):
        return False
    for k in keys:
        k._disabled = not enabled[k.action]
        k.set_class(k._disabled, "-disabled")
    return True


def notifications(app: App[Any]) -> list[Any]:
    """The notifications the app is showing (tests)."""
    return list(app._notifications)


def hook_frames(app: App[Any], on_frame: Callable[[], None]) -> None:
    """Call ``on_frame`` whenever the app sends a frame to its driver (benchmark)."""
    display = app._display

    def wrapped(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            on_frame()
        display(screen, renderable)

    app._display = wrapped  # type: ignore[method-assign]


def send_key(app: App[Any], key: str) -> None:
    """Deliver a key as the terminal driver does (benchmark: no Pilot round trip)."""
    from textual import events

    assert app._driver is not None
    app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
