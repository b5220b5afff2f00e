"""Other looms' files: every importer on hand-written fixtures (from each tool's source),
detection, bad input, round trips through the three writers, big synthetic files."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from loomtui.bench import formats as synth
from loomtui.core.errors import SessionError
from loomtui.core.exporters import TREE_FORMATS, export_tree
from loomtui.core.importers import READERS, detect, import_file
from loomtui.core.importers.jsonfile import loads
from loomtui.core.node import Node
from loomtui.core.tree import Tree

DATA = Path(__file__).resolve().parent / "data" / "formats"


def one(path: Path, **kw: Any) -> Tree:
    [imported] = import_file(path, **kw)
    return imported.tree


def outline(tree: Tree) -> list[tuple[int, str, bool]]:
    """(depth, text, bookmarked) in pre-order: what a round trip must keep."""
    return [(d, tree.node(n).text, tree.node(n).bookmarked) for n, d in tree.iter_preorder()]


@pytest.fixture
def basemode_db(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    conn = sqlite3.connect(path)
    conn.executescript((DATA / "basemode" / "store.sql").read_text())
    conn.commit()
    conn.close()
    return path


# --------------------------------------------------------------------------- detection
FIXTURES = {
    "pyloom/small.json": "pyloom", "pyloom/loom_demo.json": "pyloom",
    "loomsidian/data.json": "loomsidian", "loomsidian/note.json": "loomsidian",
    "loomsidian/old.json": "loomsidian", "miniloom/tree.json": "miniloom",
    "bonsai/tree.json": "bonsai", "exoloom/export.json": "exoloom",
    "logitloom/tree.ll.json": "logitloom", "basemode/export.json": "basemode",
    "helm/tree.json": "helm", "wool/tree_state.json": "wool",
}


@pytest.mark.parametrize(("name", "fmt"), FIXTURES.items())
def test_format_is_detected_from_content(name: str, fmt: str) -> None:
    data = json.loads((DATA / name).read_bytes())
    assert detect(data)[0] == fmt
    assert all(i.fmt == fmt for i in import_file(DATA / name))


def test_every_format_has_a_fixture_and_a_generator() -> None:
    assert set(FIXTURES.values()) == set(READERS) == set(synth.GENERATORS)


def test_from_overrides_and_refuses_a_mismatch() -> None:
    assert one(DATA / "helm" / "tree.json", fmt="helm").root.text == "It was a dark"
    with pytest.raises(SessionError, match=r"not a wool file: no 'nodes' object"):
        import_file(DATA / "helm" / "tree.json", fmt="wool")
    with pytest.raises(SessionError, match="unknown format 'nope'"):
        import_file(DATA / "helm" / "tree.json", fmt="nope")


def test_unknown_format_says_what_was_tried_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": "world"}')
    with pytest.raises(SessionError) as ei:
        import_file(path)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(f"{path}: no known loom format (")
    for name in READERS:
        assert f"{name}: " in msg


def test_a_loomtui_session_needs_no_import(tmp_path: Path) -> None:
    from loomtui.core import session

    path = tmp_path / "s.json"
    session.save(Tree(Node("r", "x", "prompt")), path)
    with pytest.raises(SessionError, match="is a loomtui session already"):
        import_file(path)


def test_tapestry_is_out_of_scope_in_one_line() -> None:
    with pytest.raises(SessionError) as ei:
        import_file(DATA / "tapestry" / "story.tapestry")
    assert "out of scope" in str(ei.value) and "\n" not in str(ei.value)


# --------------------------------------------------------------------------- each format
def test_pyloom_scores_origins_and_kept_fields() -> None:
    [imp] = import_file(DATA / "pyloom" / "small.json")
    tree = imp.tree
    assert tree.selected == "u1" and tree.bookmarks() == ["g1"]
    assert [tree.node(k).origin for k in ("r0", "g1", "u1", "g2", "m1")] == [
        "prompt", "sampled", "typed", "sampled", "edited"]
    g1 = tree.node("g1")
    assert g1.model == "davinci" and g1.token_ids is None
    assert g1.token_offsets == [0, 6] and g1.token_logprobs == [-0.5, -0.25]
    assert g1.pieces() == [" there", " was"]
    assert g1.alternatives is not None
    assert g1.alternatives[0].texts == [" there", ",", " in"]
    assert g1.alternatives[0].ids == [None, None, None]
    assert g1.alternatives[1].logprobs == [-0.25, -2.5]
    assert g1.tags == ["keep"] and g1.created == 1631829318.0
    g2 = tree.node("g2")  # position as {start, end}; a token without counterfactuals
    assert g2.token_offsets == [0, 1, 5] and g2.alternatives is not None
    assert g2.alternatives[0].texts == [] and g2.alternatives[1].texts == [" far"]
    # an edited node keeps no scores of the text it no longer has, and says so
    assert tree.node("m1").token_offsets is None and tree.node("m1").note == "was ' there was'"
    assert any("keep no token scores" in n for n in imp.notes)
    kept = tree.foreign["pyloom"]
    assert kept["chapters"]["c1"]["title"] == "The fox"
    assert kept["memories"]["mem1"]["text"] == "Foxes are clever."
    assert "bookmark" in kept["tags"] and "cmpl-1" in kept["model_responses"]
    assert g1.foreign["pyloom"]["generation"] == {"id": "cmpl-1", "index": 0}


def test_pyloom_scores_are_kept_when_another_model_scores_the_node() -> None:
    g1 = one(DATA / "pyloom" / "small.json").node("g1")
    kept = g1.scores_kept("bard")
    assert set(kept) == {"davinci"}
    assert kept["davinci"].token_logprobs == [-0.5, -0.25]
    assert kept["davinci"].alternatives is not None
    assert kept["davinci"].alternatives[0].texts[1] == ","


def test_loomsidian_notes_settings_never_copied() -> None:
    results = import_file(DATA / "loomsidian" / "data.json")
    assert [r.name for r in results] == ["Stories/Fox.md", "Notes/Two roots.md"]
    fox = results[0].tree
    assert fox.selected == "b2" and fox.bookmarks() == ["b1"]
    assert fox.children("a1") == ["b1", "b2"]  # insertion order
    assert fox.context_text("c1") == "Once upon a time there was a fox."
    assert fox.node("b2").foreign["loomsidian"] == {
        "bookmarked": False, "collapsed": True, "unread": False, "lastVisited": 1700000005000}
    two = results[1].tree  # two roots: under an empty root of ours
    assert two.root.text == "" and [two.node(k).text for k in two.children(two.root_id)] == [
        "First", "Second"]
    for r in results:
        blob = json.dumps([r.tree.foreign, [n.foreign for n in r.tree.nodes()]])
        assert "NEVER-READ" not in blob and "settings" not in r.tree.foreign["loomsidian"]
    [only] = import_file(DATA / "loomsidian" / "data.json", note="Notes/Two roots.md")
    assert only.name == "Notes/Two roots.md"
    with pytest.raises(SessionError, match=r"no note 'Nope\.md'"):
        import_file(DATA / "loomsidian" / "data.json", note="Nope.md")


def test_loomsidian_single_note_and_old_variant() -> None:
    note = one(DATA / "loomsidian" / "note.json")
    assert note.selected == "n3" and note.bookmarks() == ["n3"]
    old = one(DATA / "loomsidian" / "old.json")
    assert [old.node(k).text for k in old.children("1")] == [" style", " notes"]
    assert old.bookmarks() == ["2"] and old.selected == "2"


def test_miniloom_patches_and_an_edit_of_earlier_text() -> None:
    [imp] = import_file(DATA / "miniloom" / "tree.json")
    tree = imp.tree
    assert tree.root_id == "1" and tree.root.text == "" and tree.selected == "6"
    assert tree.context_text("3") == "The cat sat on the mat."
    assert tree.node("3").text == " sat on the mat." and tree.node("3").origin == "sampled"
    assert tree.node("3").model == "mistral-7b"
    # "The dog sat" rewrites "The cat": an edited fork of the root (the closest ancestor
    # whose text is a prefix), its own child following it
    assert tree.parent("4") == "1" and tree.node("4").origin == "edited"
    assert tree.node("4").text == "The dog sat" and tree.context_text("6") == "The dog sat down."
    assert tree.node("4").foreign["miniloom"]["parent"] == "2"
    assert any("edit their parent's text" in n for n in imp.notes)
    assert tree.node("3").foreign["miniloom"]["rating"] is True
    assert tree.node("3").created == 1717000002.0


def test_bonsai_several_parents_keep_the_first() -> None:
    [imp] = import_file(DATA / "bonsai" / "tree.json")
    tree = imp.tree
    assert tree.parent("n3") == "n1" and tree.selected == "n3"
    assert tree.node("n3").foreign["bonsai"]["parentIds"] == ["n1", "n2"]
    assert tree.children("n0") == ["n1", "n2"]  # childrenIds' order, not creation times
    assert tree.bookmarks() == ["n1"] and tree.node("n1").tags == ["good"]
    assert tree.foreign["bonsai"]["edges"][3]["relation"] == "merge"
    assert any("several parents" in n for n in imp.notes)


def test_exoloom_authors_bookmarks_order() -> None:
    tree = one(DATA / "exoloom" / "export.json")
    assert tree.root_id == "1" and tree.children("1") == ["3", "2"]
    assert tree.node("3").model == "claude-3-opus" and tree.node("3").origin == "sampled"
    assert tree.node("4").origin == "typed" and tree.bookmarks() == ["3"]
    assert tree.foreign["exoloom"]["lens"]["prunedNodes"] == [2]
    assert tree.node("4").created == 1738411230.0  # "2" moves after "3": the file lists it so


def test_logitloom_tokens_become_segments_with_alternatives() -> None:
    tree = one(DATA / "logitloom" / "tree.ll.json")
    root = tree.root
    assert root.text == "The capital of France is"
    assert root.distribution is not None and root.distribution.partial
    assert root.distribution.top.texts == [" Paris", " a", " the"]
    assert root.distribution.top.ids == [None, None, None]
    paris, a = tree.children(root.id)
    p = tree.node(paris)  # " Paris" then "." (the only sibling that goes on): one segment
    assert p.text == " Paris." and p.token_offsets == [0, 6] and p.token_logprobs == [-0.1, -0.3]
    assert p.alternatives is not None and p.alternatives[1].texts == [".", ","]
    assert p.distribution is not None and p.distribution.top.texts == [" It", " The"]
    assert p.model == "deepseek-v3-base" and p.token_ids is None
    assert tree.node(a).text == " a" and tree.node(a).distribution.top.texts == [" city"]
    assert tree.foreign["logitloom"]["modelSettings"]["kind"] == "base"
    ids = [[t["id"] for t in pos] for pos in p.foreign["logitloom"]["tokens"]]
    assert ["t1", "t6", "t8"] in ids and ["t2", "t3"] in ids


def test_basemode_export_and_database(basemode_db: Path) -> None:
    [imp] = import_file(DATA / "basemode" / "export.json")
    tree = imp.tree
    assert tree.root_id == "root1" and tree.children("root1") == ["a", "b"]
    assert tree.selected == "c"  # the checked-out path
    assert tree.node("a").sampler is not None and tree.node("a").sampler.temperature == 0.8
    assert tree.node("a").sampler.max_tokens == 40 and tree.node("c").model == "llama-405b-base"
    assert tree.bookmarks() == ["a"]
    assert tree.foreign["basemode"]["context_nodes"][0]["text"] == "You are writing a diary."
    before = basemode_db.read_bytes(), basemode_db.stat().st_mtime_ns
    results = import_file(basemode_db)
    assert [r.name for r in results] == ["Diary", "Poem"]
    diary = results[0].tree
    assert diary.selected == "x2" and diary.bookmarks() == ["x1"]
    assert diary.foreign["basemode"]["tree"]["model_plan"][0]["model"] == "gpt-4o-mini"
    [poem] = import_file(basemode_db, tree="Poem")
    assert poem.tree.context_text("y1") == "Roses are red, violets are blue"
    assert (basemode_db.read_bytes(), basemode_db.stat().st_mtime_ns) == before  # read-only
    with pytest.raises(SessionError, match="no tree 'Nope'"):
        import_file(basemode_db, tree="Nope")


def test_helm_and_wool() -> None:
    helm = one(DATA / "helm" / "tree.json")
    assert helm.children("h0") == ["h2", "h1"] and helm.selected == "h2"
    assert helm.bookmarks() == ["h1"] and helm.foreign["helm"]["name"] == "Workspace"
    assert helm.node("h3").foreign["helm"]["author"] == "human"
    wool = one(DATA / "wool" / "tree_state.json")
    assert wool.selected == "w3" and wool.node("w1").model == "gpt2-xl"
    assert wool.node("w1").sampler is not None and wool.node("w1").sampler.max_tokens == 16
    # a temperature out of loomtui's range is not a sampler, but is kept as it was
    assert wool.node("w2").sampler is None and wool.node("w2").foreign["wool"][
        "temperature"] == 250.0
    assert wool.foreign["wool"]["settings"]["default_model"] == "gpt2-xl"


# --------------------------------------------------------------------------- hostile input
def test_a_child_named_like_a_generated_id_is_not_dropped() -> None:
    """Issue 9: B was dropped when a missing id was given "imported-2"."""
    from loomtui.core.importers import import_pyloom

    tree = import_pyloom({"root": {"text": "A", "children": [
        {"id": "imported-2", "text": "B"}, {"text": "C"}, {"text": "D"}]}})
    assert len(tree) == 4
    assert sorted(tree.node(k).text for k in tree.children(tree.root_id)) == ["B", "C", "D"]
    assert tree.node("imported-2").text == "B"


def test_a_root_named_like_a_generated_id_makes_no_loop() -> None:
    from loomtui.core.importers import import_pyloom

    tree = import_pyloom({"root": {"id": "imported-1", "text": "A",
                                   "children": [{"text": "B"}]}})
    assert len(tree) == 2 and tree.root_id == "imported-1"
    [kid] = tree.children("imported-1")
    assert kid != "imported-1" and tree.context_text(kid) == "AB"


def test_ids_given_twice_are_reported_in_one_note() -> None:
    [imp] = READERS["helm"].read({"rootId": "r", "nodes": [
        {"id": "r", "text": "R", "parentId": None},
        {"id": "x", "text": "1", "parentId": "r"},
        {"id": "x", "text": "2", "parentId": "r"},
        {"id": "x", "text": "3", "parentId": "r"}]})
    assert len(imp.tree) == 4
    [note] = imp.notes
    assert note.startswith("2 node id(s) given twice got fresh ids") and "\n" not in note


def test_nan_and_infinite_times_are_dropped_with_a_note(tmp_path: Path) -> None:
    from loomtui.core import session

    path = tmp_path / "nan.json"
    path.write_text('{"root": {"id": "r", "text": "A", "created": NaN, "children": ['
                    '{"id": "c", "text": "B", "created": Infinity}, '
                    '{"id": "d", "text": "C", "created": 1e400}]}}')
    [imp] = import_file(path)
    assert all(math.isfinite(n.created) for n in imp.tree.nodes())
    assert imp.notes == ["dropped 3 creation times that are not a time (first at node 'r')"]
    session.save(imp.tree, tmp_path / "s.json")
    assert len(session.load(tmp_path / "s.json")) == 3  # never a file loading refuses


@pytest.mark.parametrize(("fmt", "doc", "needle"), [
    ("helm", {"rootId": "a", "nodes": [{"id": "a", "text": "", "parentId": None},
                                      {"id": "b", "text": "", "parentId": "c"},
                                      {"id": "c", "text": "", "parentId": "b"}]},
     "node 'b' is in a cycle"),
    ("wool", {"focused_node_id": None, "nodes": {"a": {"text": "", "parent_id": "ghost"}}},
     "node 'a': its parent 'ghost' does not exist"),
    ("exoloom", {"loomType": "Exoloom", "tree": {"rootNodeId": 1, "nodes": {
        "1": {"content": "x", "parentId": None, "childrenIds": [2]}}}},
     "node '1': child '2' does not exist"),
    ("bonsai", {"focusedId": None, "nodes": [{"id": "a", "text": 5, "parentIds": []}]},
     "node 'a': text is not a string"),
    ("loomsidian", {"current": None, "nodes": {"a": {"text": "x", "parentId": ["a"]}}},
     "node 'a': parentId is not a node id"),
    ("miniloom", {"loomTree": {"nodeStore": {
        "1": {"id": "1", "patch": "", "parent": None, "children": ["2"]},
        "2": {"id": "2", "parent": "1", "children": [], "patch": [
            {"diffs": [{"0": 0, "1": "not there"}, {"0": 1, "1": "!"}],
             "start1": 0, "start2": 0, "length1": 9, "length2": 10}]}}}},
     "node '2': its patch does not apply"),
    ("miniloom", {"loomTree": {"nodeStore": {
        "1": {"id": "1", "patch": "", "parent": None, "children": []},
        "2": {"id": "2", "parent": "1", "children": [], "patch": 7}}}},
     "node '2': patch is not a list"),
    ("basemode", {"version": 1, "nodes": [
        {"id": "a", "tree_id": "a", "parent_id": None, "text": "x", "kind": "text"},
        {"id": "b", "tree_id": "a", "parent_id": None, "text": "y", "kind": "text"}]},
     "2 nodes have no parent"),
    ("pyloom", {"root": {"id": "r", "text": "a", "children": "no"}},
     "node 'r': children is not a list"),
    ("logitloom", {"isLogitLoomTreeVersion": "logit-loom-tree-v1", "roots": [{"id": 1}]},
     "a token is not an object with a text"),
])
def test_bad_input_is_one_line_naming_the_node(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               fmt: str, doc: dict[str, Any],
                                               needle: str) -> None:
    from loomtui.cli import main

    path = tmp_path / "bad.json"
    raw = json.dumps(doc).encode()
    path.write_bytes(raw)
    rc = main(["import", str(path), "--from", fmt])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"loomtui: error: {path}: "), err
    assert needle in err
    assert path.read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]  # nothing written


# --------------------------------------------------------------------------- round trips
def _raw_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


@pytest.mark.parametrize("name", ["pyloom/loom_demo.json", "pyloom/small.json"])
def test_pyloom_file_comes_back_whole(name: str) -> None:
    tree = one(DATA / name)
    assert json.loads(export_tree(tree, "pyloom")) == _raw_json(DATA / name)


def test_loomsidian_note_comes_back_whole() -> None:
    assert json.loads(export_tree(one(DATA / "loomsidian" / "note.json"), "loomsidian")) == \
        _raw_json(DATA / "loomsidian" / "note.json")
    fox = import_file(DATA / "loomsidian" / "data.json", note="Stories/Fox.md")[0].tree
    assert json.loads(export_tree(fox, "loomsidian")) == \
        _raw_json(DATA / "loomsidian" / "data.json")["state"]["Stories/Fox.md"]
    two = import_file(DATA / "loomsidian" / "data.json", note="Notes/Two roots.md")[0].tree
    assert json.loads(export_tree(two, "loomsidian")) == \
        _raw_json(DATA / "loomsidian" / "data.json")["state"]["Notes/Two roots.md"]


def test_miniloom_file_comes_back_whole() -> None:
    tree = one(DATA / "miniloom" / "tree.json")
    assert json.loads(export_tree(tree, "miniloom")) == _raw_json(DATA / "miniloom" / "tree.json")


def test_pyloom_writer_puts_our_scores_where_socketteer_loom_reads_them() -> None:
    tree = Tree(Node("r", "Hello", "prompt"), model="bard")
    tree.add_child("r", Node("s", " world!", "sampled", token_ids=[995, 0],
                             token_offsets=[0, 6], token_logprobs=[-1.25, -0.5],
                             model="bard", created=1_700_000_000.0))
    from loomtui.core.node import Alternatives

    tree.node("s").alternatives = Alternatives.of([[(995, " world", -1.25), (1, " there", -2.0)],
                                                   [(0, "!", -0.5)]])
    tree.select("s")
    doc = json.loads(export_tree(tree, "pyloom"))
    assert doc["selected_node_id"] == "s" and doc["chapters"] == {}
    child = doc["root"]["children"][0]
    gen = child["generation"]
    resp = doc["model_responses"][gen["id"]]
    assert resp["model"] == "bard" and resp["prompt"]["text"] == "Hello"
    tokens = resp["completions"][gen["index"]]["tokens"]
    assert [t["generatedToken"] for t in tokens] == [
        {"token": " world", "logprob": -1.25}, {"token": "!", "logprob": -0.5}]
    assert [t["position"] for t in tokens] == [{"start": 0, "end": 6}, {"start": 6, "end": 7}]
    assert tokens[0]["counterfactuals"] == {" world": -1.25, " there": -2.0}
    assert child["meta"]["source"] == "AI" and child["parent_id"] == "r"
    back = READERS["pyloom"].read(doc)[0].tree.node("s")  # and our reader reads them back
    assert back.token_logprobs == [-1.25, -0.5] and back.model == "bard"
    assert back.alternatives is not None and back.alternatives[0].texts == [" world", " there"]


def test_miniloom_writer_wraps_a_prompt_and_numbers_ids() -> None:
    tree = Tree(Node("root", "A prompt", "prompt"))
    tree.add_child("root", Node("k", " goes on", "sampled", bookmarked=True, created=5e8))
    tree.select("k")
    doc = json.loads(export_tree(tree, "miniloom"))
    store = doc["loomTree"]["nodeStore"]
    assert sorted(store) == ["1", "2", "3"] and store["1"]["type"] == "root"
    assert store["2"]["loomtuiRoot"] is True and doc["focus"]["id"] == "3"
    assert store["3"]["bookmarked"] is True and store["3"]["type"] == "gen"
    assert store["3"]["patch"][0]["diffs"][-1] == {"0": 1, "1": " goes on"}
    back = READERS["miniloom"].read(doc)[0].tree
    assert outline(back) == outline(tree) and back.context_text(back.selected) == \
        "A prompt goes on"


# hypothesis: random trees -> each writer -> its reader gives the same tree
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    n = draw(st.integers(1, 25))
    tree = Tree(Node("n0", draw(_texts), "prompt", bookmarked=draw(st.booleans())))
    ids = ["n0"]
    for i in range(1, n):
        parent = draw(st.sampled_from(ids))
        origin = draw(st.sampled_from(("sampled", "typed", "edited", "picked", "imported")))
        node = Node(f"n{i}", draw(_texts), origin, bookmarked=draw(st.booleans()),
                    created=1_600_000_000.0 + i)
        if node.text and draw(st.booleans()):  # scored by a model known by texts only
            cuts = draw(st.lists(st.integers(1, max(1, len(node.text) - 1)), max_size=4))
            node.token_offsets = sorted({0, *(c for c in cuts if c < len(node.text))})
            node.token_logprobs = [draw(st.floats(-20.0, 0.0)) for _ in node.token_offsets]
            node.model = "m"
        tree.add_child(parent, node)
        ids.append(f"n{i}")
    tree.select(draw(st.sampled_from(ids)))
    return tree


@pytest.mark.parametrize("fmt", TREE_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees())
def test_random_trees_survive_each_writer_and_reader(fmt: str, tree: Tree) -> None:
    data = export_tree(tree, fmt)
    doc = loads(data)
    assert detect(doc)[0] == fmt
    [back] = READERS[fmt].read(doc)
    got = back.tree
    assert outline(got) == outline(tree)
    assert got.context_text(got.selected) == tree.context_text(tree.selected)
    if fmt == "pyloom":  # per-token scores go through model_responses and come back
        scores = [(tree.node(n).token_offsets, tree.node(n).token_logprobs)
                  for n, _ in tree.iter_preorder()]
        assert [(got.node(n).token_offsets, got.node(n).token_logprobs)
                for n, _ in got.iter_preorder()] == scores
    assert got.depth(got.selected) == tree.depth(tree.selected)
    assert export_tree(got, fmt) == data  # and the file comes back the same


# --------------------------------------------------------------------------- big files
@pytest.mark.parametrize("fmt", sorted(synth.GENERATORS))
def test_big_synthetic_files_import(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"big-{fmt}.json"
    path.write_bytes(synth.GENERATORS[fmt](3000))
    [imp] = import_file(path)
    tree = imp.tree
    assert imp.notes == []
    if fmt != "logitloom":  # tokens merge into segments
        assert len(tree) == 3000
    assert tree.context_text(tree.selected).startswith("Once")


def test_big_synthetic_database_imports(tmp_path: Path) -> None:
    path = synth.basemode_db(3000, tmp_path / "big.db")
    [imp] = import_file(path)
    assert len(imp.tree) == 3000 and imp.name == "Synthetic"


def test_deep_chains_of_every_nested_format(tmp_path: Path) -> None:
    depth = 5000
    chain: dict[str, Any] = {"id": "t-last", "text": "!", "logprob": -0.1, "prob": 0.9,
                             "branchFinished": True, "children": []}
    ll = chain
    for i in range(depth):
        ll = {"id": f"t{i}", "text": "x", "logprob": -0.1, "prob": 0.9,
              "branchFinished": False, "children": [ll, {"id": f"a{i}", "text": "y",
                                                         "logprob": -3.0, "prob": 0.05,
                                                         "branchFinished": False,
                                                         "children": []}]}
    doc = {"isLogitLoomTreeVersion": "logit-loom-tree-v1", "modelName": "m",
           "modelSettings": {"kind": "base", "prompt": "P"}, "roots": [ll]}
    from loomtui.core.exporters.jsonout import nested

    # build the (too deep for json.dumps) file with our iterative writer's helper
    def fields(t: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in t.items() if k != "children"}

    index: dict[str, dict[str, Any]] = {}
    stack = [ll]
    while stack:
        t = stack.pop()
        index[t["id"]] = t
        stack.extend(t["children"])
    body = nested(ll["id"], lambda i: fields(index[i]),
                  lambda i: [c["id"] for c in index[i]["children"]])
    path = tmp_path / "deep.ll.json"
    path.write_bytes(b'{"isLogitLoomTreeVersion": "logit-loom-tree-v1", "modelName": "m", '
                     b'"modelSettings": {"kind": "base", "prompt": "P"}, "roots": [' + body + b"]}")
    del doc
    tree = one(path)
    [seg] = tree.children(tree.root_id)
    node = tree.node(seg)  # the last position's tokens go nowhere: the distribution after it
    assert node.text == "x" * depth and len(tree) == 2 and node.n_tokens == depth
    assert node.distribution is not None and node.distribution.top.texts == ["!", "y"]


# --------------------------------------------------------------------------- the CLI
def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    from loomtui.cli import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_import_without_output_writes_beside_never_over(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from loomtui.core import session

    src = tmp_path / "tree.json"
    src.write_bytes((DATA / "helm" / "tree.json").read_bytes())
    rc, out, err = _cli(capsys, "import", src)
    target = tmp_path / "tree.loomtui.json"
    assert rc == 0 and out == ""
    assert err == f"imported 4 nodes (helm) into {target}\n"
    assert len(session.load(target)) == 4
    assert src.read_bytes() == (DATA / "helm" / "tree.json").read_bytes()
    before = target.read_bytes()
    rc, _, err = _cli(capsys, "import", src)
    assert rc == 2 and err.startswith(f"loomtui: error: {target}: already exists")
    assert err.count("\n") == 1 and target.read_bytes() == before


def test_import_of_several_trees_one_session_each(tmp_path: Path, basemode_db: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "import", basemode_db)
    assert rc == 0
    assert (basemode_db.parent / "Diary.loomtui.json").is_file()
    assert (basemode_db.parent / "Poem.loomtui.json").is_file()
    assert err.count("imported ") == 2 and "(basemode-loom 'Poem')" in err
    out_dir = tmp_path / "notes"
    rc, _, err = _cli(capsys, "import", DATA / "loomsidian" / "data.json", "-o", out_dir)
    written = sorted(p.name for p in out_dir.iterdir() if not p.name.endswith(".lock"))
    assert rc == 0 and written == [
        "Notes_Two roots.md.loomtui.json", "Stories_Fox.md.loomtui.json"]
    one_note = tmp_path / "fox.json"
    rc, _, err = _cli(capsys, "import", DATA / "loomsidian" / "data.json", "--note",
                      "Stories/Fox.md", "-o", one_note)
    assert rc == 0 and one_note.is_file()


def test_import_deep_pyloom_chain_from_the_cli(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    depth = 5000
    opens = "".join(f'{{"id": "n{i}", "text": "w", "children": [' for i in range(depth))
    src = tmp_path / "deep.json"
    src.write_text('{"root": ' + opens + '{"id": "leaf", "text": "!"}' + "]}" * depth + "}")
    out = tmp_path / "deep-session.json"
    rc, _, err = _cli(capsys, "import", src, "-o", out)
    assert rc == 0, err
    assert f"imported {depth + 1} nodes (socketteer/loom) into {out}" in err


def test_export_tree_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loomtui.core import session

    sess = tmp_path / "s.json"
    session.save(one(DATA / "exoloom" / "export.json"), sess)
    tree = session.load(sess)
    tree.select("4")
    session.save(tree, sess)
    for fmt in TREE_FORMATS:
        out = tmp_path / f"out.{fmt}.json"
        rc, _, err = _cli(capsys, "export", sess, "--format", fmt, "-o", out)
        assert rc == 0, err
        doc = json.loads(out.read_bytes())
        assert detect(doc)[0] == fmt
        [back] = READERS[fmt].read(doc)
        assert back.tree.context_text(back.tree.selected) == "The ship left port in a storm " \
            "and sank."
        assert outline(back.tree) == outline(tree)
    rc, out_text, _ = _cli(capsys, "export", sess, "--format", "pyloom")
    assert rc == 0 and json.loads(out_text)["selected_node_id"] == "4"
    rc, out_text, err = _cli(capsys, "export", sess, "--format", "miniloom", "--node", "3")
    assert rc == 2 and out_text == "" and err.count("\n") == 1
    assert "--node exports one branch" in err


def test_imported_scores_survive_a_session_file(tmp_path: Path) -> None:
    """Needs session format version 2 (token texts without ids, foreign fields): fails on
    the version-1 session module until the lead's session package lands."""
    from loomtui.core import session

    tree = one(DATA / "pyloom" / "small.json")
    session.save(tree, tmp_path / "s.json")
    back = session.load(tmp_path / "s.json")
    g1 = back.node("g1")
    assert g1.token_logprobs == [-0.5, -0.25] and g1.model == "davinci"
    assert g1.alternatives is not None and g1.alternatives[0].ids == [None, None, None]
    assert json.loads(export_tree(back, "pyloom")) == _raw_json(DATA / "pyloom" / "small.json")


def test_duplicate_ids_are_one_note_line_on_stderr(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "dups.json"
    src.write_text(json.dumps({"root": {"id": "a", "text": "A", "children": [
        {"id": "a", "text": "B"}, {"id": "b", "text": "C"}, {"id": "b", "text": "D"}]}}))
    rc, out, err = _cli(capsys, "import", src, "-o", tmp_path / "s.json")
    assert rc == 0 and out == ""
    lines = err.splitlines()
    assert lines[0] == "loomtui: note: 2 node id(s) given twice got fresh ids: 'a', 'b'"
    assert lines[1].startswith("imported 4 nodes (socketteer/loom) into ") and len(lines) == 2


# --------------------------------------------------------------------------- mutations
def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    stack = [(doc, prefix)]
    while stack:
        value, here = stack.pop()
        items = value.items() if isinstance(value, dict) else (
            enumerate(value) if isinstance(value, list) else ())
        for k, v in items:
            out.append((*here, k))
            stack.append((v, (*here, k)))
    return out


def _mutated(doc: Any, rng: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    path = rng.choice(_paths(doc)[1:])
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    choice = rng.randrange(4)
    if choice == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif choice == 0:
        parent.pop(path[-1])
    elif choice == 1:  # a value of another type
        parent[path[-1]] = rng.choice([None, 0, -1, 2**70, 1.5, "", "x", "\x1b[2J", [], {},
                                       [None], {"0": 1}, True])
    elif choice == 2:  # a reference to a node that is elsewhere (or itself)
        ids = [p[-1] for p in _paths(doc) if p and isinstance(p[-1], str)]
        parent[path[-1]] = rng.choice(ids) if ids else "x"
    else:  # a duplicate of a sibling
        parent[path[-1]] = json.loads(json.dumps(rng.choice(
            list(parent.values()) if isinstance(parent, dict) else parent)))
    return doc


def test_mutated_files_import_or_fail_in_one_line(tmp_path: Path) -> None:
    """300 mutations of the fixtures (deleted fields, wrong types, references to other
    nodes, duplicates): each imports, or is refused with one line; never a traceback."""
    import random

    rng = random.Random(12)
    docs = [(name, json.loads((DATA / name).read_bytes())) for name in FIXTURES
            if "demo" not in name]
    path = tmp_path / "m.json"
    outcomes = {"ok": 0, "refused": 0}
    for i in range(300):
        name, doc = docs[i % len(docs)]
        raw = json.dumps(_mutated(doc, rng)).encode()
        path.write_bytes(raw)
        try:
            for imported in import_file(path):
                assert len(imported.tree) >= 1
                for nid, _ in imported.tree.iter_preorder():
                    assert math.isfinite(imported.tree.node(nid).created)
                for fmt in TREE_FORMATS:
                    export_tree(imported.tree, fmt)
            outcomes["ok"] += 1
        except SessionError as exc:
            assert "\n" not in str(exc), (name, str(exc))
            outcomes["refused"] += 1
        assert path.read_bytes() == raw
    assert outcomes["ok"] > 50 and outcomes["refused"] > 20, outcomes


@settings(max_examples=300, deadline=None)
@given(before=st.text("ab cd\nxé🌊", max_size=60), after=st.text("ab cd\nxé🌊", max_size=60))
def test_miniloom_apply_gives_what_patch_apply_gives(before: str, after: str) -> None:
    from diff_match_patch import diff_match_patch

    from loomtui.core.importers.miniloom import apply

    dmp = diff_match_patch()
    expected, ok = dmp.patch_apply(dmp.patch_make(before, after), before)
    assert all(ok) and expected == after
    assert apply(dmp.patch_make(before, after), before, "node 'x'") == after
