"""What a daily user meets first (issue 10): the session given at launch opens after the first
frame, the file picker, and more alternatives at a position on demand."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_helpers import SIZE, settle

from loomtui.core import session
from loomtui.ui.app import LoomApp, make_app
from loomtui.ui.demo import demo_tree
from loomtui.ui.screens.loom import LoomScreen
from loomtui.ui.screens.opening import OpeningScreen


async def test_the_session_given_at_launch_opens_after_the_first_frame(tmp_path):
    path = tmp_path / "s.json"
    session.save(demo_tree(), path)
    app = make_app(str(path), model="bard", threads=1)
    assert isinstance(app, LoomApp) and app.loom is None  # nothing read before the app runs
    frames = []
    async with app.run_test(size=SIZE) as pilot:
        frames.append(type(app.screen))
        await settle(pilot)
        assert isinstance(app.screen, LoomScreen)
        assert len(app.loom) == len(demo_tree()) and app.path == path
        assert app.pred is not None and not app.model_loading  # then the model loaded
    assert frames == [OpeningScreen]


async def test_a_bad_file_at_launch_ends_the_app_with_one_line_and_is_not_written(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"directed": true, "graph": {"format": "loomtui-session", "version": 2')
    before = path.read_bytes()
    app = make_app(str(path), model="bard", threads=1)
    assert isinstance(app, LoomApp)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
    assert app.return_code == 2
    assert app.startup_error is not None and "bad.json" in app.startup_error
    assert "\n" not in app.startup_error
    assert app.pred is None  # no model was loaded for nothing
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["nodir/s.json", "."])
def test_make_app_refuses_what_cannot_be_a_session_file(tmp_path, name):
    error = make_app(str(tmp_path / name))
    assert isinstance(error, str) and "\n" not in error


# ---------------------------------------------------------------------------- file picker
def test_completion_extends_to_the_common_prefix_and_enters_a_lone_directory(tmp_path):
    from loomtui.core.completion import complete

    (tmp_path / "stories").mkdir()
    (tmp_path / "session-a.json").write_text("{}")
    (tmp_path / "session-b.json").write_text("{}")
    (tmp_path / ".hidden.json").write_text("{}")
    text, found = complete(str(tmp_path) + "/se")
    assert text == str(tmp_path) + "/session-"
    assert [e.path.name for e in found] == ["session-a.json", "session-b.json"]
    assert complete(str(tmp_path) + "/st")[0] == str(tmp_path) + "/stories/"
    assert complete(str(tmp_path) + "/zz") == (str(tmp_path) + "/zz", [])
    names = [e.path.name for e in complete(str(tmp_path) + "/")[1]]
    assert names == ["stories", "session-a.json", "session-b.json"]  # dirs first, no hidden
    assert complete(str(tmp_path / "nodir") + "/x") == (str(tmp_path / "nodir") + "/x", [])


def test_recent_list_keeps_newest_first_and_survives_a_hostile_file(tmp_path):
    from loomtui.core import recent

    store = tmp_path / "recent.json"
    for name in ("a.json", "b.json", "a.json"):
        recent.remember(tmp_path / name, store)
    assert recent.read_recent(store) == [tmp_path / "a.json", tmp_path / "b.json"]
    for hostile in ('{"not": "a list"}', '["relative.json", 7, "\\u0000x", "/ok.json"]',
                    "[" * 100000, "\x00\xff"):
        store.write_text(hostile, errors="surrogateescape")
        assert all(p.is_absolute() for p in recent.read_recent(store))
    store.write_text('["relative.json", "/ok.json"]')
    assert recent.read_recent(store) == [Path("/ok.json")]
    for k in range(recent.KEEP + 5):
        recent.remember(tmp_path / f"{k}.json", store)
    assert len(recent.read_recent(store)) == recent.KEEP
    assert recent.read_recent(store)[0] == tmp_path / f"{recent.KEEP + 4}.json"


async def test_open_dialog_lists_recent_sessions_and_completes_with_tab(tmp_path):
    from textual.widgets import Input, OptionList

    from loomtui.core import recent
    from loomtui.ui.screens.open_file import OpenFile

    other = tmp_path / "elsewhere" / "old-story.json"
    other.parent.mkdir()
    session.save(demo_tree(), other)
    recent.remember(other)
    (tmp_path / "sessions").mkdir()
    session.save(demo_tree(), tmp_path / "sessions" / "mine.json")
    app = LoomApp(tree=demo_tree(), path=tmp_path / "sessions" / "mine.json",
                  sessions_dir=tmp_path / "sessions", autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, OpenFile)
        field = dialog.query_one(Input)
        assert field.value == str(tmp_path / "sessions") + "/"  # starts in the session's dir
        field.value = ""  # nothing typed: the recent sessions, then the sessions directory
        await pilot.pause()
        rows = [str(o.prompt) for o in dialog.query_one(OptionList).options]
        assert "old-story.json" in rows[0] and any("mine.json" in r for r in rows[1:])
        field.value = str(tmp_path / "else")
        await pilot.press("tab")  # completes the directory, as a shell does
        assert field.value == str(tmp_path / "elsewhere") + "/"
        await pilot.press("o", "tab")
        assert field.value == str(other)
        await pilot.press("enter")
        await settle(pilot)
        assert app.path == other and not isinstance(app.screen, OpenFile)
    assert recent.read_recent()[0] == other


async def test_open_dialog_picks_from_the_list_with_arrows_and_enters_directories(tmp_path):
    from textual.widgets import Input

    from loomtui.ui.screens.open_file import OpenFile

    (tmp_path / "sub").mkdir()
    target = tmp_path / "sub" / "s.json"
    session.save(demo_tree(), target)
    app = LoomApp(tree=demo_tree(), path=tmp_path / "x.json", autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, OpenFile)
        field = app.screen.query_one(Input)
        assert field.value == str(tmp_path) + "/"
        await pilot.press("s", "u", "tab")  # typing goes on after the directory shown
        assert field.value == str(tmp_path / "sub") + "/"
        field.value = str(tmp_path) + "/"
        await pilot.pause()
        await pilot.press("down", "enter")  # the first entry: the directory "sub"
        await pilot.pause()
        assert app.screen.query_one(Input).value == str(tmp_path / "sub") + "/"
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.path == target


async def test_file_names_with_control_characters_are_shown_visibly(tmp_path):
    from textual.widgets import OptionList

    from loomtui.ui.screens.open_file import OpenFile

    (tmp_path / "evil\x1b[2J[b]x.json").write_text("{}")
    app = LoomApp(tree=demo_tree(), path=tmp_path / "x.json", autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, OpenFile)
        rows = [str(o.prompt) for o in app.screen.query_one(OptionList).options]
        assert any("evil␛[2J[b]x.json" in r for r in rows)
        assert not any("\x1b" in r for r in rows)


# ---------------------------------------------------------------------------- more alternatives


async def test_plus_shows_more_alternatives_at_the_token_cursor_and_picks_from_them(pred):
    from loomtui.core import grow
    from loomtui.core.node import Sampler

    tree = grow.new_tree(pred, "ROMEO:\nBut soft, what light")
    child = grow.expand(tree, pred, tree.root_id, Sampler(n=1, max_tokens=8), seed=1)[0]
    tree.select(child.id)
    app = LoomApp(tree=tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = app.loom_screen
        await pilot.press("left_parenthesis", "right_square_bracket", "right_square_bracket")
        await pilot.pause()
        assert loom.token_cursor == 2
        stored = len(child.alternatives[2])
        assert len(loom.dist_panel.rows()) == stored
        await pilot.press("plus")
        await settle(pilot)
        rows = loom.dist_panel.rows()
        want = grow.distribution_at(tree, pred, child.id, 2, 100).top
        assert len(rows) == 100
        assert [r.split()[0] for r in rows[:3]] == ["1", "2", "3"]
        assert want.ids[:stored] == child.alternatives[2].ids  # the stored ones come first
        loom.dist_panel.query_one("#dist-list").focus()
        for _ in range(stored + 2):  # a row the token never stored
            await pilot.press("down")
        await pilot.press("enter")
        await settle(pilot)
        new = tree.node(tree.selected)
        assert new.origin == "picked" and new.token_ids == [want.ids[stored + 2]]
        assert tree.parent(new.id) == child.id and child.n_tokens == 2
        await pilot.press("u")  # one undo step: the split and the pick
        await settle(pilot)
        assert tree.node(child.id).n_tokens == 8 and len(tree) == 2


async def test_plus_without_a_cursor_stores_the_next_tokens_top_100(pred):
    from loomtui.core import grow

    tree = grow.new_tree(pred, "Once upon a time")
    app = LoomApp(tree=tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert len(tree.root.distribution.top) == 20
        await pilot.press("plus")
        await settle(pilot)
        assert len(tree.root.distribution.top) == 100
        assert len(app.loom_screen.dist_panel.rows()) == 100


async def test_a_replaced_session_is_collected_although_loading_froze_it(tmp_path):
    import gc
    import weakref

    from loomtui.ui import app as app_module

    for name in ("a.json", "b.json"):
        session.save(demo_tree(), tmp_path / name)
    first = session.load(tmp_path / "a.json")  # loading freezes what it parsed
    ref = weakref.ref(first)
    app = LoomApp(tree=first, path=tmp_path / "a.json", autosave=False)
    app_module.RELEASE_DELAY = 0.5  # the old screen is taken down by then
    try:
        async with app.run_test(size=SIZE) as pilot:
            del first
            app._open(tmp_path / "b.json")
            await settle(pilot)
            assert app.path == tmp_path / "b.json"
            for _ in range(40):
                await pilot.pause(0.1)
                if ref() is None:
                    break
            assert ref() is None
    finally:
        app_module.RELEASE_DELAY = 2.0
        gc.unfreeze()


async def test_more_alternatives_are_the_loaded_models_and_never_shortened(pred):
    """Review findings: the child picked from `+`'s list is labelled with the model that
    computed it (not the node's), a list from another model is not offered, and the
    20-entry distribution worker never replaces `+`'s 100 entries."""
    from loomtui.core import grow
    from loomtui.core.node import Sampler

    tree = grow.new_tree(pred, "ROMEO:\nBut soft, what light")
    child = grow.expand(tree, pred, tree.root_id, Sampler(n=1, max_tokens=8), seed=1)[0]
    child.model = "someone-else"  # as if another model had grown it
    tree.select(child.id)
    app = LoomApp(tree=tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = app.loom_screen
        await pilot.press("left_parenthesis", "right_square_bracket", "right_square_bracket")
        await pilot.press("plus")
        await settle(pilot)
        assert len(loom.dist_panel.rows()) == 100
        stamp, model, at, choices = loom.more
        loom.more = (stamp, "another-model", at, choices)  # computed by a model since gone
        assert loom._more_here() is None
        loom.more = (stamp, model, at, choices)
        await pilot.press("9")
        await settle(pilot)
        new = tree.node(tree.selected)
        assert new.model == pred.model_id and new.token_ids == [choices.ids[8]]

        parent = tree.root_id  # a full distribution is not replaced by a shorter one
        full = pred.distribution(tree, parent, 100)
        tree.set_distribution(parent, full)
        loom._distribution_done((grow.Stamp.of(tree, parent), pred.distribution(tree, parent)))
        assert len(tree.node(parent).distribution.top) == 100


def test_paths_the_os_refuses_never_raise(tmp_path):
    from loomtui.core import completion

    long = tmp_path / ("x" * 300) / "s.json"
    assert completion.stat(long) is None and not completion.is_dir(long)
    assert completion.stat(Path("a\0b")) is None
    assert completion.complete(str(long)) == (str(long), [])
    assert completion.entries(Path("a\0b")) == []


async def test_open_dialog_survives_a_remembered_path_the_os_refuses(tmp_path):
    from textual.widgets import OptionList

    from loomtui.core import recent
    from loomtui.ui.screens.open_file import OpenFile

    good = tmp_path / "good.json"
    session.save(demo_tree(), good)
    recent.remember(tmp_path / ("x" * 300) / "s.json")
    recent.remember(good)
    app = LoomApp(tree=demo_tree(), autosave=False,  # no file: the field starts empty
                  sessions_dir=tmp_path / "no-sessions-here")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, OpenFile)
        rows = [str(o.prompt) for o in app.screen.query_one(OptionList).options]
        assert len(rows) == 1 and "good.json" in rows[0]


def test_a_listing_cut_short_completes_nothing(tmp_path, monkeypatch):
    from loomtui.core import completion

    for k in range(30):
        (tmp_path / f"session-{k:02d}.json").write_text("{}")
    monkeypatch.setattr(completion, "MAX_SCANNED", 10)
    listing = completion.entries(tmp_path, "session-")
    assert listing.cut and len(listing) <= 10
    assert completion.complete(str(tmp_path) + "/ses")[0] == str(tmp_path) + "/ses"
