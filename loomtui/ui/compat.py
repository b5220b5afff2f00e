"""Every use of Textual's private API, in one place (tests/test_ui_compat.py checks each
still exists, so a Textual upgrade that moves one fails loudly there, not deep in the app).

Textual has no public way to reorder a tree node's children in place, to lay out a tree's
lines on demand, to list the notifications shown, or to observe frames and inject keys the way
a terminal would (which the app benchmark needs to time a keypress to its repaint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.geometry import Size
from textual.scroll_view import ScrollView
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


def resize_scroll_view(view: ScrollView, size: Size) -> None:
    """Give a line-API scroll view a new virtual size without laying the screen out again:
    its region does not depend on it (only its scrollbars do), unless a scrollbar appears or
    goes, which changes its content width (then the normal route, a layout, is taken)."""
    old = view.virtual_size
    if old == size:
        return
    height, width = view.scrollable_content_region.height, view.size.width
    if old.width > width or size.width > width or (old.height > height) != (
            size.height > height):
        view.virtual_size = size
        return
    view.set_reactive(Widget.virtual_size, size)
    scroll_update(view, size)


def scroll_update(view: Widget, size: Size) -> None:
    """Tell a view's scrollbars its new virtual size (what a layout would do) and repaint."""
    view._scroll_update(size)
    view.refresh()


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

    def _invalidate(self) -> None:
        """Textual's, without laying the whole screen out: adding, removing or expanding
        nodes changes the tree's lines, not its region. Its new line count arrives as a
        virtual size, which the tree handles (see ``LoomTree.watch_virtual_size``)."""
        self._clear_line_cache()  # type: ignore[attr-defined]
        self._updates += 1  # type: ignore[attr-defined]
        self.root._reset()  # type: ignore[attr-defined]
        self.refresh()  # type: ignore[attr-defined]


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
