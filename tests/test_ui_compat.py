"""The private Textual API loomtui uses, all in loomtui/ui/compat.py: each still exists and
behaves as the app needs. A Textual upgrade that changes one fails here, loudly."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
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


class _Lines(ScrollView):
    def render_line(self, y: int) -> Strip:
        return Strip.blank(self.size.width)


class _ViewApp(App[None]):
    CSS = "_Lines { height: 10; overflow-x: hidden; }"

    def compose(self) -> ComposeResult:
        yield _Lines()


async def test_a_scroll_view_resizes_without_a_layout_unless_its_scrollbar_changes():
    app = _ViewApp()
    async with app.run_test(size=(40, 20)) as pilot:
        view = app.query_one(_Lines)
        compat.resize_scroll_view(view, Size(30, 50))  # the scrollbar appears: a layout
        await pilot.pause()
        assert view.virtual_size == Size(30, 50) and view.show_vertical_scrollbar
        assert view.vertical_scrollbar.window_virtual_size == 50
        laid_out = app.screen._layout_required
        compat.resize_scroll_view(view, Size(30, 80))  # still scrolls: no layout
        assert not app.screen._layout_required and not laid_out
        assert view.virtual_size == Size(30, 80)
        assert view.vertical_scrollbar.window_virtual_size == 80
        view.scroll_to(y=70, animate=False, immediate=True)
        assert view.scroll_offset.y == 70  # the new height is the scroll range at once
        compat.resize_scroll_view(view, Size(30, 5))  # fits: the scrollbar goes (a layout)
        await pilot.pause()
        assert not view.show_vertical_scrollbar and view.scroll_offset.y == 0
