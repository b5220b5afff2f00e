"""The app's search bar (issue 13), driven with Pilot on the bundled model (bard)."""

from __future__ import annotations

import pytest
from textual.widgets import Input
from ui_helpers import SIZE, screen, settle

from loomtui.core import grow
from loomtui.core.grow import new_tree
from loomtui.core.node import Sampler
from loomtui.core.tree import Tree
from loomtui.ui.app import LoomApp
from loomtui.ui.screens.help import help_table
from loomtui.ui.screens.loom import LoomScreen
from loomtui.ui.widgets.branch_view import MATCH
from loomtui.ui.widgets.tree_view import MATCH_MARK, Line

TYPED = ["\nThe knight dies at dawn.", "\nA lady sings.", "\nThe KNIGHT rides home.",
         "\nNo one dies here, knight-less."]


@pytest.fixture
def tree(pred) -> Tree:
    """A prompt, four typed children (scored by bard) and a sampled grandchild each."""
    t = new_tree(pred, "ROMEO:\nBut soft, what light")
    t.sampler = Sampler(n=1, max_tokens=4)
    kids = [grow.type_text(t, pred, t.root_id, text).id for text in TYPED]
    for k in kids:
        grow.expand(t, pred, k, t.sampler, seed=1)
    t.select(t.root_id)
    return t


async def search_for(pilot, line: str) -> None:
    loom = screen(pilot.app)
    if not loom.search_bar.display:
        await pilot.press("slash")
    bar = loom.search_bar
    bar.input.value = line
    before = bar.searches
    for _ in range(200):
        await pilot.pause(0.02)
        if bar.searches > before and not bar.pending:
            break
    await settle(pilot)


def typed_ids(tree: Tree) -> list[str]:
    return tree.children(tree.root_id)


def row_labels(loom: LoomScreen) -> dict[str, str]:
    out = {}
    for tnode in loom.tree_view.root.children:
        if isinstance(tnode.data, Line):
            out[tnode.data.head] = str(tnode.label)
    return out


async def test_slash_opens_a_docked_bar_that_filters_and_enter_selects(tree):
    kids = typed_ids(tree)
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        assert not loom.search_bar.display
        await pilot.press("slash")
        await settle(pilot)
        bar = loom.search_bar
        assert bar.display and loom.tree_view.display  # the tree stays in sight
        assert isinstance(app.focused, Input)
        await search_for(pilot, "knight")
        # case-insensitive, own segments, pre-order (children by creation)
        assert [m.node_id for m in bar.matches] == [kids[0], kids[2], kids[3]]
        assert bar.results.option_count == 3
        assert kids[0] in str(bar.results.get_option_at_index(0).prompt)
        await search_for(pilot, "knight --case-sensitive")
        assert [m.node_id for m in bar.matches] == [kids[0], kids[3]]
        await search_for(pilot, "dies --origin typed --max-depth 1")
        assert [m.node_id for m in bar.matches] == [kids[0], kids[3]]
        await search_for(pilot, r"kn\w+ (dies|rides) --regex")
        assert [m.node_id for m in bar.matches] == [kids[0], kids[2]]
        await pilot.press("down", "down", "enter")  # the second result
        await settle(pilot)
        assert tree.selected == kids[2]
        assert app.focused is loom.tree_view
        assert bar.active and bar.display and not bar.results.display
        await pilot.press("escape")  # ends the search
        await settle(pilot)
        assert not bar.active and not bar.display
        await pilot.press("slash")
        await search_for(pilot, "lady")
        await pilot.press("enter")  # enter in the line: the first match
        await settle(pilot)
        assert tree.selected == kids[1]
        await pilot.press("slash")
        bar.input.value = "rides"
        await pilot.press("enter")  # before its results arrive: chosen when they do
        for _ in range(200):
            await pilot.pause(0.02)
            if tree.selected == kids[2]:
                break
        assert tree.selected == kids[2]


async def test_context_flag_matches_across_segments(tree):
    kids = typed_ids(tree)
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bar = screen(app).search_bar
        await search_for(pilot, r"light\nthe knight")
        assert bar.matches == []
        await pilot.press("alt+c")  # toggles --context in the line
        assert bar.input.value.endswith("--context")
        await search_for(pilot, bar.input.value)
        assert [m.node_id for m in bar.matches] == [kids[0], kids[2]]
        assert bar.matches[0].segment_span[0] < 0  # begun in the prompt


async def test_n_steps_through_matches_while_a_search_is_active_else_bookmarks(tree):
    kids = typed_ids(tree)
    tree.set_bookmark(kids[1], True)
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        await search_for(pilot, "knight")
        await pilot.press("enter")
        await settle(pilot)
        assert tree.selected == kids[0]
        await pilot.press("n")
        assert tree.selected == kids[2]
        await pilot.press("n")
        assert tree.selected == kids[3]
        await pilot.press("n")  # wraps
        assert tree.selected == kids[0]
        await pilot.press("N")
        assert tree.selected == kids[3]
        assert loom.search_bar.index == 2
        await pilot.press("escape")  # from the tree: ends the search
        await settle(pilot)
        assert not loom.search_bar.active
        await pilot.press("n")  # bookmarks again
        assert tree.selected == kids[1]


async def test_matches_are_highlighted_in_the_branch_and_marked_in_the_outline(tree):
    kids = typed_ids(tree)
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        assert not any(MATCH_MARK in label for label in row_labels(loom).values())
        await search_for(pilot, "dies")
        labels = row_labels(loom)
        assert labels[kids[0]].startswith(MATCH_MARK)
        assert labels[kids[3]].startswith(MATCH_MARK)
        assert not labels[kids[1]].startswith(MATCH_MARK)
        await pilot.press("enter")
        await settle(pilot)
        content = loom.branch.text
        marked = [content.plain[s.start:s.end] for s in content.spans
                  if getattr(s.style, "background", None) is not None
                  and s.style.bold and "dies" in content.plain[s.start:s.end]]
        assert "dies" in marked  # exactly the span, not the whole token run
        assert any(MATCH_MARK in str(row[0]) for row in help_table().columns[0].cells)
        await pilot.press("escape")
        await settle(pilot)
        assert not any(MATCH_MARK in label for label in row_labels(loom).values())
        content = loom.branch.text
        assert not any(content.plain[s.start:s.end] == "dies" for s in content.spans)
    assert MATCH.bold


async def test_a_bad_query_is_one_line_and_keeps_the_bar_open(tree):
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bar = screen(app).search_bar
        for line, says in [("knight --max-logprob lots", "--max-logprob must be a number"),
                           ("(unclosed --regex", "bad regular expression"),
                           ('"open quote', "unclosed quote"),
                           ("x --orign typed", "did you mean --origin"),
                           ("x --origin dreamt", "unknown origin"),
                           ("x --min-depth 3 --max-depth 1", "range is empty")]:
            await search_for(pilot, line)
            assert bar.error is not None and says in bar.error, (line, bar.error)
            assert "\n" not in bar.error
            status = str(bar.query_one("#search-status").render())
            assert says in status and status.count("\n") == 0
            assert bar.display and app.is_running
        await search_for(pilot, "knight")
        assert bar.error is None and len(bar.matches) == 3


async def test_results_follow_edits_and_hostile_text_is_shown_safely(pred):
    tree = new_tree(pred, "ROMEO:")
    hostile = "\x1b[2J[bold]knight[/] \x1b]0;pwned\x07"
    grow.type_text(tree, pred, tree.root_id, hostile)
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        await search_for(pilot, "knight")
        row = str(loom.search_bar.results.get_option_at_index(0).prompt)
        assert "\x1b" not in row and "[bold]knight[/]" in row
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("d")  # delete the match: the search runs again
        for _ in range(100):
            await pilot.pause(0.02)
            if not loom.search_bar.matches:
                break
        assert loom.search_bar.matches == []
