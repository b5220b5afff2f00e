"""Regression tests for what a daily user hit (issue 10) and for hostile text in the app
(issue 9): each reproduces the report, on the bundled model or fixed data."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest
from textual.widgets import Button, TextArea
from ui_helpers import SIZE, screen, settle

from loomtui.core import session
from loomtui.core.grow import new_tree
from loomtui.core.node import Choices, Distribution, Node, Sampler
from loomtui.core.tree import Tree
from loomtui.ui import compat
from loomtui.ui.app import LoomApp
from loomtui.ui.demo import demo_tree
from loomtui.ui.path_cache import PathCache
from loomtui.ui.screens.help import HelpScreen
from loomtui.ui.screens.prompt import TextPrompt
from loomtui.ui.screens.sampler import SamplerScreen, parse_settings
from loomtui.ui.widgets.branch_view import branch_text

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;aGVsbG8=\x07"


@pytest.fixture
def bard_tree(pred) -> Tree:
    tree = new_tree(pred, "ROMEO:\nBut soft, what light")
    tree.sampler = Sampler(n=2, max_tokens=6)
    return tree


def shown_text(app: LoomApp) -> str:
    """Everything the loom screen draws, as text."""
    loom = screen(app)
    return "\n".join([loom.branch.plain(), str(loom.query_one("#info").render()),
                      str(loom.query_one("#status").render()),
                      *[str(t.label) for t in loom.tree_view.root.children],
                      str(loom.tree_view.root.label), *loom.dist_panel.rows(),
                      str(loom.query_one("#dist-stats").render())])


# ---------------------------------------------------------------- markup and terminal safety
async def test_markup_in_the_session_model_name_is_shown_not_run(tmp_path):
    tree = demo_tree()
    tree.model = "[@click=app.quit]GM[/] [/]"
    app = LoomApp(tree=tree, model="bard", load_model=True, threads=1, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.pred is not None and app.is_running
        assert any("[@click=app.quit]GM[/] [/]" in m for m in app.said)
        assert any("[@click=app.quit]GM[/] [/]" in n.message
                   for n in compat.notifications(app))  # shown as written


async def test_markup_in_a_distribution_model_is_shown_not_parsed():
    tree = demo_tree()
    tree.node(tree.selected).distribution.model = "bad [/] markup [/bogus"
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "bad [/] markup [/bogus" in shown_text(app)


async def test_control_characters_from_a_file_never_reach_the_terminal(tmp_path):
    tree = demo_tree()
    tree.update("4", text="sun" + HOSTILE, note="note" + HOSTILE, model="m" + HOSTILE,
                token_ids=None, token_offsets=None, token_logprobs=None, alternatives=None)
    path = tmp_path / "hostile.json"
    session.save(tree, path)
    app = LoomApp(tree=session.load(path), path=path, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h", "l")
        await pilot.pause()
        text = shown_text(app)
        assert "pwned" in text and "\x1b" not in text and "\x07" not in text
        assert "␛]0;pwned␇" in text  # made visible
        await pilot.press("c")  # the edit dialog's title and text are safe too
        assert isinstance(app.screen, TextPrompt)
        assert "\x1b" not in str(app.screen.query_one(".dialog").border_title)


# ---------------------------------------------------------------- picking
async def test_pick_works_before_any_model(tmp_path):
    tree = demo_tree()
    top = tree.node("4").distribution.top
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        child = tree.node(tree.selected)
        assert tree.parent(child.id) == "4" and child.origin == "picked"
        assert child.token_ids == [top.ids[1]] and child.text == top.texts[1]
        assert child.token_logprobs == [top.logprobs[1]]


class HeldDistributions:
    """The bundled model, whose next-token distributions wait until the test releases them
    (so a key is pressed while the panel still shows another model's distribution)."""

    def __init__(self, pred) -> None:
        self._pred = pred
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self._pred, name)

    def distribution(self, *args, **kwargs):
        self.release.wait(30)
        return self._pred.distribution(*args, **kwargs)


async def test_pick_from_another_models_distribution_retokenises_the_shown_text(
        bard_tree, pred):
    nl = pred.tokenize("\n")
    assert len(nl) == 1 and nl != [5]
    bard_tree.root.distribution = Distribution(
        Choices([5, 5000], ["\n", "ROMEO and JULIET"], [-2.4, -3.0]), None, 0.2,
        "other-model", partial=True)
    held = HeldDistributions(pred)
    app = LoomApp(tree=bard_tree, predictor=held, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")
        for _ in range(100):
            await pilot.pause()
            if bard_tree.selected != bard_tree.root_id:
                break
        held.release.set()
        await settle(pilot)
        child = bard_tree.node(bard_tree.selected)
        assert child.token_ids == nl and child.text == "\n"  # not bard's token 5
        assert any("other-model" in m and "picked" in m for m in app.said)
        # the root's distribution is recomputed under bard; the other model's is kept
        assert bard_tree.root.distribution.model == "bard"
        assert "other-model" in bard_tree.root.scores
        # a text that is more than one token for the loaded model is refused in one line
        held.release.clear()
        bard_tree.root.distribution = Distribution(
            Choices([5000], ["ROMEO and JULIET"], [-3.0]), None, 0.05, "other-model",
            partial=True)
        await pilot.press("g", "1")
        await pilot.pause()
        held.release.set()
        await settle(pilot)
        assert "is not one token for bard" in app.last_error
        assert "\n" not in app.last_error


class GatedLoad(LoomApp):
    """Loads the model only when the test opens the gate."""

    gate = threading.Event()

    def _load(self, name):
        self.gate.wait(30)
        return super()._load(name)


async def test_expand_and_type_pressed_while_loading_are_queued(bard_tree):
    GatedLoad.gate.clear()
    bard_tree.root.distribution = None
    app = GatedLoad(tree=bard_tree, model="bard", load_model=True, threads=1, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        loom = screen(app)
        assert [n for n, _ in loom.queued] == ["expand"]
        assert "queued: expand" in str(loom.query_one("#status").render())
        await pilot.press("escape")  # esc drops what is queued
        assert loom.queued == []
        await pilot.press("e", "i")
        app.screen.query_one(TextArea).text = " doth shine"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert [n for n, _ in loom.queued] == ["expand", "type"]
        GatedLoad.gate.set()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if app.pred is not None:
                break
        await settle(pilot)
        await settle(pilot)
        kids = [bard_tree.node(k) for k in bard_tree.children(bard_tree.root_id)]
        assert sorted(k.origin for k in kids) == ["sampled", "sampled", "typed"]


def test_branch_text_decodes_byte_level_tokens_together():
    root = Node(id="0", text="A", origin="prompt")
    tree = Tree(root)
    with tree.transaction("picks"):
        for nid, raw in (("1", b"\xd8"), ("2", b"\xad")):  # "ح" in two byte-level tokens
            node = Node(id=nid, text="\ufffd", origin="picked", token_ids=[int(nid)],
                        token_offsets=[0], token_logprobs=[-1.0], token_bytes=[raw])
            tree.add_child("0" if nid == "1" else "1", node)
    tree.select("2")
    cache = PathCache()
    cache.get(tree, "2")
    content, _, _ = branch_text(tree, cache, "off", None, None)
    assert content.plain == "Aح"


def test_the_path_cache_walks_to_the_root_again_only_when_the_shape_changes(monkeypatch):
    root = Node(id="0", text="A", origin="prompt")
    tree = Tree(root)
    for i in range(1, 6):
        tree.add_child(str(i - 1), Node(id=str(i), text="b", origin="typed"))
    cache = PathCache()
    assert cache.get(tree, "5") == ["0", "1", "2", "3", "4", "5"]
    walks: list[str] = []
    real = Tree.path
    monkeypatch.setattr(Tree, "path", lambda self, nid: walks.append(nid) or real(self, nid))
    tree.update("3", token_ids=[7], token_offsets=[0], token_logprobs=[-2.0])  # contents only
    assert cache.get(tree, "5") == ["0", "1", "2", "3", "4", "5"] and not walks
    assert cache.tokens[-1] == 1 and cache.chars[-1] == 6  # the sums are redone
    tree.add_child("2", Node(id="x", text="c", origin="typed"))  # the shape changes
    assert cache.get(tree, "x") == ["0", "1", "2", "x"] and walks == ["x"]
    tree.update("2", text="BBB")  # a text: the shape's revision too (character sums)
    assert cache.get(tree, "x")[-1] == "x" and cache.chars[-1] == 6


# ---------------------------------------------------------------- text entry and editing
async def test_typed_text_is_taken_exactly_multi_line_and_backslashes(bard_tree, pred):
    text = " C:\\new\\temp\nsecond line\\t"
    app = LoomApp(tree=bard_tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("i")
        app.screen.query_one(TextArea).text = text
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert bard_tree.node(bard_tree.selected).text == text


async def test_the_prompt_is_edited_in_place_as_one_undo_step(bard_tree, pred):
    app = LoomApp(tree=bard_tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        kid = bard_tree.children(bard_tree.root_id)[0]
        await pilot.press("g", "c")
        assert isinstance(app.screen, TextPrompt)
        app.screen.query_one(TextArea).text = "JULIET:\nO Romeo"
        await pilot.press("ctrl+s")
        await pilot.pause()
        root = bard_tree.root
        assert root.text == "JULIET:\nO Romeo" and root.id == "0"
        assert bard_tree.node(kid).token_logprobs is None
        assert bard_tree.node(kid).distribution is None  # stale: recomputed when shown
        await settle(pilot)  # the prompt is scored again for the predictor panel
        assert root.distribution is not None and root.distribution.model == "bard"
        await pilot.press("u")
        assert bard_tree.root.text == "ROMEO:\nBut soft, what light"
        assert bard_tree.node(kid).distribution is not None


class SlowPredictor:
    """The bundled model, slowed down per token (stands in for a big model)."""

    def __init__(self, pred) -> None:
        self._pred = pred

    def __getattr__(self, name):
        return getattr(self._pred, name)

    def sample(self, tree, node_id, n, sampler, seed, on_token=None, cancel=None):
        def slow(i, seg):
            import time

            time.sleep(0.01)
            if on_token is not None:
                on_token(i, seg)

        return self._pred.sample(tree, node_id, n, sampler, seed, on_token=slow, cancel=cancel)


async def test_quit_during_an_expansion_keeps_what_streamed(bard_tree, pred, tmp_path):
    path = tmp_path / "s.json"
    bard_tree.sampler = Sampler(n=2, max_tokens=120)
    app = LoomApp(tree=bard_tree, predictor=SlowPredictor(pred), path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        loom = screen(app)
        for _ in range(500):
            await pilot.pause()
            if loom.stream is not None and sum(loom.stream.tokens) >= 4:
                break
        await pilot.press("q")
        await settle(pilot)
    assert app.return_code == 0
    saved = session.load(path)
    kids = saved.children(saved.root_id)
    assert 1 <= len(kids) <= 2 and all(0 < saved.node(k).n_tokens < 120 for k in kids)


# ---------------------------------------------------------------- sampler bounds
@pytest.mark.parametrize(("field", "value", "message"), [
    ("n", "1000000", r"rollouts \(n\) must be an integer in \[1, 256\]"),
    ("seed", str(10**23), r"seed must be an integer in \[0, 2\*\*63\)"),
    ("temperature", "inf", r"temperature must be a number in \[0, 100\]"),
    ("stop", "\\x", r"unknown escape"),
    ("max_tokens", "5000", r"max tokens must be an integer in \[1, 1024\]"),
])
def test_sampler_fields_are_bounded(field, value, message):
    values = {"n": "2", "max_tokens": "16", "temperature": "1", "top_p": "1", "top_k": "0",
              "min_p": "0", "seed": "", "stop": ""}
    values[field] = value
    with pytest.raises(ValueError, match=message):
        parse_settings(values, Sampler(), window=1024)


async def test_max_tokens_over_half_the_window_is_said_and_recorded(bard_tree, pred):
    window = pred.context_window
    bard_tree.sampler = Sampler(n=1, max_tokens=window, temperature=0)
    app = LoomApp(tree=bard_tree, predictor=pred, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        kid = bard_tree.node(bard_tree.children(bard_tree.root_id)[0])
        assert kid.sampler.max_tokens == window // 2
        assert any(f"over half the model's {window}-token window" in m for m in app.said)


# ---------------------------------------------------------------- layout and start
async def test_80x24_fits_dialogs_and_help():
    app = LoomApp(tree=demo_tree(), autosave=False)
    async with app.run_test(size=(80, 24)) as pilot:
        loom = screen(app)
        assert loom.query_one("#dist").region.width >= 26
        assert loom.branch.region.width >= 20
        await pilot.press("s")
        assert isinstance(app.screen, SamplerScreen)
        await pilot.pause()
        for button in app.screen.query(Button):
            r = button.region
            assert r.width and r.right <= 80 and r.bottom <= 24
        await pilot.press("escape", "f1")
        assert isinstance(app.screen, HelpScreen)
        assert app.screen.query_one("#help-box").region.right <= 80


async def test_token_cursor_scrolls_into_view():
    tree = demo_tree()
    long = " word" * 1500
    tree.update("4", text=long, token_offsets=list(range(0, len(long), 5)),
                token_ids=[7] * 1500, token_logprobs=[-1.0] * 1500, alternatives=None)
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        branch = screen(app).branch
        assert branch.scroll_offset.y > 0  # the end of the branch is shown
        # wrapped to the width its scrollbar leaves (a stable gutter), no text cut at the edge
        assert branch.show_vertical_scrollbar
        assert max(line.cell_length for line in branch._lines) <= (
            branch.scrollable_content_region.width)
        await pilot.press("left_parenthesis")  # the first token of the node
        await pilot.pause()
        await pilot.pause()
        assert screen(app).token_cursor == 0
        assert branch.scroll_offset.y < branch.max_scroll_y


def test_without_a_terminal_the_app_refuses_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from loomtui.ui.app import run_app; "
         "sys.exit(run_app(sys.argv[1]))", str(tmp_path / "s.json")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "needs a terminal" in out.stderr
    assert not (tmp_path / "s.json").exists()


async def test_open_imports_another_looms_file_without_writing_it(tmp_path):
    import json

    from textual.widgets import Input

    other = tmp_path / "theirs.json"
    other.write_text(json.dumps({"root": {"text": "Once", "children": [
        {"text": " upon"}, {"text": " a time"}]}}))
    before = other.read_bytes()
    app = LoomApp(tree=demo_tree(), path=tmp_path / "mine.json")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        app.screen.query_one(Input).value = str(other)
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.loom) == 3 and app.path == tmp_path / "theirs.loomtui.json"
        assert any("imported 3 nodes" in m for m in app.said)
    assert other.read_bytes() == before
    assert len(session.load(tmp_path / "theirs.loomtui.json")) == 3


async def test_open_imports_any_format_the_cli_imports(tmp_path):
    """A MiniLoom file (patches, not texts) opens too: the same importers as `loomtui import`."""
    import shutil
    from pathlib import Path

    from textual.widgets import Input

    src = Path(__file__).parent / "data" / "formats" / "miniloom" / "tree.json"
    mini = tmp_path / "mini.json"
    shutil.copy(src, mini)
    app = LoomApp(tree=demo_tree(), path=tmp_path / "mine.json")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        app.screen.query_one(Input).value = str(mini)
        await pilot.press("enter")
        await settle(pilot)
        assert app.path == tmp_path / "mini.loomtui.json"
        assert any("(miniloom)" in m for m in app.said)
    assert mini.read_bytes() == src.read_bytes()
