"""The headless commands: import, tree, show, export (no model needed)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from loomtui.bench.synthetic import make_tree
from loomtui.cli import main
from loomtui.core import session
from loomtui.core.importers import load_pyloom
from loomtui.core.node import Node
from loomtui.core.tree import Tree

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tests" / "data" / "formats" / "pyloom" / "loom_demo.json"

needs_demo = pytest.mark.skipif(not DEMO.is_file(), reason=f"fixture {DEMO} is missing")


def lines(text: str) -> list[str]:
    """Output lines (split on newlines only: node text may hold other line breaks)."""
    assert text.endswith("\n")
    return text[:-1].split("\n")


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(err: str, *needles: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("loomtui: error: "), repr(err)
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def demo_session(tmp_path: Path) -> Path:
    if not DEMO.is_file():
        pytest.skip(f"fixture {DEMO} is missing")
    out = tmp_path / "demo.json"
    session.save(load_pyloom(DEMO), out)
    return out


@pytest.fixture
def scored_session(tmp_path: Path) -> Path:
    tree = make_tree(40, seed=7, branching=3)
    tree.select("1b")
    tree.node("5").bookmarked = True
    out = tmp_path / "scored.json"
    session.save(tree, out)
    return out


# --------------------------------------------------------------------------- import + tree


@needs_demo
def test_import_then_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "imported.json"
    rc, stdout, err = run(capsys, "import", DEMO, "-o", out)
    assert rc == 0
    assert stdout == ""
    assert err == f"imported 764 nodes (socketteer/loom) into {out}\n"
    tree = session.load(out)
    assert len(tree) == 764

    rc, stdout, err = run(capsys, "tree", out)
    assert rc == 0 and err == ""
    rows = lines(stdout)
    assert len(rows) == 764
    expected = list(tree.iter_preorder())
    bookmarked, selected = [], []
    for row, (nid, depth) in zip(rows, expected, strict=True):
        indent = len(row) - len(row.lstrip(" "))
        assert indent == 2 * depth, row
        got_id, rest = row.lstrip(" ").split(" ", 1)
        assert got_id == nid
        if rest[0] == "*":
            bookmarked.append(nid)
        if rest[1] == ">":
            selected.append(nid)
        assert rest[2:].startswith(tree.node(nid).origin[:4])  # from meta.source
        assert "   ?  " in rest  # no probability for imported text
    assert rows[0].startswith(tree.root_id + " ")
    assert sorted(bookmarked) == sorted(tree.bookmarks()) and len(bookmarked) == 22
    assert selected == [tree.selected]


def test_tree_json_max_depth_node_and_order(scored_session: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    tree = session.load(scored_session)
    rc, stdout, _ = run(capsys, "tree", scored_session, "--json")
    assert rc == 0
    objs = [json.loads(x) for x in lines(stdout)]
    assert [(o["id"], o["depth"]) for o in objs] == list(tree.iter_preorder())
    for o in objs:
        n = tree.node(o["id"])
        assert o["parent"] == tree.parent(o["id"])
        assert o["text"] == n.text and o["origin"] == n.origin
        assert o["logprob"] == pytest.approx(n.logprob())
        assert o["bookmarked"] == n.bookmarked

    rc, stdout, _ = run(capsys, "tree", scored_session, "--json", "--max-depth", "1")
    assert [json.loads(x)["id"] for x in lines(stdout)] == ["0", *tree.children("0")]

    rc, stdout, _ = run(capsys, "tree", scored_session, "--json", "--node", "1")
    assert [json.loads(x)["id"] for x in lines(stdout)] == tree.subtree("1")

    rc, stdout, _ = run(capsys, "tree", scored_session, "--json", "--order", "probability",
                        "--max-depth", "1")
    ids = [json.loads(x)["id"] for x in lines(stdout)]
    assert ids[1:] == tree.children("0", "probability")
    lps = [tree.node(i).logprob() for i in ids[1:]]
    assert lps == sorted(lps, reverse=True)

    rc, stdout, _ = run(capsys, "tree", scored_session, "--node", "1", "--max-depth", "0")
    assert rc == 0
    one = tree.node("1")  # the geometric-mean probability of its tokens
    assert lines(stdout) == [f"1   samp {100 * math.exp(one.logprob() / one.n_tokens):5.1f}% "
                             f"{tree.node('1').text.replace(chr(10), '⏎')}"]


def test_tree_of_a_deep_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = [Node(str(i), "x", "typed" if i else "prompt", created=float(i)) for i in range(3000)]
    tree = Tree.from_parts(nodes, [(str(i - 1), str(i)) for i in range(1, 3000)], "0")
    path = tmp_path / "deep.json"
    session.save(tree, path)
    rc, stdout, _ = run(capsys, "tree", path)
    assert rc == 0
    rows = lines(stdout)
    assert len(rows) == 3000
    assert rows[-1].startswith(" " * 80 + "[2999] 2999 ")  # indentation is capped


# --------------------------------------------------------------------------- show

SHOW_KEYS = {"id", "context", "text", "origin", "token_ids", "token_logprobs", "distribution",
             "children", "cumulative_logprob"}


def test_show_json_defaults_to_selected_node(demo_session: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    tree = session.load(demo_session)
    rc, stdout, err = run(capsys, "show", demo_session, "--json")
    assert rc == 0 and err == ""
    info = json.loads(stdout)
    assert set(info) >= SHOW_KEYS
    sel = tree.selected
    assert info["id"] == sel
    assert info["context"] == tree.context_text(sel)
    assert info["text"] == tree.node(sel).text
    assert info["origin"] == tree.node(sel).origin
    assert info["token_ids"] is None and info["token_logprobs"] is None
    assert info["distribution"] is None
    assert info["children"] == tree.children(sel)
    assert info["cumulative_logprob"] == tree.cumulative_logprob(sel)
    assert info["parent"] == tree.parent(sel) and info["depth"] == tree.depth(sel)


def test_show_node(demo_session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = session.load(demo_session)
    deepest = max(tree.iter_preorder(), key=lambda item: item[1])[0]
    rc, stdout, _ = run(capsys, "show", demo_session, "--node", deepest, "--json")
    assert rc == 0
    info = json.loads(stdout)
    assert info["id"] == deepest
    assert info["depth"] == 21
    assert info["context"] == "".join(tree.node(n).text for n in tree.path(deepest))
    assert info["children"] == []
    assert info["cumulative_logprob"] is None
    assert info["tags"] == tree.node(deepest).tags

    rc, stdout, _ = run(capsys, "show", demo_session, "--node", deepest)
    assert rc == 0
    origin = tree.node(deepest).origin
    assert stdout.startswith(f"node {deepest}  origin {origin}  depth 21  children 0\n")
    assert f"--- context ---\n{info['context']}\n--- next token ---\n" in stdout
    assert stdout.endswith("(not computed: expand or pick with a model to compute it)\n")


def test_show_scored_node_distribution(scored_session: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    tree = session.load(scored_session)
    n = tree.node("1b")
    d = n.distribution
    assert d is not None and len(d.top) == 20
    rc, stdout, _ = run(capsys, "show", scored_session, "--json", "--top", "3")
    assert rc == 0
    info = json.loads(stdout)
    assert info["id"] == "1b"
    assert info["token_ids"] == n.token_ids
    assert info["token_logprobs"] == n.token_logprobs
    assert info["logprob"] == pytest.approx(n.logprob())
    assert info["cumulative_logprob"] == pytest.approx(tree.cumulative_logprob("1b"))
    assert info["sampler"] == n.sampler.to_json()  # type: ignore[union-attr]
    assert info["seed"] == n.seed and info["model"] == "bard"
    dist = info["distribution"]
    assert (dist["entropy"], dist["mass"], dist["model"]) == (d.entropy, d.mass, d.model)
    assert dist["top"] == [
        {"token_id": t, "text": s, "logprob": lp, "prob": pytest.approx(math.exp(lp))}
        for t, s, lp in list(d.top)[:3]]

    rc, stdout, _ = run(capsys, "show", scored_session, "--top", "5")
    assert rc == 0
    out = lines(stdout)
    assert out[0] == f"node 1b  origin sampled  depth {tree.depth('1b')}  children 0"
    assert f"seed {n.seed}" in out[1] and "T=0.9" in out[1] and "cumulative" in out[1]
    head = out.index("--- next token ---")
    assert out[head + 1].startswith(f"entropy {d.entropy:.3f} nats  top-20 mass")
    ranked = out[head + 2:]
    assert len(ranked) == 5
    for rank, (row, (tid, _, lp)) in enumerate(zip(ranked, d.top, strict=False), 1):
        assert row.split()[:3] == [str(rank), f"{100 * math.exp(lp):.1f}%", str(tid)]


def test_show_unknown_node_is_an_error(demo_session: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = demo_session.read_bytes()
    rc, stdout, err = run(capsys, "show", demo_session, "--node", "ghost")
    assert rc == 2 and stdout == ""
    assert_one_error_line(err, "no node with id 'ghost'")
    assert demo_session.read_bytes() == before


# --------------------------------------------------------------------------- export


def test_export_text_and_markdown(scored_session: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    tree = session.load(scored_session)
    rc, stdout, err = run(capsys, "export", scored_session)
    assert rc == 0 and err == ""
    assert stdout == tree.context_text("1b")

    rc, stdout, _ = run(capsys, "export", scored_session, "--format", "text", "--node", "4")
    assert stdout == tree.context_text("4")

    rc, stdout, _ = run(capsys, "export", scored_session, "--format", "markdown")
    assert rc == 0
    path = tree.path("1b")
    lp = tree.cumulative_logprob("1b")
    assert lp is not None
    assert stdout.startswith("# loomtui branch\n\n- node: `1b` (depth 3)\n- model: `bard`\n")
    n_tokens = sum(tree.node(n).n_tokens for n in path[1:])
    assert (f"- log-probability of the continuation: {lp:.3f} over {n_tokens} tokens "
            f"(perplexity {math.exp(-lp / n_tokens):.2f})") in stdout
    assert f"```text\n{tree.context_text('1b')}\n```\n" in stdout
    segs = stdout.split("## Segments\n\n", 1)[1]
    seg_lines = lines(segs)
    assert [s.split("`")[1] for s in seg_lines] == path
    assert seg_lines[0].startswith("- `0` (prompt, seed ")
    assert all("logprob " in s for s in seg_lines)

    target = tmp_path / "out.md"
    rc, stdout, _ = run(capsys, "export", scored_session, "--format", "markdown", "-o", target)
    assert rc == 0 and stdout == ""
    assert target.read_text(encoding="utf-8") == export_md(tree, "1b")


def export_md(tree: Tree, nid: str) -> str:
    from loomtui.core.export import export_branch

    return export_branch(tree, nid, "markdown")


def test_export_markdown_escapes_fences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = Tree(Node("r", "code:\n```py\nx = 1\n```\n", "prompt"))
    tree.add_child("r", Node("t", "and more", "typed", bookmarked=True))
    tree.select("t")
    path = tmp_path / "s.json"
    session.save(tree, path)
    rc, stdout, _ = run(capsys, "export", path, "--format", "markdown")
    assert rc == 0
    body = stdout.split("```text\n", 1)[1].split("\n```\n", 1)[0]
    assert "```" not in body
    assert body.replace("\u200b", "") == tree.context_text("t")
    assert "- `t` (typed, bookmarked): 'and more'" in stdout
    assert "log-probability" not in stdout  # typed text is not scored


# --------------------------------------------------------------------------- errors


@needs_demo
def test_import_refuses_to_overwrite_without_force(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken.json"
    out.write_bytes(b"keep me")
    rc, stdout, err = run(capsys, "import", DEMO, "-o", out)
    assert rc == 2 and stdout == ""
    assert_one_error_line(err, f"loomtui: error: {out}: already exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == ["taken.json"]

    rc, _, err = run(capsys, "import", DEMO, "-o", out, "--force")
    assert rc == 0
    assert len(session.load(out)) == 764
    assert (tmp_path / "taken.json.bak").read_bytes() == b"keep me"


def test_import_of_bad_file_writes_nothing(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "loom.json"
    src.write_bytes(b'{"root": {"text": 1}}')
    out = tmp_path / "out.json"
    rc, stdout, err = run(capsys, "import", src, "-o", out)
    assert rc == 2 and stdout == ""
    assert_one_error_line(err, str(src), "text is not a string")
    assert not out.exists()


def _bad_docs() -> dict[str, bytes]:
    good = orjson.loads(session.dumps(make_tree(5)))
    wrong_format = json.loads(json.dumps(good))
    wrong_format["graph"]["format"] = "something-else"
    newer = json.loads(json.dumps(good))
    newer["graph"]["version"] = 3
    cycle = json.loads(json.dumps(good))
    cycle["edges"].append({"source": "4", "target": "0"})
    bad_type = json.loads(json.dumps(good))
    bad_type["nodes"][2]["token_logprobs"][0] = "oops"
    return {
        "bad-json": b'{"nodes": [',
        "wrong-format": orjson.dumps(wrong_format),
        "newer-version": orjson.dumps(newer),
        "cycle": orjson.dumps(cycle),
        "bad-type": orjson.dumps(bad_type),
        "not-json-at-all": "plain text ✨\nsecond line\n".encode(),
    }


BAD_DOCS = _bad_docs()
COMMANDS = [["show"], ["show", "--json"], ["tree"], ["tree", "--json"], ["export"],
            ["export", "--format", "markdown"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
@pytest.mark.parametrize("bad", list(BAD_DOCS))
def test_bad_session_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            command: list[str], bad: str) -> None:
    path = tmp_path / "bad session.json"
    raw = BAD_DOCS[bad]
    path.write_bytes(raw)
    stat = path.stat()
    rc, stdout, err = run(capsys, command[0], path, *command[1:])
    assert rc == 2
    assert stdout == ""
    assert_one_error_line(err, f"loomtui: error: {path}: ")
    if bad == "newer-version":
        assert "newer" in err and "upgrade" in err
    assert path.read_bytes() == raw
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert os.listdir(tmp_path) == ["bad session.json"]


def test_export_to_unwritable_path_is_an_error(scored_session: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "out.md"
    rc, stdout, err = run(capsys, "export", scored_session, "-o", target)
    assert rc == 2 and stdout == ""
    assert_one_error_line(err, f"loomtui: error: {target}: cannot save: the directory ")
    assert not target.parent.exists()


def test_export_replaces_a_file_atomically_and_never_the_session(
        scored_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.md"
    target.write_text("old export")
    rc, _, _ = run(capsys, "export", scored_session, "-o", target, "--format", "markdown")
    assert rc == 0 and target.read_text() != "old export"
    assert (tmp_path / "out.md.bak").read_text() == "old export"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    before = scored_session.read_bytes()
    rc, _, err = run(capsys, "export", scored_session, "-o", scored_session, "--format", "pyloom")
    assert rc == 2 and "is the session being exported" in err
    assert scored_session.read_bytes() == before


def test_missing_session_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, stdout, err = run(capsys, "show", tmp_path / "nope.json")
    assert rc == 2 and stdout == ""
    assert err == f"loomtui: error: {tmp_path / 'nope.json'}: no such file\n"
    assert not (tmp_path / "nope.json").exists()


def test_real_process(demo_session: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run([sys.executable, "-m", "loomtui.cli", "tree", str(demo_session)],
                          capture_output=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert len(lines(proc.stdout.decode("utf-8"))) == 764

    bad = tmp_path / "bad.json"
    bad.write_bytes(b"[")
    proc = subprocess.run([sys.executable, "-m", "loomtui.cli", "show", str(bad)],
                          capture_output=True, timeout=120, env=env, check=False)
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert_one_error_line(proc.stderr.decode("utf-8"), str(bad), "not valid JSON")
    assert bad.read_bytes() == b"["
