"""The CLI mirrors every edit of the app: branch, edit, split, merge, delete, note, bookmark,
select; unknown commands and bad options are one-line errors; two writers never lose work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loomtui.cli import main
from loomtui.core import session
from loomtui.core.node import Alternatives, Choices, Distribution, Node
from loomtui.core.tree import Tree

REPO = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error(err: str, *needles: str) -> None:
    assert err.count("\n") == 1 and err.startswith("loomtui: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture
def s(tmp_path: Path) -> Path:
    """Root "Hello" with one sampled child " world!" (two tokens, stored alternatives)."""
    tree = Tree(Node("0", "Hello", "prompt", created=1.0))
    alts = Alternatives.of([[(1, " world", -0.5), (2, " there", -1.5)],
                            [(3, "!", -0.2), (4, ".", -1.9)]])
    tree.add_child("0", Node("c", " world!", "sampled", token_ids=[1, 3], token_offsets=[0, 6],
                             token_logprobs=[-0.5, -0.2], alternatives=alts, model="m",
                             created=2.0))
    tree.update("0", distribution=Distribution(Choices.of([(1, " world", -0.5)]), 1.0, 0.6,
                                               "m"))
    path = tmp_path / "s.json"
    session.save(tree, path)
    return path


def test_branch_split_merge_delete(s: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "branch", s, "--node", "c", "--at", "1", "--rank", "2")
    assert rc == 0
    new = out.strip()
    tree = session.load(s)
    assert tree.node(new).text == "." and tree.parent(new) == "c"
    assert tree.node("c").text == " world" and tree.selected == new
    rc, out, _ = run(capsys, "delete", s, "--node", new)
    assert rc == 0 and out.split() == [new]
    rc, out, _ = run(capsys, "merge", s, "--node", "c")
    assert rc == 0 and session.load(s).node("c").text == " world!"
    rc, out, _ = run(capsys, "split", s, "--node", "c", "--at", "1")
    tail = out.strip()
    tree = session.load(s)
    assert rc == 0 and tree.node(tail).text == "!" and tree.node("c").text == " world"


def test_edit_note_bookmark_select(s: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "edit", s, "--node", "c", "--text", " moon\\n", "--escapes")
    fork = out.strip()
    tree = session.load(s)
    assert rc == 0 and tree.node(fork).text == " moon\n" and tree.node(fork).origin == "edited"
    assert tree.node("c").text == " world!"  # the original stays
    assert run(capsys, "note", s, "--node", "c", "--text", "café é")[0] == 0
    assert run(capsys, "bookmark", s, "--node", "c")[0] == 0
    assert run(capsys, "select", s, "--node", "c")[0] == 0
    tree = session.load(s)
    assert tree.node("c").note == "café é" and tree.node("c").bookmarked
    assert tree.selected == "c"
    assert run(capsys, "bookmark", s, "--node", "c", "--off")[0] == 0
    assert not session.load(s).node("c").bookmarked


def test_edit_the_root_in_place(s: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "edit", s, "--node", "0", "--text", "Goodbye")
    tree = session.load(s)
    assert rc == 0 and out.strip() == "0" and tree.root.text == "Goodbye"
    assert tree.root.distribution is None and tree.node("c").token_logprobs is None


@pytest.mark.parametrize(("argv", "needles"), [
    (["split", "S", "--node", "c", "--at", "5"], ["split point 5 is outside 1..1"]),
    (["merge", "S", "--node", "c"], ["node c does not have exactly one child"]),
    (["delete", "S", "--node", "0"], ["the root cannot be deleted"]),
    (["branch", "S", "--node", "c", "--at", "1", "--rank", "9"], ["rank must be in 1..2"]),
    (["branch", "S", "--node", "ghost", "--at", "1", "--rank", "1"], ["no node with id"]),
    (["edit", "S", "--node", "c", "--text", "x\\q", "--escapes"], ["--text: unknown escape"]),
    (["edit", "S", "--node", "c", "--text", " world!"], ["the text is unchanged"]),
])
def test_edit_errors_are_one_line_and_leave_the_file(
        s: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    before = s.read_bytes()
    rc, out, err = run(capsys, *[str(s) if a == "S" else a for a in argv])
    assert rc == 2 and out == ""
    one_error(err, *needles)
    assert s.read_bytes() == before


def test_unknown_command_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "nosuchcommand")
    assert rc == 2
    one_error(err, "unknown command 'nosuchcommand'", "commands: open, show")
    assert list(tmp_path.iterdir()) == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert capsys.readouterr().out.startswith("loomtui 0.")


@pytest.mark.parametrize(("argv", "needle"), [
    (["show", "S", "--top", "-5"], "--top: must be in"),
    (["tree", "S", "--max-depth", "-1"], "--max-depth: must be in"),
    (["bench", "sessions", "--sizes", "-5"], "--sizes: must be in"),
    (["pick", "S", "--rank", "0"], "--rank: must be in"),
    (["expand", "S", "-n", "100000000"], "-n: must be in [1, 256]"),
    (["expand", "S", "--seed", str(2**64 - 1)], "--seed: must be in [0, 2**63)"),
    (["expand", "S", "--temperature", "inf"], "--temperature: must be in [0, 100]"),
    (["expand", "S", "--threads", "-1"], "--threads: must be in [1, 1024]"),
    (["expand", "S", "--device", "bogus"], "--device: invalid choice"),
    (["delete", "S"], "delete: --node is required"),
])
def test_bad_options_are_refused_before_any_model_loads(
        s: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    rc, out, err = run(capsys, *[str(s) if a == "S" else a for a in argv])
    assert rc == 2 and out == ""
    one_error(err, needle, "--help")


def test_empty_text_is_refused_before_the_model_loads(s: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "type", s, "--text", "", "--model", "/no/such/model")
    assert rc == 2
    one_error(err, "--text: there is no text to add")


def test_missing_directory_is_an_error_for_every_writer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "new", tmp_path / "no" / "x.json", "--prompt", "Hi", "--model",
                     "bard")
    assert rc == 2
    one_error(err, "the directory", "does not exist")
    assert not (tmp_path / "no").exists()


def test_two_writers_at_once_keep_both_changes(s: Path) -> None:
    """Two processes add a note and a bookmark at the same moment: the second waits for the
    first's lock, then loads its change, so neither is lost."""
    code = ("import sys; from loomtui.cli import main; sys.exit(main(sys.argv[1:]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, *argv], cwd=REPO)
             for argv in (["edit", str(s), "--node", "c", "--text", " FIRST"],
                          ["edit", str(s), "--node", "c", "--text", " SECOND"])]
    assert [p.wait(120) for p in procs] == [0, 0]
    texts = sorted(n.text for n in session.load(s).nodes() if n.origin == "edited")
    assert texts == [" FIRST", " SECOND"]


def test_terminal_output_has_no_raw_control_characters(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;aGVsbG8=\x07"
    tree = Tree(Node("0", "A" + evil, "prompt", note=evil, created=1.0))
    path = tmp_path / "evil.json"
    session.save(tree, path)
    for argv in (["show", path], ["tree", path]):
        rc, out, _ = run(capsys, *argv)
        assert rc == 0 and "\x1b" not in out and "\x07" not in out
        assert "␛" in out
