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
