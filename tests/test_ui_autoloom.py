"""Autoloom from the app (issue 13): the dialog, the run in a worker, cancel, undo, and edits
refused meanwhile; Pilot on the bundled model (bard)."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Input, Select
from ui_helpers import SIZE, screen, settle

from loomtui.core import autoloom
from loomtui.core.grow import new_tree
from loomtui.core.node import Sampler
from loomtui.core.tree import Tree
from loomtui.ui.app import LoomApp
from loomtui.ui.screens.autoloom import AutoloomScreen, parse_plan


@pytest.fixture
def tree(pred) -> Tree:
    t = new_tree(pred, "ROMEO:\nBut soft, what light")
    t.sampler = Sampler(n=2, max_tokens=4)
    return t


async def fill(pilot, **values: str) -> AutoloomScreen:
    """Open the dialog with A and fill its fields."""
    await pilot.press("A")
    await pilot.pause()
    dialog = pilot.app.screen
    assert isinstance(dialog, AutoloomScreen)
    for key, value in values.items():
        if key in ("strategy", "score"):
            dialog.query_one(f"#f-{key}", Select).value = value
        else:
            dialog.query_one(f"#f-{key}", Input).value = value
    await pilot.pause()
    return dialog


async def test_the_dialog_runs_exactly_the_budget_selects_the_best_leaf_and_undoes_in_one_step(
        tree, pred):
    n0 = len(tree)
    app = LoomApp(tree=tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        await fill(pilot, strategy="beam", budget="7", width="2", depth="3", seed="5")
        await pilot.press("ctrl+s")
        await settle(pilot)
        while loom.autolooming:
            await pilot.pause(0.05)
        await settle(pilot)
        result = loom.last_run
        assert result is not None and result.stopped == "budget"
        assert len(tree) == n0 + 7 and len(result.made) == 7
        made = set(result.made)
        assert all(f"autoloom:{result.run}" in tree.node(n).tags for n in made)
        # the best leaf: the made node no child was grown from, with the best score
        leaves = [n for n in result.made if not tree.children(n)]
        best = max(leaves, key=lambda n: tree.node(n).foreign["autoloom"]["value"])
        assert tree.selected == result.best == best
        # every line of the outline is there (the run's steps were drawn as they came)
        assert loom.tree_view.line_of(best) is not None
        assert not loom.autoloom_bar.display
        await pilot.press("u")  # the whole run, one step
        await settle(pilot)
        assert len(tree) == n0 and not made & {n.id for n in tree.nodes()}
        await pilot.press("U")
        await settle(pilot)
        assert len(tree) == n0 + 7


async def test_replays_from_the_seed_like_the_core(pred):
    def fresh() -> Tree:
        t = new_tree(pred, "ROMEO:\nBut soft, what light")
        t.sampler = Sampler(n=2, max_tokens=4)
        return t

    core_tree = fresh()
    plan = autoloom.Plan("best-first", 6, width=2, seed=11)
    expected = autoloom.run(core_tree, pred, core_tree.root_id, plan,
                            core_tree.sampler.with_(n=2))
    tree = fresh()
    app = LoomApp(tree=tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        await fill(pilot, strategy="best-first", budget="6", width="2", depth="", seed="11")
        await pilot.press("enter")
        while loom.autolooming or loom.last_run is None:
            await pilot.pause(0.05)
        await settle(pilot)
    assert [tree.node(n).text for n in loom.last_run.made] == [
        core_tree.node(n).text for n in expected.made]
    assert loom.last_run.best_score == expected.best_score


async def test_esc_cancels_keeps_what_was_grown_and_edits_are_refused_meanwhile(tree, pred):
    tree.sampler = Sampler(n=2, max_tokens=48)
    n0 = len(tree)
    app = LoomApp(tree=tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        await fill(pilot, strategy="sample", budget="1000", width="4", depth="5", seed="1")
        await pilot.press("enter")
        for _ in range(400):  # until the first step has attached
            await pilot.pause(0.05)
            if len(tree) > n0:
                break
        assert loom.autolooming and loom.autoloom_bar.display
        assert "/1000 nodes" in str(loom.query_one("#autoloom-stats").render())
        revision = tree.revision
        selected = tree.selected
        for key in ("d", "b", "e", "u", "x", "m", "c", "i", "a", "s", "1", "A"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is loom, key  # no dialog opened
        refused = [m for m in app.said if "refused while autoloom" in m]
        assert len(refused) >= 10 and all("\n" not in m for m in refused)
        await pilot.press("l")  # navigation keeps working
        assert tree.selected != selected
        assert tree.revision >= revision
        await pilot.press("escape")
        while loom.autolooming:
            await pilot.pause(0.05)
        await settle(pilot)
        result = loom.last_run
        assert result is not None and result.stopped == "cancelled"
        assert 0 < len(result.made) < 1000
        assert len(tree) == n0 + len(result.made)  # what was grown is kept
        assert all(n in tree for n in result.made)
        await pilot.press("u")
        await settle(pilot)
        assert len(tree) == n0


async def test_quit_during_a_run_stops_it_and_keeps_what_was_grown(tmp_path, pred):
    from loomtui.core import session

    tree = new_tree(pred, "ROMEO:\nBut soft, what light")
    tree.sampler = Sampler(n=2, max_tokens=48)
    path = tmp_path / "s.json"
    session.save(tree, path)
    app = LoomApp(tree=tree, predictor=pred, path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        await fill(pilot, strategy="sample", budget="1000", width="4", depth="5")
        await pilot.press("enter")
        for _ in range(400):
            await pilot.pause(0.05)
            if len(tree) > 1:
                break
        assert loom.autolooming
        await pilot.press("q")
        for _ in range(400):
            await asyncio.sleep(0.05)
            if not app.is_running:
                break
    assert not app.is_running
    saved = session.load(path)
    assert 1 < len(saved) < 1001 and len(saved) == len(tree)


def test_the_dialog_refuses_bad_values_in_one_line():
    base = {"strategy": "beam", "budget": "8", "width": "2", "depth": "", "seed": "",
            "score": "logprob", "question": ""}
    assert parse_plan(base).budget == 8
    for change, says in [({"budget": "0"}, "budget (nodes to create) must be an integer in "
                          "[1, 1000], got 0"),
                         ({"budget": "10000000"}, "in [1, 1000]"),
                         ({"budget": "many"}, "budget must be an integer in [1, 1000]"),
                         ({"width": "999"}, "width must be an integer in [1, 256]"),
                         ({"depth": "0"}, "depth must be an integer in [1, 1000]"),
                         ({"seed": "-1"}, "seed must be an integer in [0, 2**63)"),
                         ({"score": "judge"}, "needs a question"),
                         ({"score": "judge", "question": "Vivid?"}, "{text} exactly once")]:
        with pytest.raises(autoloom.AutoloomError) as info:
            parse_plan({**base, **change})
        assert says in str(info.value) and "\n" not in str(info.value)


async def test_the_dialog_shows_bounds_and_an_error_line(tree):
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = await fill(pilot, budget="0")
        bounds = " ".join(str(w.render()) for w in dialog.query(".bounds"))
        assert "[1, 1000]" in bounds and "[1, 256]" in bounds and "[0, 2**63)" in bounds
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        error = str(dialog.query_one("#autoloom-error").render())
        assert "budget (nodes to create) must be an integer in [1, 1000], got 0" in error
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen(app) and len(tree) == 1


async def test_a_run_is_saved_step_by_step_and_open_waits_for_it(tree, pred, tmp_path):
    """Review finding: a run's nodes were saved only when it ended, and ctrl+o during a run
    dropped them. Each step now autosaves, and open/reload are refused in one line."""
    from loomtui.core import session

    path = tmp_path / "run.json"
    tree.sampler = Sampler(n=2, max_tokens=48)
    app = LoomApp(tree=tree, predictor=pred, path=path, autosave_delay=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        loom = screen(app)
        await fill(pilot, strategy="sample", budget="1000", width="4", depth="5", seed="1")
        await pilot.press("enter")
        saved = 0
        for _ in range(600):  # until a save holds some of the run
            await pilot.pause(0.05)
            if path.exists():
                saved = len(session.load(path))
                if saved > 1:
                    break
        assert loom.autolooming and saved > 1
        for key in ("ctrl+o", "ctrl+r"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is loom, key
            assert "the tree is growing" in (app.last_error or "")
        await pilot.press("escape")
        while loom.autolooming:
            await pilot.pause(0.05)
        await settle(pilot)
        while app.saving or app.dirty:
            await pilot.pause(0.05)
    assert len(session.load(path)) == len(tree)
