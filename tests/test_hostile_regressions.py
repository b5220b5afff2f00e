"""Regression tests for what the mutation test (tests/test_hostile.py) found."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest

from loomtui.cli import main
from loomtui.core import session
from loomtui.core.export import export_branch
from loomtui.core.node import Node
from loomtui.core.tree import Tree

HOSTILE_ID = "n\x1b]0;pwned\x07\x9b2J\u202eevil"


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def raw_controls(text: str) -> list[str]:
    return [c for c in text if c not in "\n\t" and (
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029\u202e\u200f\u2066")]


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A root and a child whose id, text and note hold ESC, OSC, C1 and bidi controls."""
    tree = Tree(Node("0", "root", "prompt", created=1.0))
    tree.add_child("0", Node(HOSTILE_ID, "t\x9b\u202ex", "typed", created=2.0,
                             note="\x9d0;x\x9c", token_offsets=[0, 1],
                             token_logprobs=[-1e308, -1e308]))
    tree.add_child(HOSTILE_ID, Node("c", " c", "typed", created=3.0))
    tree.select(HOSTILE_ID)
    path = tmp_path / "s.json"
    session.save(tree, path)
    return path


def test_json_output_escapes_c1_and_bidi_controls_and_stays_exact(
        hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "show", hostile, "--json")
    assert rc == 0 and not raw_controls(out), out
    info = orjson.loads(out)  # strict JSON (the -inf sum is null)
    assert info["id"] == HOSTILE_ID and info["text"] == "t\x9b\u202ex"
    assert info["logprob"] is None and info["note"] == "\x9d0;x\x9c"
    rc, out, _ = run(capsys, "tree", hostile, "--json")
    assert rc == 0 and not raw_controls(out)
    assert [orjson.loads(x)["id"] for x in out.splitlines()] == ["0", HOSTILE_ID, "c"]


def test_ids_from_the_file_are_shown_with_controls_visible(
        hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["show"], ["tree"], ["merge", "--node", HOSTILE_ID],
                 ["delete", "--node", HOSTILE_ID]):
        rc, out, err = run(capsys, argv[0], hostile, *argv[1:])
        assert rc == 0 and not raw_controls(out + err), (argv, out, err)
        assert "n␛]0;pwned␇<9B>2J<U+202E>evil" in out, (argv, out)


def test_error_messages_are_one_line_even_with_newlines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "show", tmp_path / "a\nb.json")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("loomtui: error: "), err
    assert "a⏎b.json: no such file" in err


def test_export_markdown_of_huge_negative_logprobs(hostile: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    text = export_branch(session.load(hostile), HOSTILE_ID, "markdown")
    assert "log-probability of the continuation: -inf" in text and "perplexity over" in text
    rc, out, _ = run(capsys, "export", hostile, "--format", "markdown")
    assert rc == 0 and "perplexity over 1e304" in out


def test_no_lock_file_beside_a_link_target_that_is_not_a_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.mkfifo(elsewhere / "pipe")
    link = tmp_path / "s.json"
    link.symlink_to(elsewhere / "pipe")
    rc, _, err = run(capsys, "note", link, "--node", "0", "--text", "x")
    assert rc == 2 and "not a regular file" in err and err.count("\n") == 1
    assert sorted(p.name for p in elsewhere.iterdir()) == ["pipe"]  # no .pipe.lock


def test_no_lock_file_for_a_session_that_is_not_there(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "bookmark", tmp_path / "nope.json", "--node", "0")
    assert rc == 2 and "no such file" in err
    assert list(tmp_path.iterdir()) == []



async def test_app_survives_markup_in_model_names(tmp_path: Path) -> None:
    """The issue's reproducers: markup in distribution.model crashed the app on open, and in
    graph.model when the model finished loading (the "scored by" notification)."""
    from loomtui.backends import load_predictor
    from loomtui.core.node import Choices, Distribution
    from loomtui.ui.app import LoomApp

    tree = Tree(Node("0", "root", "prompt", created=1.0), model="[@click=app.quit]GM[/] [/]")
    tree.add_child("0", Node("a", " x", "typed", created=2.0, distribution=Distribution(
        Choices.of([(1, "[/bogus", -0.1)]), 1.0, 0.5, "bad [/] markup [/bogus")))
    tree.select("a")
    app = LoomApp(tree=tree, predictor=None, path=tmp_path / "s.json", autosave=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.loom_screen
        assert screen is not None
        assert "model bad [/] markup [/bogus" in str(
            screen.dist_panel.query_one("#dist-stats").render())
        app._model_done(load_predictor("bard", threads=1), None)  # as the loading worker does
        await pilot.pause()
        await pilot.pause()
    assert app.return_code in (0, None)


@pytest.mark.parametrize("where", ["node", "graph"])
def test_foreign_fields_too_deep_to_save_are_refused_at_load(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    """orjson writes at most 254 levels: a file nested deeper loaded, then every save failed."""
    def nested(depth: int) -> object:
        value: object = 0
        for _ in range(depth):
            value = [value]
        return value

    path = tmp_path / "s.json"
    session.save(Tree(Node("0", "root", "prompt", created=1.0)), path)
    doc = orjson.loads(path.read_bytes())
    target = doc["nodes"][0] if where == "node" else doc["graph"]
    target["foreign"] = {"x": nested(126)}  # 128 levels with the object and the list
    path.write_bytes(orjson.dumps(doc))
    rc, _, _ = run(capsys, "note", path, "--node", "0", "--text", "kept")
    assert rc == 0 and session.load(path).root.note == "kept"
    target["foreign"] = {"x": nested(300)}
    path.write_text(json.dumps(doc))  # orjson itself refuses to write it
    before = path.read_bytes()
    rc, _, err = run(capsys, "note", path, "--node", "0", "--text", "x")
    assert rc == 2 and err.count("\n") == 1 and "nested deeper than 128 levels" in err
    assert path.read_bytes() == before
