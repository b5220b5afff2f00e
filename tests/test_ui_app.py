"""Pilot tests of the app: every action, on the bundled model ("bard") or fixed data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.widgets import Input, TextArea
from ui_helpers import SIZE, repainted_whole, screen, screen_rows, settle

from loomtui.bench.synthetic import make_tree
from loomtui.core import session
from loomtui.core.grow import new_tree
from loomtui.core.node import Node, Sampler
from loomtui.core.tree import Tree
from loomtui.ui import compat
from loomtui.ui.app import LoomApp, new_session_path
from loomtui.ui.demo import demo_tree
from loomtui.ui.screens.help import HelpScreen
from loomtui.ui.screens.prompt import Choose, PromptScreen, TextPrompt
from loomtui.ui.screens.sampler import SamplerScreen, parse_settings
from loomtui.ui.widgets.distribution_panel import TokenList
from loomtui.ui.widgets.tree_view import Line


@pytest.fixture
def bard_tree(pred) -> Tree:
    tree = new_tree(pred, "ROMEO:\nBut soft, what light")
    tree.sampler = Sampler(n=2, max_tokens=6)
    return tree


# ---------------------------------------------------------------- layout and navigation
async def test_main_screen_shows_tree_branch_and_distribution(bard_tree, pred, tmp_path):
    app = LoomApp(tree=bard_tree, predictor=pred, path=tmp_path / "s.json")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = screen(app).dist_panel.rows()
        assert len(rows) == 20
        assert rows[0].split()[0] == "1" and rows[0].split()[2].endswith("%")
        assert "But soft, what light" in screen(app).branch.plain()
        assert screen(app).tree_view.cursor_node is screen(app).tree_view.root


async def test_navigation_keys_and_history():
    tree = demo_tree()
    app = LoomApp(tree=tree)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert tree.selected == "4"
        await pilot.press("h")
        assert tree.selected == "1"
        await pilot.press("left")
        assert tree.selected == "0"
        await pilot.press("l")
        assert tree.selected == "1"
        await pilot.press("j")
        assert tree.selected == "2"
        await pilot.press("k")
        assert tree.selected == "1"
        await pilot.press("right")
        assert tree.selected == "4"
        await pilot.press("g")
        assert tree.selected == "0"
        await pilot.press("G")
        assert tree.selected == "4"
        await pilot.press("less_than_sign")
        assert tree.selected == "0"
        await pilot.press("greater_than_sign")
        assert tree.selected == "4"
        await pilot.press("alt+left")
        assert tree.selected == "0"
        # arrows in the outline move line by line and select the line's node
        screen(app).tree_view.focus()
        await pilot.press("down")
        await pilot.pause()
        assert tree.selected == "1"


async def test_bookmarks_next_previous_and_toggle():
    tree = demo_tree()
    app = LoomApp(tree=tree)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g", "n")
        assert tree.selected == "2"
        await pilot.press("g", "l", "b")
        assert tree.node("1").bookmarked
        await pilot.press("g", "n")
        assert tree.selected == "1"
        await pilot.press("n")
        assert tree.selected == "2"
        await pilot.press("N")
        assert tree.selected == "1"
        await pilot.press("u")
        assert not tree.node("1").bookmarked


async def test_chains_are_one_line_and_track_the_selected_node():
    tree = make_tree(5000, chain=True)
    app = LoomApp(tree=tree)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("G")
        await pilot.pause()
        assert tree.selected == format(4999, "x")
        line = screen(app).tree_view.cursor_node.data
        assert isinstance(line, Line) and len(line.chain) == 4999
        assert "5,000 nodes" in screen(app).branch.border_subtitle
        assert "earlier characters" in screen(app).branch.plain()
        for _ in range(20):
            await pilot.press("h")
        assert tree.depth(tree.selected) == 4979
        assert line.focus == tree.selected
        assert "·4979/4999" in str(screen(app).tree_view.cursor_node.label)


async def test_big_tree_opens_lazily_and_navigates():
    tree = make_tree(10000)
    app = LoomApp(tree=tree)
    async with app.run_test(size=SIZE) as pilot:
        assert len(screen(app).tree_view._lines) < 100
        await pilot.press("G")
        leaf = tree.selected
        assert tree.n_children(leaf) == 0
        await pilot.press("h", "j", "l")
        await pilot.pause()
        assert tree.depth(tree.selected) == tree.depth(leaf)
        assert tree.parent(tree.selected) != tree.parent(leaf)
        assert screen(app).tree_view.cursor_node.data.focus == tree.selected


# ---------------------------------------------------------------- growing
async def test_expand_streams_children_and_autosaves(bard_tree, pred, tmp_path):
    path = tmp_path / "s.json"
    # long enough to outlast the pause streamed rows take after a key (KEYS_FIRST)
    bard_tree.sampler = Sampler(n=3, max_tokens=120)
    app = LoomApp(tree=bard_tree, predictor=pred, path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert not screen(app).generating
        kids = bard_tree.children(bard_tree.root_id)
        assert app.last_error is None
        assert len(kids) == 3
        assert all(bard_tree.node(k).origin == "sampled" for k in kids)
        assert bard_tree.node(kids[0]).sampler == bard_tree.sampler
        assert screen(app).stream_updates >= 1
        assert screen(app).tree_view.pending_labels() == []
        assert len(session.load(path)) == 4  # autosaved
        await pilot.press("u")
        assert len(bard_tree) == 1


class SlowPredictor:
    """The bundled model, slowed down per token (stands in for a big model)."""

    def __init__(self, pred) -> None:
        self._pred = pred

    def __getattr__(self, name):
        return getattr(self._pred, name)

    def sample(self, tree, node_id, n, sampler, seed, on_token=None, cancel=None):
        def slow(i, seg):
            time.sleep(0.01)
            if on_token is not None:
                on_token(i, seg)

        return self._pred.sample(tree, node_id, n, sampler, seed, on_token=slow, cancel=cancel)


async def test_escape_cancels_and_keeps_partial_rollouts(bard_tree, pred):
    bard_tree.sampler = Sampler(n=2, max_tokens=250)
    app = LoomApp(tree=bard_tree, predictor=SlowPredictor(pred))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        for _ in range(500):  # until the first streamed tokens arrive
            await pilot.pause()
            if screen(app).stream is not None and sum(screen(app).stream.tokens):
                break
        await pilot.press("escape")
        await settle(pilot)
        kids = bard_tree.children(bard_tree.root_id)
        assert 1 <= len(kids) <= 2
        assert all(0 < bard_tree.node(k).n_tokens < 250 for k in kids)


async def test_pick_by_number_and_by_row(bard_tree, pred):
    app = LoomApp(tree=bard_tree, predictor=pred)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        top = bard_tree.root.distribution.top
        await pilot.press("2")
        await settle(pilot)
        child = bard_tree.node(bard_tree.selected)
        assert child.origin == "picked" and child.token_ids == [top.ids[1]]
        assert bard_tree.parent(child.id) == bard_tree.root_id
        assert child.distribution is not None  # scored with the model
        # choose a row in the distribution panel
        await pilot.press("h")
        screen(app).query_one("#dist-list", TokenList).focus()
        await pilot.press("down", "down", "enter")
        await settle(pilot)
        assert bard_tree.node(bard_tree.selected).token_ids == [top.ids[2]]
        await pilot.press("u", "u")
        assert len(bard_tree) == 1


async def test_type_text_adds_a_scored_child(bard_tree, pred):
    app = LoomApp(tree=bard_tree, predictor=pred)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("i")
        assert isinstance(app.screen, TextPrompt)
        app.screen.query_one(TextArea).text = " doth\nshine"
        await pilot.press("ctrl+s")
        await settle(pilot)
        node = bard_tree.node(bard_tree.selected)
        assert node.origin == "typed" and node.text == " doth\nshine"
        assert node.token_logprobs and all(lp is not None for lp in node.token_logprobs)


async def expand_one_and_enter(pilot) -> None:
    """Sample one child of the root (the session's sampler) and select it."""
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    await pilot.press("l")


async def test_branch_from_inside_a_segment_is_one_undo_step(bard_tree, pred):
    bard_tree.sampler = Sampler(n=1, max_tokens=8)
    app = LoomApp(tree=bard_tree, predictor=pred)
    async with app.run_test(size=SIZE) as pilot:
        await expand_one_and_enter(pilot)
        await settle(pilot)
        nid = bard_tree.selected
        node = bard_tree.node(nid)
        n = node.n_tokens
        assert n >= 4
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert screen(app).token_cursor == n - 3
        assert screen(app).dist_panel.mode == "alternatives"
        await pilot.press("shift+right")
        assert screen(app).token_cursor == n - 2
        at = screen(app).token_cursor
        alts = node.alternatives[at]
        rank = 2 if alts.ids[0] == node.token_ids[at] else 1
        await pilot.press(str(rank))
        await settle(pilot)
        picked = bard_tree.node(bard_tree.selected)
        assert picked.token_ids == [alts.ids[rank - 1]]
        assert bard_tree.parent(picked.id) == nid
        assert bard_tree.node(nid).n_tokens == at
        assert len(bard_tree.children(nid)) == 2
        size = len(bard_tree)
        await pilot.press("u")
        assert len(bard_tree) == size - 2
        assert bard_tree.node(nid).n_tokens == n


async def test_split_merge_delete_edit_note(bard_tree, pred):
    bard_tree.sampler = Sampler(n=1, max_tokens=8)
    app = LoomApp(tree=bard_tree, predictor=pred)
    async with app.run_test(size=SIZE) as pilot:
        await expand_one_and_enter(pilot)
        nid = bard_tree.selected
        text = bard_tree.node(nid).text
        await pilot.press("x")  # no token cursor: a warning, nothing changes
        assert len(bard_tree) == 2
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        await pilot.press("x")
        assert len(bard_tree) == 3
        assert bard_tree.node(nid).n_tokens == 2
        await pilot.press("m")
        assert len(bard_tree) == 2 and bard_tree.node(nid).text == text
        # edit makes a fork
        await pilot.press("c")
        assert isinstance(app.screen, TextPrompt)
        app.screen.query_one(TextArea).text = " is the east"
        await pilot.press("ctrl+s")
        await pilot.pause()
        fork = bard_tree.node(bard_tree.selected)
        assert fork.origin == "edited" and fork.text == " is the east"
        assert len(bard_tree.children(bard_tree.root_id)) == 2
        await settle(pilot)  # scores the edited text
        # note
        await pilot.press("a")
        app.screen.query_one(TextArea).text = "good one"
        await pilot.press("ctrl+s")
        assert bard_tree.node(fork.id).note == "good one"
        # delete, undo, redo
        await pilot.press("d")
        assert fork.id not in bard_tree
        await pilot.press("ctrl+z")
        assert fork.id in bard_tree and bard_tree.selected == fork.id
        await pilot.press("ctrl+y")
        assert fork.id not in bard_tree
        await pilot.press("U")  # nothing left to redo
        assert fork.id not in bard_tree
        await pilot.press("g", "d")  # the root cannot be deleted
        assert app.last_error and "root" in app.last_error


async def test_order_and_colour_toggles():
    tree = demo_tree()
    app = LoomApp(tree=tree)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g")
        by_created = tree.children("0")
        await pilot.press("o")
        assert screen(app).order == "probability"
        await pilot.press("l")
        assert tree.selected == tree.children("0", "probability")[0]
        heads = [c.data.head for c in screen(app).tree_view.root.children]
        assert heads == tree.children("0", "probability")
        assert sorted(heads) == sorted(by_created)
        assert screen(app).colour == "probability"
        for mode in ("entropy", "surprise", "off", "probability"):
            await pilot.press("v")
            assert screen(app).colour == mode


# ---------------------------------------------------------------- settings and files
async def test_sampler_settings_validate_and_are_saved(tmp_path):
    tree = demo_tree()
    path = tmp_path / "s.json"
    app = LoomApp(tree=tree, path=path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        assert isinstance(app.screen, SamplerScreen)
        app.screen.query_one("#f-top_p", Input).value = "1.5"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SamplerScreen)
        assert "top-p" in str(app.screen.query_one("#sampler-error").render())
        app.screen.query_one("#f-top_p", Input).value = "0.9"
        app.screen.query_one("#f-n", Input).value = "5"
        app.screen.query_one("#f-seed", Input).value = "42"
        app.screen.query_one("#f-stop", Input).value = "\\n,END"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, SamplerScreen)
        assert tree.sampler.top_p == 0.9 and tree.sampler.n == 5
        assert tree.sampler.stop == ("\n", "END") and tree.seed == 42
        await settle(pilot)  # the autosave
    saved = session.load(path)
    assert saved.sampler.n == 5 and saved.seed == 42  # remembered in the session


def test_parse_settings_messages():
    base = Sampler()
    values = {"n": "2", "max_tokens": "x", "temperature": "1", "top_p": "1", "top_k": "0",
              "min_p": "0", "seed": "", "stop": ""}
    with pytest.raises(ValueError,
                       match=r"max tokens must be an integer in \[1, 2\*\*31\), got 'x'"):
        parse_settings(values, base)
    values["max_tokens"] = "0"
    with pytest.raises(ValueError, match=r"max tokens must be an integer in \[1, "):
        parse_settings(values, base)


async def test_save_save_as_open_and_unreadable_file(tmp_path):
    tree = demo_tree()
    first = tmp_path / "a.json"
    app = LoomApp(tree=tree, path=first, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        assert app.dirty
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not app.dirty and session.load(first).node("4").bookmarked
        await pilot.press("W")
        second = tmp_path / "b.json"
        app.screen.query_one(Input).value = str(second)
        await pilot.press("enter")
        await settle(pilot)
        assert app.path == second and second.exists()
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        await pilot.press("ctrl+o")
        app.screen.query_one(Input).value = str(bad)
        await pilot.press("enter")
        await settle(pilot)
        assert app.last_error and "not valid JSON" in app.last_error
        assert app.loom is tree  # still running on the same session
        other = make_tree(30)
        session.save(other, tmp_path / "c.json")
        await pilot.press("O")
        app.screen.query_one(Input).value = str(tmp_path / "c.json")
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.loom) == 30 and app.path == tmp_path / "c.json"


async def test_quit_asks_when_unsaved_and_not_when_autosaved(tmp_path):
    app = LoomApp(tree=demo_tree(), autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "q")
        assert isinstance(app.screen, Choose)
        await pilot.press("escape")
        assert not isinstance(app.screen, Choose)
        await pilot.press("q", "d")
    assert app.return_code == 0

    path = tmp_path / "auto.json"
    tree = demo_tree()
    app = LoomApp(tree=tree, path=path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "h", "q")
        await pilot.pause()
        assert not isinstance(app.screen, Choose)
    saved = session.load(path)
    assert saved.node("4").bookmarked and saved.selected == "1"


async def test_help_screen_and_command_palette():
    tree = demo_tree()
    app = LoomApp(tree=tree)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("e")  # keys of the main screen do not leak through
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"colour")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert screen(app).colour == "entropy"


async def test_no_model_errors_are_notifications():
    app = LoomApp(tree=demo_tree())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        assert app.last_error and "no model" in app.last_error
        assert compat.notifications(app)
        await pilot.press("h")  # still running
        assert app.loom.selected == "1"


async def test_model_loads_in_a_worker(tmp_path):
    app = LoomApp(path=tmp_path / "new.json", prompt="Hello there", model="bard",
                  load_model=True, threads=1)
    async with app.run_test(size=SIZE) as pilot:
        assert app.model_loading or app.pred is not None
        await settle(pilot)
        assert not app.model_loading and app.pred.model_id == "bard"
        assert app.loom.root.distribution is not None
        assert len(screen(app).dist_panel.rows()) == 20
    assert session.load(tmp_path / "new.json").root.text == "Hello there"


async def test_model_failure_is_reported(tmp_path):
    app = LoomApp(tree=demo_tree(), model=str(tmp_path / "missing-model"), load_model=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not app.model_loading and app.pred is None
        assert app.last_error
        assert "\n" not in app.last_error


async def test_new_session_asks_for_a_prompt(tmp_path):
    path = new_session_path(tmp_path / "sessions")
    assert path.parent == tmp_path / "sessions" and path.suffix == ".json"
    app = LoomApp(path=path)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(TextArea).text = "Once upon a time"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.loom is not None and app.loom.root.text == "Once upon a time"
    data = json.loads(Path(path).read_text())
    assert data["graph"]["root"] == "0"


async def test_what_a_key_repaints_in_part_is_what_a_whole_repaint_shows():
    """The branch, the ranked rows and the status repaint only the rows that changed: after
    each key the screen must match a repaint of everything from scratch."""
    app = LoomApp(tree=demo_tree(), autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = screen_rows(app)
        assert any("ROMEO:" in row for row in screen_rows(app, styled=False))  # branch drawn
        assert first == await repainted_whole(pilot)
        for key in ["l", "j", "j", "k", "l", "h", "h", "G", "left_parenthesis",
                    "right_curly_bracket", "right_square_bracket", "escape", "v", "o", "b",
                    "shift+up", "shift+down", "g", "u", "tab", "down", "tab", "k"]:
            await pilot.press(key)
            await settle(pilot)
            shown = screen_rows(app)
            assert shown == await repainted_whole(pilot), key


async def test_an_expansion_and_its_undo_repaint_what_a_whole_repaint_shows(bard_tree, pred):
    """Pending rows stream in, are replaced by the rollouts, a rollout is deleted and the
    deletion undone: after each, the rows repainted in part match a whole repaint."""
    bard_tree.sampler = Sampler(n=3, max_tokens=12)
    app = LoomApp(tree=bard_tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for keys in (["e"], ["e"], ["l", "d"], ["u"], ["j", "d"], ["h", "u"]):
            for key in keys:
                await pilot.press(key)
            await settle(pilot)
            while screen(app).generating:
                await pilot.pause(0.05)
            await settle(pilot)
            shown = screen_rows(app)
            assert shown == await repainted_whole(pilot), keys
        assert len(bard_tree.children(bard_tree.root_id)) == 6


async def test_the_outline_repaints_only_changed_rows_and_shows_what_a_whole_repaint_does():
    """Opening and closing lines (moves, folds, the outline cursor) in a bigger tree: after
    each key the rows repainted in part match a repaint of everything."""
    import random

    from loomtui.bench.synthetic import make_tree

    tree = make_tree(400)
    app = LoomApp(tree=tree, autosave=False)
    rng = random.Random(3)
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        loom = screen(app)
        for _ in range(45):
            nid = tree.selected
            siblings = tree.siblings(nid, loom.order)
            at = siblings.index(nid)
            moves = [k for k, ok in (("h", tree.parent(nid) is not None),
                                     ("l", bool(tree.children(nid))),
                                     ("j", at + 1 < len(siblings)), ("k", at > 0),
                                     ("down", True), ("up", True), ("enter", True)) if ok]
            key = rng.choice(moves)
            await pilot.press(key)
            await pilot.pause()
            shown = screen_rows(app)
            assert shown == await repainted_whole(pilot), key


async def test_moving_along_a_chain_keeps_the_branch_start_and_redraws_only_new_lines(
        monkeypatch):
    """The branch's text starts at a steady node (see START_STEP), so a step along a chain of
    one long paragraph re-draws only the lines at its end, not every line wrapped again from a
    start one node later; what shows is what a repaint of everything shows, and it always
    ends with the selected node."""
    import re

    from textual.content import Content

    tree = Tree(Node(id="0", text="Once", origin="prompt"))
    for i in range(1, 400):  # one paragraph: no line ends where a node does
        tree.add_child(str(i - 1), Node(id=str(i), text=f" word{i} and more", origin="typed"))
    app = LoomApp(tree=tree, autosave=False)
    drawn: list[str] = []
    render = Content.render_segments

    def counted(self, *args, **kwargs):
        drawn.append(self.plain)
        return render(self, *args, **kwargs)

    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("G")
        await settle(pilot)
        branch = screen(app).branch
        starts = set()
        monkeypatch.setattr(Content, "render_segments", counted)
        for i, key in enumerate("h" * 12 + "l" * 12):
            drawn.clear()
            await pilot.press(key)
            await pilot.pause()
            hidden = re.match(r"… ([\d,]+) earlier characters", branch.plain())
            assert hidden is not None
            starts.add(hidden.group(1))
            assert branch.plain().endswith(tree.node(tree.selected).text)
            if i % 3:  # (after a repaint of everything, every line is drawn again)
                assert len([d for d in drawn if "word" in d]) <= 8, key  # not the whole panel
            else:
                shown = screen_rows(app)
                assert shown == await repainted_whole(pilot), key
        assert len(starts) <= 8  # a start one node later at each key: 24


async def test_outline_keys_select_at_once_and_scroll_in_jumps():
    """A key in the outline selects its line before the next frame is drawn (not a frame
    later, when NodeHighlighted arrives), and the outline scrolls a third of its height at a
    time: a key held down past the edge repaints the whole outline at one key in several."""
    from loomtui.bench.synthetic import make_tree

    tree = make_tree(200, branching=100)  # the root's 100 children: a line each
    tree.select(format(80, "x"))
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        view = screen(app).tree_view
        height = view.scrollable_content_region.height
        top = view.scroll_offset.y  # opened on a line below the first view: it is shown
        assert view.cursor_line == 80 and top <= 80 < top + height
        view.action_move("scroll_home")
        view.focus()
        await pilot.pause()
        assert view.cursor_line == 0 and tree.selected == tree.root_id
        tops = []
        for i in range(60):
            if i % 2:
                view.action_move("cursor_down")
            else:
                compat.send_key(app, "down")
                await pilot.pause()
            line = view.cursor_node.data
            assert tree.selected == line.focus  # at once: no message was handled in between
            top = view.scroll_offset.y
            assert top <= view.cursor_line < top + height
            tops.append(top)
        assert view.cursor_line == 60
        assert 2 <= len(set(tops)) <= 60 // (height // 3) + 2  # one line a key: 40 scrolls
        for _ in range(30):
            view.action_move("cursor_up")
            top = view.scroll_offset.y
            assert top <= view.cursor_line < top + height
        await pilot.pause()
        assert screen_rows(app) == await repainted_whole(pilot)


async def test_the_footer_is_rebuilt_only_when_the_keys_it_shows_change():
    from textual.widgets._footer import FooterKey

    from loomtui.ui.widgets.key_footer import KeyFooter

    app = LoomApp(tree=demo_tree(), autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")  # the first edit: undo is offered from now on
        await settle(pilot)
        footer = screen(app).query_one(KeyFooter)
        keys = [k.key for k in footer.query(FooterKey)]
        assert "h" in keys and "u" in keys
        before = footer.rebuilds
        for key in "jkjkbb":  # moves, and edits that leave the shown keys as they were
            await pilot.press(key)
        await settle(pilot)
        assert footer.rebuilds == before
        assert [k.key for k in footer.query(FooterKey)] == keys
        widgets = list(footer.query(FooterKey))
        esc = next(k for k in widgets if k.key == "escape")
        assert esc.has_class("-disabled")  # shown, dimmed: nothing to cancel
        await pilot.press("left_parenthesis")  # a token cursor: esc is offered, in place
        await settle(pilot)
        assert footer.rebuilds == before and list(footer.query(FooterKey)) == widgets
        assert not esc.has_class("-disabled")
        await pilot.press("escape")
        await settle(pilot)
        assert footer.rebuilds == before and esc.has_class("-disabled")

