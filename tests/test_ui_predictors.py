"""Pilot tests of several predictors in one app session: switching (key and palette), a
failing connect, an engine's partial distribution, notes said once, and the compare panel
against ``loomtui compare``. Real models (``bard``, ``smollm2``) and the real
llama-cpp-python server of tests/test_engine.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_engine import ALIAS, PROMPT, Server, free_port, server_requests
from textual.widgets import Input, OptionList, Static
from ui_helpers import SIZE, screen
from ui_helpers import settle_tolerant as settle

from loomtui.cli import main
from loomtui.core import session
from loomtui.core.grow import new_tree
from loomtui.core.node import Node
from loomtui.core.tree import Tree
from loomtui.ui import compat
from loomtui.ui.app import LoomApp
from loomtui.ui.screens.predictor_chooser import PredictorChooser
from loomtui.ui.widgets.compare_panel import ComparePanel

SMOLLM2_ID = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def bard():
    import torch

    from loomtui.backends import load_predictor

    torch.set_num_threads(1)
    return load_predictor("bard", threads=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = Server(tmp_path_factory.mktemp("engine-app") / "server.log")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file of the test's own (no profiles unless a test writes some)."""
    conf = tmp_path / "config.json"
    monkeypatch.setenv("LOOMTUI_CONFIG", str(conf))
    monkeypatch.delenv("LOOMTUI_MODEL", raising=False)
    return conf


def status(app: LoomApp) -> str:
    content = screen(app).query_one("#status", Static).content
    return getattr(content, "plain", str(content))


async def compared(pilot, panel: ComparePanel) -> None:
    """Wait until the compare panel shows a comparison (B is asked for once the selection
    rests, then computed in a worker)."""
    for _ in range(200):
        if panel.comparison is not None:
            return
        await pilot.pause(0.05)
        await settle(pilot)
    raise AssertionError(f"no comparison: {panel.message}")


async def choose(pilot, what: str) -> None:
    """P, then the chooser's line whose text is ``what`` (arrows and enter)."""
    await pilot.press("P")
    await pilot.pause()
    chooser = pilot.app.screen
    assert isinstance(chooser, PredictorChooser)
    index = next(i for i, e in enumerate(chooser.entries) if e.text == what)
    options = chooser.query_one(OptionList)
    assert options.has_focus
    for _ in range(index - (options.highlighted or 0)):
        await pilot.press("down")
    await pilot.press("enter")
    await settle(pilot)


async def type_in_chooser(pilot, text: str) -> None:
    """P, tab to the field, type ``text``, enter."""
    await pilot.press("P")
    await pilot.pause()
    assert isinstance(pilot.app.screen, PredictorChooser)
    await pilot.press("tab")
    field = pilot.app.screen.query_one(Input)
    assert field.has_focus
    field.value = text
    await pilot.press("enter")
    await settle(pilot)


# ---------------------------------------------------------------- switching
async def test_switch_by_key_and_palette_keeps_each_models_distribution(bard, tmp_path):
    tree = new_tree(bard, "ROMEO:\nBut soft, what light")
    app = LoomApp(tree=tree, predictor=bard, path=tmp_path / "s.json", autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert status(app).startswith("bard · ready")
        await choose(pilot, "smollm2")
        assert app.pred.model_id == SMOLLM2_ID
        assert [p.model_id for p in app.predictors] == ["bard", SMOLLM2_ID]
        assert status(app).startswith(f"{SMOLLM2_ID} · ready · 2 predictors (P)")
        # the selected node's distribution was checked again under the new predictor; the
        # old one is kept under the model that made it
        root = tree.root
        assert root.distribution is not None and root.distribution.model == SMOLLM2_ID
        assert root.scores["bard"].distribution.model == "bard"
        assert f"model {SMOLLM2_ID}" in screen(app).dist_panel.stats()
        # a node made now records the active predictor
        await pilot.press("1")
        await settle(pilot)
        picked = tree.node(tree.selected)
        assert picked.origin == "picked" and picked.model == SMOLLM2_ID
        # the palette switches back: bard's distribution of the root is the one kept
        await pilot.press("g", "ctrl+p")
        await pilot.pause()
        await pilot.press(*"usepredictorbard")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.pred is bard
        assert status(app).startswith("bard · ready · 2 predictors")
        assert root.distribution.model == "bard"
        assert root.scores[SMOLLM2_ID].distribution.model == SMOLLM2_ID
        # the chooser lists the loaded predictors, the active one marked, and switches
        await choose(pilot, SMOLLM2_ID)
        assert app.pred.model_id == SMOLLM2_ID
        assert root.distribution.model == SMOLLM2_ID
        await pilot.press("P")
        await pilot.pause()
        chooser = app.screen
        assert isinstance(chooser, PredictorChooser)
        loaded = [(e.text, e.detail) for e in chooser.entries if e.index is not None]
        assert loaded == [("bard", "loaded"), (SMOLLM2_ID, "active")]
        assert not any(e.name in ("bard", "smollm2") for e in chooser.entries)
        await pilot.press("escape")
        assert app.pred.model_id == SMOLLM2_ID


async def test_a_switch_during_an_expansion_keeps_each_models_caches(bard, tmp_path):
    from loomtui.backends import load_predictor

    smol = load_predictor("smollm2", threads=1)
    tree = new_tree(bard, "ROMEO:\nBut soft, what light")
    tree.sampler = tree.sampler.with_(n=2, max_tokens=8)
    app = LoomApp(tree=tree, predictor=bard, autosave=False)
    app.predictors.append(smol)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bard.store.clear()  # node ids repeat across tests; its cache starts empty here
        screen(app).action_expand()  # the e key, and in the same turn of the loop...
        assert screen(app).generating
        app.use_predictor(smol)  # ...a switch while bard samples
        await settle(pilot)
        kids = tree.children(tree.root_id)
        assert len(kids) == 2 and all(tree.node(k).model == "bard" for k in kids)
        # the caches bard computed went to bard (a speed-up), not to the active predictor
        assert all(k in bard.store for k in kids)
        await pilot.press("l")
        await settle(pilot)
        shown = tree.node(tree.selected).distribution
        assert shown is not None and shown.model == smol.model_id
    # smollm2's distribution after bard's child, computed afresh on a copy of the path
    # (bard's caches were not handed to smollm2); segment by segment, as smollm2 tokenises
    # another model's nodes (a random child may start mid-word)
    path = tree.path(tree.selected)
    copy = Tree(Node(id="c0", text=tree.node(path[0]).text, origin="prompt"))
    for i, nid in enumerate(path[1:], 1):
        copy.add_child(f"c{i - 1}", Node(id=f"c{i}", text=tree.node(nid).text, origin="typed"))
    fresh = smol.distribution(copy, f"c{len(path) - 1}", 20)
    assert fresh.top.texts[:5] == shown.top.texts[:5]
    assert max(abs(a - b) for a, b in zip(fresh.top.logprobs, shown.top.logprobs,
                                           strict=False)) < 1e-3


async def test_failing_connect_leaves_the_old_predictor_active(bard, tmp_path):
    tree = new_tree(bard, "ROMEO:\nBut soft")
    app = LoomApp(tree=tree, predictor=bard, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
        await type_in_chooser(pilot, url)
        assert app.pred is bard and app.predictors == [bard] and app.adding is None
        error = app.last_error
        assert error and "\n" not in error and "127.0.0.1" in error
        assert status(app).startswith("bard · ready") and "loading" not in status(app)
        # the palette offers to connect to a URL typed into it: the same one line
        app.last_error = None
        await pilot.press("ctrl+p")
        await pilot.pause()
        app.screen.query_one(Input).value = url
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.pred is bard and app.last_error and "127.0.0.1" in app.last_error
        await type_in_chooser(pilot, "no-such-model")
        assert app.pred is bard
        assert app.last_error and "no-such-model" in app.last_error
        assert "\n" not in app.last_error
        await pilot.press("e")  # the loom goes on with the old predictor
        await settle(pilot)
        assert tree.n_children(tree.root_id) == tree.sampler.n


# ---------------------------------------------------------------- an engine
async def test_engine_partial_distribution_notes_once_and_compare(bard, server: Server,
                                                                  tmp_path: Path, capsys,
                                                                  no_config: Path):
    from loomtui.backends import load_predictor

    local = load_predictor("smollm2", threads=1)
    no_config.write_text(json.dumps({"engines": {"llama": {"url": server.url,
                                                           "model": ALIAS}}}))
    path = tmp_path / "c.json"
    tree = Tree(Node(id="0", text=PROMPT, origin="prompt"), model=local.model_id)
    app = LoomApp(tree=tree, predictor=local, path=path, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = server_requests(server)
        await choose(pilot, "profile llama")  # the configured profile
        engine = app.pred
        assert engine.model_id == f"engine:{server.url}#{ALIAS}"
        assert status(app).startswith(f"{ALIAS}@127.0.0.1:{server.port} · ready")
        assert server_requests(server) > before
        # the engine's top-k: "top-20 only", the remaining mass, entropy unknown (not 0)
        dist = tree.root.distribution
        assert dist is not None and dist.partial and dist.entropy is None
        stats = screen(app).dist_panel.stats()
        rest = 100 * (1 - dist.mass)
        assert f"top-{len(dist.top)} only\nremaining mass {rest:.1f}%\n" in stats
        assert "entropy unknown" in stats and "nats" not in stats
        assert len(screen(app).dist_panel.rows()) == len(dist.top) == 20
        # compare: the engine (active) against smollm2 in process, as `loomtui compare`
        await pilot.press("C")
        panel = screen(app).query_one(ComparePanel)
        await compared(pilot, panel)
        assert panel.display and not screen(app).dist_panel.display
        c = panel.comparison
        assert c is not None and c.model_active == engine.model_id
        assert c.model_other == SMOLLM2_ID
        shown = panel.text()
        assert f"KL(A || B) >= {c.kl:.4f} nats" in shown
        assert f"total variation >= {c.tv:.4f}" in shown and "'other'" in shown
        assert tree.root.scores[SMOLLM2_ID].distribution is not None  # kept: B on the node
        # an engine that cannot score typed text (as llama-server) says so once
        engine.echo = False
        for text in (" Paris", " Lyon"):
            await pilot.press("g", "i")
            await pilot.pause()
            app.screen.query_one("TextArea").text = text  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            await settle(pilot)
        said = [s for s in app.said if "cannot score given text" in s]
        assert len(said) == 1 and said[0].startswith(f"{ALIAS}@127.0.0.1")
        engine.echo = True
        await pilot.press("g")
        await settle(pilot)
        app.action_save()
        await settle(pilot)
    saved = session.load(path)
    assert saved.root.distribution.model == engine.model_id
    rc = main(["compare", str(path), "--node", "0", "--with", "smollm2", "--engine",
               server.url, "--threads", "1"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    kl = float(re.search(r"KL\(active \|\| other\) >= ([0-9.]+)", out).group(1))
    tv = float(re.search(r"total variation >= ([0-9.]+)", out).group(1))
    # the same two distributions of the same context (the engine's recomputed): equal to
    # the printed precision, up to the engine's run-to-run noise
    assert (f"{kl:.4f}", f"{tv:.4f}") == (f"{c.kl:.4f}", f"{c.tv:.4f}"), (out, c.kl, c.tv)


async def test_compare_panel_at_80x24_and_with_one_predictor(bard, tmp_path):
    from loomtui.backends import load_predictor

    tree = new_tree(bard, "ROMEO:\nBut soft, what light")
    app = LoomApp(tree=tree, predictor=bard, autosave=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("C")
        await settle(pilot)
        panel = screen(app).query_one(ComparePanel)
        assert panel.comparison is None and "P loads another" in panel.message
        app.use_predictor(load_predictor("smollm2", threads=1))
        await compared(pilot, panel)
        c = panel.comparison
        assert c is not None and c.model_active == SMOLLM2_ID and c.model_other == "bard"
        region = panel.region
        assert region.right <= 80 and region.bottom <= 23 and region.width >= 36
        table = panel.query_one("#cmp-table")
        assert table.region.height >= 6  # rows visible at 80x24
        assert screen(app).branch.region.width >= 12  # the branch is still there
        assert f"KL(A || B) >= {c.kl:.4f}" in panel.text()
        # untrusted token texts: controls visible, never markup
        assert "\x1b" not in panel.text()
        # a new selection is compared in turn (B computed for it in the background)
        await pilot.press("1")
        await settle(pilot)
        child = tree.selected
        assert child != tree.root_id
        await compared(pilot, panel)
        assert "bard" in tree.node(child).scores  # B's distribution is kept on the node
        assert panel.comparison.rows != c.rows
        await pilot.press("C")
        assert not panel.display and screen(app).dist_panel.display
        assert not compat.notifications(app) or all(
            n.severity != "error" for n in compat.notifications(app))


async def test_compare_with_an_engine_that_went_away_is_one_line(bard, tmp_path: Path):
    private = Server(tmp_path / "private.log")
    try:
        tree = new_tree(bard, "ROMEO:\nBut soft")
        app = LoomApp(tree=tree, predictor=bard, autosave=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await type_in_chooser(pilot, f"{private.url}#{ALIAS}")
            engine = app.pred
            assert engine.model_id == f"engine:{private.url}#{ALIAS}"
            await choose(pilot, "bard")  # bard active again; the engine is B
            assert app.pred is bard and app.other_predictor() is engine
            await pilot.press("1")  # a new node: the engine has no distribution of it
            await settle(pilot)
            private.stop()
            await pilot.press("C")
            panel = screen(app).query_one(ComparePanel)
            for _ in range(100):
                if panel.message.startswith("B failed"):
                    break
                await pilot.pause(0.05)
                await settle(pilot)
            assert panel.message.startswith("B failed: ") and "\n" not in panel.message
            assert panel.comparison is None and app.pred is bard
            assert app.last_error and "\n" not in app.last_error
            picked = tree.selected
            await pilot.press("e")  # the loom goes on
            await settle(pilot)
            assert tree.n_children(picked) == tree.sampler.n
    finally:
        private.stop()
