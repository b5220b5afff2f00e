"""Background saves: a forked snapshot or a thread writes the same bytes; a file another
program changed is never written over; quit waits for the save; save as asks first."""

from __future__ import annotations

import pytest
from textual.widgets import Input
from ui_helpers import SIZE
from ui_helpers import settle_tolerant as settle

from loomtui.bench.synthetic import make_tree
from loomtui.core import session
from loomtui.core.errors import SessionError
from loomtui.core.session import ConflictError, FileStamp
from loomtui.ui.app import LoomApp, finish
from loomtui.ui.demo import demo_tree
from loomtui.ui.saver import write_session
from loomtui.ui.screens.prompt import Choose


@pytest.mark.parametrize("mode", ["steps", "fork", "thread"])
def test_write_session_writes_the_snapshot_and_checks_identity(tmp_path, mode):
    tree = make_tree(300)
    path = tmp_path / "s.json"
    written = write_session(tree, path, None, mode=mode)
    assert path.read_bytes() == session.dumps(tree)
    assert written.stamp == FileStamp.of(path) and written.revision == tree.revision
    tree.set_bookmark(tree.root_id, True)
    again = write_session(tree, path, written.stamp, mode=mode)
    assert session.load(path).root.bookmarked
    path.write_bytes(path.read_bytes() + b" ")  # another program changes the file
    changed = path.read_bytes()
    with pytest.raises(ConflictError, match="changed by another program"):
        write_session(tree, path, again.stamp, mode=mode)
    assert path.read_bytes() == changed  # not written over
    with pytest.raises(ConflictError, match="created by another program"):
        write_session(tree, path, None, mode=mode)  # we expected no file there
    assert path.read_bytes() == changed


@pytest.mark.parametrize("mode", ["steps", "fork", "thread"])
def test_a_failed_encode_is_one_line(tmp_path, mode):
    tree = demo_tree()
    tree.seed = 10**23  # over 64 bits: orjson cannot write it
    with pytest.raises(SessionError, match="cannot save") as info:
        write_session(tree, tmp_path / "s.json", None, mode=mode)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "s.json").exists()


def test_encoding_in_steps_is_the_same_bytes_and_restarts_on_a_change():
    tree = make_tree(500)
    chunks, revision, _ = session.encode_in_steps(tree, step=10)
    assert b"".join(chunks) == session.dumps(tree) and revision == tree.revision
    assert len(chunks) > 50  # written one after another, never joined into one copy
    steps = []

    def edit_midway() -> None:  # another thread edits the tree between two steps
        steps.append(1)
        if len(steps) == 3:
            tree.set_bookmark(tree.root_id, True)

    chunks, revision, _ = session.encode_in_steps(tree, step=10, pause=edit_midway)
    data = b"".join(chunks)
    assert data == session.dumps(tree) and revision == tree.revision
    assert session.loads(data).root.bookmarked and len(steps) > 50 + 3


async def test_app_never_writes_over_a_file_changed_on_disk(tmp_path):
    path = tmp_path / "s.json"
    session.save(demo_tree(), path)
    tree, stamp = session.load_stamped(path)
    app = LoomApp(tree=tree, path=path, stamp=stamp)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        other = session.load(path)
        other.set_note(other.root_id, "written by another program")
        session.save(other, path)
        theirs = path.read_bytes()
        await pilot.press("b")  # a change: the autosave finds the file changed
        await settle(pilot)
        assert app.conflict and path.read_bytes() == theirs
        assert isinstance(app.screen, Choose)
        assert "changed by another program" in (app.last_error or "")
        await pilot.press("r")  # reload
        await settle(pilot)
        assert app.loom.root.note == "written by another program" and not app.conflict
        await pilot.press("b")
        await settle(pilot)
        assert session.load(path).node(app.loom.selected).bookmarked


async def test_quit_waits_for_the_save(tmp_path):
    path = tmp_path / "s.json"
    tree = make_tree(2000)
    app = LoomApp(tree=tree, path=path, autosave_delay=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("b", "q")
        await settle(pilot)
    assert app.return_code == 0
    assert session.load(path).node(tree.selected).bookmarked


async def test_save_as_asks_before_overwriting(tmp_path):
    path, other = tmp_path / "a.json", tmp_path / "b.json"
    session.save(make_tree(10), other)
    before = other.read_bytes()
    app = LoomApp(tree=demo_tree(), path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("W")
        app.screen.query_one(Input).value = str(other)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, Choose)
        await pilot.press("escape")
        await settle(pilot)
        assert other.read_bytes() == before and app.path == path
        await pilot.press("W")
        app.screen.query_one(Input).value = str(other)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert app.path == other and len(session.load(other)) == len(app.loom)


async def test_a_crash_exits_non_zero_with_the_session_saved(tmp_path):
    path = tmp_path / "s.json"
    tree = demo_tree()
    app = LoomApp(tree=tree, path=path, autosave=False)
    with pytest.raises(RuntimeError, match="boom"):
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("b")
            screen = app.loom_screen

            def boom() -> None:
                raise RuntimeError("boom")

            screen.action_root = boom  # a bug in a key's handler
            await pilot.press("g")
            await pilot.pause()
    assert finish(app) == 1
    assert session.load(path).node(tree.selected).bookmarked


def test_an_autosave_of_a_tree_that_keeps_changing_gives_up_instead_of_one_long_step():
    """Each change restarts an encoding in steps; an autosave gives up after a few (the
    change schedules another) where it used to encode 40,000 nodes in one GIL-holding step."""
    tree = make_tree(300)
    steps = []

    def keep_changing() -> None:
        steps.append(1)
        if len(steps) % 4 == 0:
            tree.set_bookmark(tree.root_id, not tree.root.bookmarked)

    with pytest.raises(session.Superseded):
        session.encode_in_steps(tree, step=10, pause=keep_changing, restarts=2, give_up=True)
    assert len(steps) == 3 * 4  # three tries, each cut short by a change
    steps.clear()
    chunks, revision, _ = session.encode_in_steps(tree, step=10, pause=keep_changing, restarts=2)
    assert b"".join(chunks) == session.dumps(tree) and revision == tree.revision  # one step


async def test_a_superseded_autosave_is_tried_again(tmp_path):
    path = tmp_path / "s.json"
    app = LoomApp(tree=demo_tree(), path=path, autosave_delay=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.loom.set_bookmark(app.loom.root_id, True)
        app.saving = True
        app._saving_tree = app.loom
        app._saved(None, session.Superseded())
        assert app.last_error is None  # not an error: it is saved on the next try
        await settle(pilot)
        while app.saving or app.dirty:
            await pilot.pause(0.05)
    assert session.load(path).root.bookmarked
