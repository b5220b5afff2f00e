"""The private Textual API loomtui uses, all in loomtui/ui/compat.py: each still exists and
behaves as the app needs. A Textual upgrade that changes one fails here, loudly."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Tree

from loomtui.ui import compat


class _TreeApp(App[None]):
    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("root")
        for name in ("c", "a", "b"):
            tree.root.add(name, name)
        tree.root.expand()
        yield tree


async def test_private_api_used_by_the_app_still_works():
    app = _TreeApp()
    frames: list[int] = []
    async with app.run_test() as pilot:
        tree = app.query_one(Tree)
        compat.hook_frames(app, lambda: frames.append(1))
        compat.lay_out_lines(tree)
        assert tree.last_line == 3
        compat.reorder_children(tree, tree.root, lambda n: n.data)
        assert [n.data for n in tree.root.children] == ["a", "b", "c"]
        compat.invalidate(tree)
        app.notify("hello")
        await pilot.pause()
        assert [n.message for n in compat.notifications(app)] == ["hello"]
        compat.send_key(app, "down")
        await pilot.pause()
        assert tree.cursor_line == 1
        assert frames  # a frame went out after the key
