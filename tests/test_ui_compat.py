"""The private Textual API loomtui uses, all in loomtui/ui/compat.py: each still exists and
behaves as the app needs. A Textual upgrade that changes one fails here, loudly."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Tree

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


class _FooterApp(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [("x", "go", "Go"), ("y", "stop", "Stop")]

    def compose(self) -> ComposeResult:
        yield Footer()


async def test_a_footer_key_is_dimmed_in_place_without_a_layout():
    from textual.widgets._footer import FooterKey

    app = _FooterApp()
    async with app.run_test(size=(40, 5)) as pilot:
        footer = app.query_one(Footer)
        await pilot.pause()
        keys = {k.action: k for k in footer.query(FooterKey)}
        assert set(keys) >= {"go", "stop"}
        assert not compat.set_footer_keys_enabled(footer, {"go": False, "nosuch": True})
        assert not keys["go"].has_class("-disabled")  # nothing changed
        layouts = (app.screen._layout_updates, footer._layout_updates)
        assert compat.set_footer_keys_enabled(footer, {"go": False})
        assert keys["go"].has_class("-disabled") and keys["go"]._disabled
        await pilot.pause()
        assert (app.screen._layout_updates, footer._layout_updates) == layouts
        assert {k.action: k for k in footer.query(FooterKey)} == keys  # the same widgets
        assert compat.set_footer_keys_enabled(footer, {"go": True})
        assert not keys["go"].has_class("-disabled")


def test_every_work_decorator_names_its_worker():
    """Without a description, ``@work`` builds one from ``repr()`` of every argument, on the
    event loop: a finished expansion's Growth printed its KV tensors there (about 10 ms of
    each streamed step's frame)."""
    import ast
    from pathlib import Path

    import loomtui.ui

    found, missing = 0, []
    for path in Path(loomtui.ui.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "work"):
                found += 1
                if not any(k.arg == "description" for k in node.keywords):
                    missing.append(f"{path.name}:{node.lineno}")
    assert found >= 9 and not missing


class _OwnLineTree(compat.OwnLineRefresh, Tree[str]):
    drawn: list[int]

    def render_line(self, y: int) -> Strip:
        self.drawn.append(y)
        return super().render_line(y)


class _OwnLineApp(App[None]):
    def compose(self) -> ComposeResult:
        tree = _OwnLineTree("root")
        tree.drawn = []
        for i in range(12):
            tree.root.add_leaf(f"leaf {i}")
        tree.root.expand()
        yield tree


async def test_moving_the_cursor_repaints_only_the_lines_it_leaves_and_enters():
    app = _OwnLineApp()
    async with app.run_test(size=(40, 20)) as pilot:
        tree = app.query_one(_OwnLineTree)
        tree.cursor_line = 0
        await pilot.pause()
        tree.drawn.clear()
        tree.cursor_line = 1  # from the root: Textual alone repaints all 13 lines
        await pilot.pause()
        assert sorted(set(tree.drawn)) == [0, 1]


async def test_new_outline_rows_repaint_the_tree_without_laying_the_screen_out():
    from ui_helpers import SIZE, settle

    from loomtui.ui.app import LoomApp
    from loomtui.ui.demo import demo_tree

    app = LoomApp(tree=demo_tree(), autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.loom_screen.tree_view
        before, layouts = view.virtual_size.height, view._layout_updates
        view.show_pending(app.loom.selected, 3)  # an expansion's rows appear
        compat.lay_out_lines(view)
        assert view.virtual_size.height == before + 3
        assert view._layout_updates == layouts  # only the tree repaints
        await pilot.pause()
        assert len(view.pending_labels()) == 3


async def test_changed_lines_repaint_their_rows_only_and_the_screen_matches_a_whole_repaint():
    from ui_helpers import screen_rows

    app = _OwnLineApp()
    async with app.run_test(size=(40, 20)) as pilot:
        tree = app.query_one(_OwnLineTree)
        leaf = tree.root.children[6]
        tree.root.add_leaf("leaf 12")  # the first change of lines repaints every row
        await pilot.pause()

        async def whole() -> list[str]:
            tree.refresh()
            await pilot.pause()
            return screen_rows(app)

        tree.drawn.clear()
        leaf.allow_expand = True
        for name in ("a", "b"):
            leaf.add_leaf(name)
        leaf.expand()  # leaf 6 opens: rows from its own down change, none above
        await pilot.pause()
        assert min(tree.drawn) == leaf.line == 7 and max(tree.drawn) == 15
        shown = screen_rows(app, styled=False)
        assert "a" in shown[8] and "leaf 12" in shown[15]
        assert screen_rows(app) == await whole()
        tree.drawn.clear()
        leaf.add_leaf("c")  # b is no longer the last child: its guide changes, a's does not
        await pilot.pause()
        assert min(tree.drawn) == 9
        assert screen_rows(app) == await whole()
        tree.drawn.clear()
        tree.root.children[9].remove()  # leaf 9 goes: the rows from it down move up
        await pilot.pause()
        assert min(tree.drawn) == 13
        assert not any("leaf 9" in row for row in screen_rows(app, styled=False))
        assert screen_rows(app) == await whole()
        tree.drawn.clear()
        leaf.collapse()
        await pilot.pause()
        assert min(tree.drawn) == 7
        assert screen_rows(app) == await whole()
        for _ in range(20):  # a line replaced in one go (its new node may get the old's id)
            last = tree.root.children[-1]
            last.remove()
            del last
            tree.root.add_leaf(f"fresh {_}")
            await pilot.pause()
            assert f"fresh {_}" in screen_rows(app, styled=False)[len(tree.root.children)]


async def test_a_streamed_row_is_repainted_only_while_its_preview_changes():
    from ui_helpers import SIZE, settle

    from loomtui.core.text import short
    from loomtui.ui.app import LoomApp
    from loomtui.ui.demo import demo_tree
    from loomtui.ui.widgets.tree_view import PREVIEW

    app = LoomApp(tree=demo_tree(), autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.loom_screen.tree_view
        view.show_pending(app.loom.selected, 2)
        long, growing = "word " * 20, "a⏎"
        view.update_pending([long, growing])
        first, second = view._pending
        updates = first._updates, second._updates
        view.update_pending([long + "more words", growing + "b"])
        assert first._updates == updates[0]  # past the preview's width: nothing to repaint
        assert second._updates > updates[1]
        assert view.pending_labels() == ["⋯ " + short(long + "more words", PREVIEW),
                                         "⋯ " + short(growing + "b", PREVIEW)]


async def test_rows_that_only_move_are_reused_and_carry_their_new_line_for_the_mouse(
        monkeypatch):
    app = _OwnLineApp()
    drawn: list[int] = []
    render = Tree._render_line

    def counted(self, y, x1, x2, style):
        drawn.append(y)
        return render(self, y, x1, x2, style)

    monkeypatch.setattr(Tree, "_render_line", counted)
    async with app.run_test(size=(40, 20)) as pilot:
        tree = app.query_one(_OwnLineTree)
        tree.root.add_leaf("leaf 12")
        await pilot.pause()
        leaf = tree.root.children[6]
        leaf.allow_expand = True
        for name in ("a", "b"):
            leaf.add_leaf(name)
        drawn.clear()
        tree.drawn.clear()
        leaf.expand()  # leaf 6's row changes, a and b are new, leaves 7-12 move down
        await pilot.pause()
        assert max(tree.drawn) == 15  # every row from leaf 6 down was repainted...
        assert sorted(set(drawn)) == [7, 8, 9]  # ...but only the new looks were drawn
        for y in range(len(tree._tree_lines)):
            metas = [seg.style.meta for seg in tree.render_line(y) if seg.style]
            assert metas and all(m.get("line") == y for m in metas if "line" in m)
        moved = tree.root.children[9]  # drawn at line 10, now at line 12
        assert moved.line == 12
        await pilot.click(_OwnLineTree, offset=(8, moved.line))
        assert tree.cursor_node is moved


def test_strips_no_longer_cache_themselves():
    import gc

    from rich.segment import Segment

    compat.break_strip_cycles()
    compat.break_strip_cycles()  # idempotent
    strip = Strip([Segment("hello "), Segment("world")])
    assert strip.divide([11]) == [strip] and strip.crop_extend(0, 11, None) is strip
    assert [s.text for s in strip.divide([3, 11])] == ["hel", "lo world"]
    assert strip.crop_extend(2, 14, None).text == "llo world   "
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable goes to gc.garbage
    try:
        for i in range(50):  # as the compositor uses each row it draws
            row = Strip([Segment(f"row {i}")])
            row.divide([row.cell_length])
            row.crop_extend(0, row.cell_length, None)
        del row
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, Strip)]
        assert not left  # freed as they went: none was left in a cycle for the collector
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
