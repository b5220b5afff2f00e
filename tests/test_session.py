"""Sessions on disk: round trips, the node-link format, atomic saves and strict validation."""

from __future__ import annotations

import copy
import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loomtui.bench.synthetic import make_tree
from loomtui.core import session
from loomtui.core.errors import SessionError
from loomtui.core.node import (
    ORIGINS,
    Alternatives,
    Choices,
    Distribution,
    Node,
    Sampler,
    TokenScores,
)
from loomtui.core.tree import Tree


def rich_tree() -> Tree:
    """Nodes in pre-order: r (prompt), a (tokenised, full), a1 (tokenised, sparse), b (typed)."""
    t = Tree(Node("r", "Once upon", "prompt", token_ids=[1, 2], token_offsets=[0, 4],
                  token_logprobs=[None, -2.5], created=1.0),
             model="bard", sampler=Sampler(temperature=0.7, stop=("\n",)), created=100.0)
    t.add_child("r", Node(
        "a", " a time", "sampled", token_ids=[11, 12], token_offsets=[0, 2],
        token_logprobs=[-0.5, -1.0],
        alternatives=Alternatives.of([[(11, " a", -0.5), (13, " the", -1.2)],
                                      [(12, " time", -1.0), (14, " day", -1.9)]]),
        distribution=Distribution(Choices([7, 8], [" there", ","], [-0.3, -1.6]), 2.25, 0.93,
                                  "bard"),
        sampler=Sampler(temperature=0.9, top_p=0.95, stop=("\n\n", "THE END")), seed=1234,
        model="bard", created=2.0, bookmarked=True, note="good\nbranch", tags=["x", "ü"]))
    t.add_child("a", Node("a1", " there", "picked", token_ids=[7], token_offsets=[0],
                          token_logprobs=[None], created=3.0))
    t.add_child("r", Node("b", "!! ✨ typed", "typed", created=4.0))
    t.select("a1")
    t.modified = 200.0
    return t


def _files(directory: Path) -> list[str]:
    """The files in ``directory``, without the writers' lock files."""
    return sorted(p for p in os.listdir(directory) if not p.endswith(".lock"))


def rich_doc() -> dict[str, Any]:
    return orjson.loads(session.dumps(rich_tree()))


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg and "\r" not in msg, msg
    return msg


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("make", [rich_tree, lambda: make_tree(300, seed=3),
                                  lambda: Tree(Node("only", "", "prompt"), created=5.0)])
def test_save_load_round_trip(tmp_path: Path, make: Callable[[], Tree]) -> None:
    tree = make()
    path = tmp_path / "s.json"
    assert session.save(tree, path) == session.stamp_of(path)
    loaded = session.load(path)
    assert session.tree_to_json(loaded) == session.tree_to_json(tree)
    assert loaded.selected == tree.selected
    assert loaded.root_id == tree.root_id
    assert loaded.sampler == tree.sampler
    assert (loaded.created, loaded.modified) == (tree.created, tree.modified)
    assert not loaded.can_undo  # history is not part of a session
    # the loaded tree is fully usable
    assert loaded.context_text(tree.selected) == tree.context_text(tree.selected)
    session.save(loaded, path)
    assert path.read_bytes() == session.dumps(tree)


def test_loaded_node_values(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    session.save(rich_tree(), path)
    t = session.load(path)
    a = t.node("a")
    assert a.alternatives is not None and a.alternatives[1] == Choices([12, 14], [" time", " day"],
                                                                       [-1.0, -1.9])
    assert a.distribution is not None and a.distribution.rank_of(8) == 2
    assert a.distribution.logprob_of(7) == -0.3
    assert a.sampler == Sampler(temperature=0.9, top_p=0.95, stop=("\n\n", "THE END"))
    assert a.note == "good\nbranch" and a.tags == ["x", "ü"] and a.bookmarked
    assert t.node("a1").token_logprobs == [None]
    assert t.node("b").token_ids is None
    assert t.sampler.stop == ("\n",)
    assert t.model == "bard"
    # identical sampler settings are shared after loading (they are values)
    t2 = session.loads(session.dumps(make_tree(20)))
    assert len({id(n.sampler) for n in t2.nodes()}) == 1


def test_format_is_node_link_json(tmp_path: Path) -> None:
    tree = rich_tree()
    path = tmp_path / "s.json"
    session.save(tree, path)
    with path.open(encoding="utf-8") as f:
        doc = json.load(f)
    assert set(doc) == {"directed", "multigraph", "graph", "nodes", "edges"}
    assert doc["directed"] is True
    assert doc["multigraph"] is False
    g = doc["graph"]
    assert g["format"] == "loomtui-session"
    assert g["version"] == 2
    assert g["root"] == "r"
    assert g["selected"] == "a1"
    assert g["model"] == "bard"
    assert g["sampler"]["temperature"] == 0.7 and g["sampler"]["stop"] == ["\n"]
    assert (g["created"], g["modified"]) == (100.0, 200.0)
    assert [n["id"] for n in doc["nodes"]] == ["r", "a", "a1", "b"]  # pre-order
    assert set(doc["nodes"][0]) == {
        "id", "text", "origin", "token_ids", "token_offsets", "token_logprobs", "alternatives",
        "distribution", "sampler", "seed", "model", "created", "bookmarked", "note", "tags"}
    # Token texts are written once per model in graph.vocab, not with every choice.
    assert doc["nodes"][1]["alternatives"] == {
        "ids": [[11, 13], [12, 14]], "logprobs": [[-0.5, -1.2], [-1.0, -1.9]]}
    assert {g["vocab"]["bard"][k] for k in ("11", "13", "12", "14")} == {
        " a", " the", " time", " day"}
    assert doc["nodes"][1]["distribution"]["top"]["ids"] == [7, 8]

    with path.open(encoding="utf-8") as f:
        graph = nx.node_link_graph(json.load(f), edges="edges")
    assert isinstance(graph, nx.DiGraph) and not graph.is_multigraph()
    assert set(graph.nodes) == {"r", "a", "a1", "b"}
    assert set(graph.edges) == set(tree.graph.edges) == {("r", "a"), ("a", "a1"), ("r", "b")}
    assert nx.is_arborescence(graph)
    assert graph.graph["format"] == "loomtui-session"
    assert graph.nodes["b"]["text"] == "!! ✨ typed"
    assert graph.nodes["a"]["seed"] == 1234


def test_big_synthetic_session_is_an_arborescence(tmp_path: Path) -> None:
    tree = make_tree(2000, seed=1, branching=3)
    path = tmp_path / "big.json"
    session.save(tree, path)
    graph = nx.node_link_graph(json.loads(path.read_bytes()), edges="edges")
    assert graph.number_of_nodes() == 2000 and graph.number_of_edges() == 1999
    assert set(graph.edges) == set(tree.graph.edges)
    assert nx.is_arborescence(graph)


# --------------------------------------------------------------------------- atomic saves


def test_save_keeps_previous_version_as_bak(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    t = rich_tree()
    session.save(t, path)
    first = path.read_bytes()
    assert _files(tmp_path) == ["s.json"]  # nothing to back up yet

    t.set_note("b", "second")
    session.save(t, path)
    second = path.read_bytes()
    assert second != first
    assert (tmp_path / "s.json.bak").read_bytes() == first
    assert session.load(tmp_path / "s.json.bak").node("b").note == ""

    t.set_note("b", "third")
    session.save(t, path)
    assert (tmp_path / "s.json.bak").read_bytes() == second
    assert session.load(path).node("b").note == "third"

    t.set_note("b", "fourth")
    session.save(t, path, backup=False)
    assert (tmp_path / "s.json.bak").read_bytes() == second
    assert _files(tmp_path) == ["s.json", "s.json.bak"]  # no temporary files


def test_save_replaces_the_file_instead_of_rewriting_it(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    t = rich_tree()
    session.save(t, path)
    old = path.read_bytes()
    os.link(path, tmp_path / "old-view")
    t.set_note("a", "changed")
    session.save(t, path)
    # a reader holding the old file still sees a complete old session
    assert (tmp_path / "old-view").read_bytes() == old
    assert path.read_bytes() != old


def test_save_refuses_missing_directories_and_takes_relative_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = tmp_path / "a" / "b" / "s.json"
    with pytest.raises(SessionError, match=r"the directory .* does not exist"):
        session.save(rich_tree(), nested)
    assert not (tmp_path / "a").exists()
    monkeypatch.chdir(tmp_path)
    session.save(rich_tree(), "rel.json")
    assert session.load("rel.json").selected == "a1"


@pytest.mark.parametrize("which", ["final", "every"])
def test_failed_save_keeps_old_file_and_leaves_no_temp_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    path = tmp_path / "s.json"
    t = rich_tree()
    session.save(t, path)
    t.set_note("a", "x")
    session.save(t, path)
    before = {p: (tmp_path / p).read_bytes() for p in _files(tmp_path)}
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any) -> None:
        if which == "every" or Path(dst) == path:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(session.os, "replace", failing_replace)
    t.set_note("a", "never saved")
    with pytest.raises(SessionError) as ei:
        session.save(t, path)
    monkeypatch.undo()
    msg = one_line(ei.value)
    assert msg == f"{path}: cannot save: No space left on device"
    assert ei.value.path == str(path)
    after = {p: (tmp_path / p).read_bytes() for p in _files(tmp_path)}
    if which == "final":  # the backup step ran: .bak now holds the (unchanged) current file
        assert after == {"s.json": before["s.json"], "s.json.bak": before["s.json"]}
    else:
        assert after == before


def test_unencodable_tree_is_a_session_error(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    session.save(rich_tree(), path)
    old = path.read_bytes()
    bad = rich_tree()
    bad.add_child("b", Node("s", "lone \ud800 surrogate", "typed"))
    with pytest.raises(SessionError) as ei:
        session.save(bad, path)
    assert one_line(ei.value).startswith(f"{path}: cannot save: ")
    assert path.read_bytes() == old
    assert _files(tmp_path) == ["s.json"]


def test_save_to_unwritable_place_is_a_session_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SessionError) as ei:
        session.save(rich_tree(), blocker / "s.json")
    assert one_line(ei.value).startswith(f"{blocker / 's.json'}: cannot save")


# --------------------------------------------------------------------------- validation

Mut = Callable[[dict[str, Any]], Any]


def _set(*path: Any, value: Any) -> Mut:
    def f(d: dict[str, Any]) -> None:
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    return f


def _del(*path: Any) -> Mut:
    def f(d: dict[str, Any]) -> None:
        for key in path[:-1]:
            d = d[key]
        del d[path[-1]]
    return f


def _edges(*edges: tuple[str, str], drop: tuple[str, str] | None = None) -> Mut:
    def f(d: dict[str, Any]) -> None:
        if drop is not None:
            d["edges"].remove({"source": drop[0], "target": drop[1]})
        d["edges"].extend({"source": s, "target": t} for s, t in edges)
    return f


def _alt_drop_row(d: dict[str, Any]) -> None:
    for col in d["nodes"][1]["alternatives"].values():
        col.pop()


# nodes[0] = r, nodes[1] = a (full), nodes[2] = a1, nodes[3] = b (untokenised)

def _v1(mut: Mut) -> Mut:
    """The mutation applied to a version-1 document."""
    def run(d: dict[str, Any]) -> None:
        d["graph"]["version"] = 1
        mut(d)
    return run

BAD: list[tuple[str, bytes | Mut, list[str]]] = [
    ("bad-json", b'{"directed": true, "graph": ', ["not valid JSON"]),
    ("bad-json-garbage", b"\x00\xff\xfe garbage", ["not valid JSON"]),
    ("empty-file", b"", ["not valid JSON"]),
    ("top-level-list", b"[1, 2]", ["top level must be a JSON object"]),
    ("wrong-format", _set("graph", "format", value="networkx"), ["not a loomtui session"]),
    ("no-graph", _del("graph"), ["not a loomtui session"]),
    ("newer-version", _set("graph", "version", value=3), ["version 3", "newer", "upgrade"]),
    ("version-zero", _set("graph", "version", value=0), ["unknown session format version 0"]),
    ("version-string", _set("graph", "version", value="1"), ["graph.version must be an integer"]),
    ("undirected", _set("directed", value=False), ["directed"]),
    ("multigraph", _set("multigraph", value=True), ["not a multigraph"]),
    ("no-nodes", _set("nodes", value=[]), ["nodes must be a non-empty list"]),
    ("edges-not-list", _set("edges", value={}), ["edges must be a list"]),
    ("zero-roots", _edges(("a1", "r")), ["exactly one root, found 0"]),
    ("two-roots", _edges(drop=("r", "b")), ["exactly one root, found 2"]),
    ("cycle", _edges(("a1", "a"), drop=("r", "a")), ["cycle"]),
    ("self-loop", _edges(("b", "b"), drop=("r", "b")), ["cycle"]),
    ("edge-missing-node", _edges(("a", "ghost")), ["'ghost'", "does not exist"]),
    ("edge-unhashable", _edges((["a"], "b")), ["does not exist"]),  # type: ignore[arg-type]
    ("edge-not-object", _set("edges", 0, value=["r", "a"]), ["every edge must be an object"]),
    ("two-parents", _edges(("b", "a1")), ["node 'a1' has more than one parent"]),
    ("duplicate-id", _set("nodes", 3, "id", value="a1"), ["two nodes share an id"]),
    ("node-not-object", _set("nodes", 2, value="a1"), ["node #2 is not an object"]),
    ("node-no-id", _del("nodes", 2, "id"), ["node #2 has no string id"]),
    ("node-empty-id", _set("nodes", 2, "id", value=""), ["node #2 has no string id"]),
    ("text-not-string", _set("nodes", 3, "text", value=5), ["node 'b'", "text must be a string"]),
    ("bad-origin", _set("nodes", 1, "origin", value="alien"), ["node 'a'", "origin must be one of",
                                                               "'alien'"]),
    ("token-ids-string", _set("nodes", 1, "token_ids", 1, value="12"),
     ["node 'a'", "token_ids: token ids must be integers in [0, 2**31)"]),
    ("token-ids-negative", _set("nodes", 1, "token_ids", 0, value=-3),
     ["token_ids: token ids must be integers in [0, 2**31)"]),
    ("token-ids-float", _set("nodes", 2, "token_ids", 0, value=7.0),
     ["node 'a1'", "token_ids: token ids must be integers in [0, 2**31)"]),
    ("token-ids-bool", _set("nodes", 2, "token_ids", 0, value=True),
     ["token_ids: token ids must be integers in [0, 2**31)"]),
    ("token-ids-not-list", _set("nodes", 1, "token_ids", value="abc"),
     ["token_ids must be a list of token ids or null"]),
    ("offsets-length", _set("nodes", 1, "token_offsets", value=[0]),
     ["token_ids and token_offsets must be lists with one entry per token"]),
    ("offsets-decreasing", _set("nodes", 1, "token_offsets", value=[2, 0]),
     ["token_offsets must be increasing offsets into text"]),
    ("offsets-past-text", _set("nodes", 1, "token_offsets", value=[0, 99]),
     ["token_offsets must be increasing offsets into text"]),
    ("offsets-string", _set("nodes", 1, "token_offsets", value=["0", "2"]),
     ["token_offsets must list one integer offset per token"]),
    ("offsets-null", _set("nodes", 1, "token_offsets", value=[None, None]),
     ["token_offsets must list one integer offset per token"]),
    ("offsets-float", _set("nodes", 1, "token_offsets", value=[0, 1.5]),
     ["token_offsets must list one integer offset per token"]),
    ("offsets-without-ids-v1", _v1(_set("nodes", 3, "token_offsets", value=[0])),
     ["token_offsets given without token_ids"]),
    ("offsets-past-text-without-ids", _set("nodes", 3, "token_offsets", value=[0, 99]),
     ["token_offsets must be increasing offsets into text"]),
    ("v2-field-in-v1", _v1(_set("nodes", 3, "foreign", value={"x": 1})),
     ["foreign needs session format version 2"]),
    ("token-id-too-big", _set("nodes", 1, "token_ids", 0, value=2**31),
     ["token ids must be integers in [0, 2**31)"]),
    ("token-id-huge", _set("nodes", 1, "token_ids", 0, value=2**64 - 1),
     ["token ids must be integers in [0, 2**31)"]),
    ("logprob-positive", _set("nodes", 1, "token_logprobs", 0, value=1e308),
     ["node 'a'", "log-probabilities must be finite numbers <= 1e-6"]),
    ("distribution-logprob-positive", _set("nodes", 1, "distribution", "top", "logprobs", 0,
                                           value=1000),
     ["distribution.top: log-probabilities must be finite numbers <= 1e-6"]),
    ("alternatives-logprob-positive", _set("nodes", 1, "alternatives", "logprobs", 0, 0,
                                           value=3.5),
     ["alternatives[0]: log-probabilities must be finite numbers <= 1e-6"]),
    ("entropy-negative", _set("nodes", 1, "distribution", "entropy", value=-1),
     ["entropy must be >= 0"]),
    ("mass-over-one", _set("nodes", 1, "distribution", "mass", value=1.5),
     ["mass must be in [0, 1]"]),
    ("partial-not-bool", _set("nodes", 1, "distribution", "partial", value="yes"),
     ["partial must be true or false"]),
    ("seed-huge", _set("nodes", 1, "seed", value=2**64 - 1),
     ["seed must be an integer in [0, 2**63)"]),
    ("seed-negative", _set("graph", "seed", value=-1), ["graph.seed must be an integer"]),
    ("sampler-n-huge", _set("nodes", 1, "sampler", "n", value=2**40),
     ["sampler: n must be an integer in [1, 256]"]),
    ("created-huge", _set("nodes", 1, "created", value=1e300), ["created must be a number"]),
    ("token-bytes-not-hex", _set("nodes", 1, "token_bytes", value=["zz", "00"]),
     ["token_bytes must be a list of hex strings"]),
    ("token-bytes-length", _set("nodes", 1, "token_bytes", value=["00"]),
     ["token_bytes must have one entry per token"]),
    ("scores-not-object", _set("nodes", 1, "scores", value=[]),
     ["scores must be an object mapping model names to scores"]),
    ("scores-logprob-positive", _set("nodes", 1, "scores", value={
        "m": {"token_offsets": [0], "token_logprobs": [5.0]}}),
     ["scores['m'].token_logprobs: log-probabilities must be finite"]),
    ("scores-length", _set("nodes", 1, "scores", value={
        "m": {"token_offsets": [0, 1], "token_logprobs": [-1.0]}}),
     ["scores['m'].token_logprobs must have one entry per token"]),
    ("foreign-not-object", _set("nodes", 1, "foreign", value=[1]), ["foreign must be an object"]),
    ("graph-foreign-not-object", _set("graph", "foreign", value=3),
     ["graph.foreign must be an object"]),
    ("logprobs-string", _set("nodes", 1, "token_logprobs", 0, value="-0.5"),
     ["node 'a'", "token_logprobs must be a list of numbers or nulls"]),
    ("logprobs-not-list", _set("nodes", 1, "token_logprobs", value=-0.5),
     ["token_logprobs must be a list of numbers or nulls"]),
    ("logprobs-length", _set("nodes", 1, "token_logprobs", value=[-0.5]),
     ["token_logprobs must have one entry per token"]),
    ("logprobs-without-ids", _set("nodes", 3, "token_logprobs", value=[]),
     ["token_logprobs must have one entry per token"]),
    ("alternatives-rows", _alt_drop_row, ["node 'a'", "alternatives must have one row per token"]),
    ("alternatives-row-length", lambda d: d["nodes"][1]["alternatives"]["logprobs"][0].pop(),
     ["node 'a'", "alternatives[0] must be lists of one length"]),
    ("alternatives-row-not-list", _set("nodes", 1, "alternatives", "ids", 1, value=12),
     ["alternatives: every row must be a list"]),
    ("alternatives-id-type", _set("nodes", 1, "alternatives", "ids", 1, 0, value="12"),
     ["alternatives: token id '12' has no text in graph.vocab"]),
    ("alternatives-unknown-id", _set("nodes", 1, "alternatives", "ids", 1, 0, value=99999),
     ["alternatives: token id 99999 has no text in graph.vocab"]),
    ("alternatives-text-type", _set("nodes", 1, "alternatives", "texts",
                                    value=[[" a", 3], [" time", " day"]]),
     ["alternatives[0]: token texts must be strings"]),
    ("alternatives-inline-row-length", _set("nodes", 1, "alternatives", "texts",
                                            value=[[" a"], [" time", " day"]]),
     ["alternatives[0] must be lists of one length"]),
    ("vocab-not-object", _set("graph", "vocab", value=[]), ["graph.vocab must be an object"]),
    ("vocab-text-type", _set("graph", "vocab", "bard", "11", value=11),
     ["graph.vocab['bard'] must map token ids to texts"]),
    ("vocab-key", _set("graph", "vocab", "bard", "x", value="x"),
     ["graph.vocab['bard'] has a key that is not a token id"]),
    ("vocab-missing", _del("graph", "vocab"),
     ["has no texts and graph.vocab has no table for its model"]),
    ("alternatives-logprob-type", _set("nodes", 1, "alternatives", "logprobs", 0, 0, value=None),
     ["alternatives[0]: log-probabilities must be finite numbers"]),
    ("alternatives-not-object", _set("nodes", 1, "alternatives", value=[1, 2]),
     ["alternatives must be an object with ids, texts and logprobs"]),
    ("alternatives-without-ids", _set("nodes", 3, "alternatives",
                                      value={"ids": [], "texts": [], "logprobs": []}),
     ["alternatives given without tokens"]),
    ("distribution-not-object", _set("nodes", 1, "distribution", value=[]),
     ["distribution must be an object or null"]),
    ("distribution-mass", _set("nodes", 1, "distribution", "mass", value="0.9"),
     ["distribution needs numeric entropy and mass"]),
    ("distribution-entropy", _set("nodes", 1, "distribution", "entropy", value=[]),
     ["distribution needs numeric entropy and mass"]),
    ("distribution-model", _set("nodes", 1, "distribution", "model", value=3),
     ["distribution needs numeric entropy and mass, and a string model"]),
    ("distribution-top-length", lambda d: d["nodes"][1]["distribution"]["top"]["ids"].pop(),
     ["distribution.top needs ids, texts and logprobs lists of one length"]),
    ("distribution-top-type", _set("nodes", 1, "distribution", "top", "logprobs", 1, value="x"),
     ["distribution.top: log-probabilities must be finite numbers"]),
    ("sampler-negative-temperature", _set("nodes", 1, "sampler", "temperature", value=-1),
     ["node 'a': sampler: temperature must be a number in [0, 100]"]),
    ("sampler-top-p", _set("nodes", 1, "sampler", "top_p", value=0),
     ["sampler: top-p must be a number in (0, 1]"]),
    ("sampler-n", _set("nodes", 1, "sampler", "n", value=0),
     ["sampler: n must be an integer in [1, 256]"]),
    ("sampler-type", _set("nodes", 1, "sampler", "top_k", value="many"), ["sampler: "]),
    ("sampler-list-value", _set("nodes", 1, "sampler", "temperature", value=[1]), ["sampler: "]),
    ("sampler-object-value", _set("nodes", 1, "sampler", "n", value={"n": 1}), ["sampler: "]),
    ("sampler-null-value", _set("nodes", 1, "sampler", "min_p", value=None), ["sampler: "]),
    ("sampler-stop-type", _set("nodes", 1, "sampler", "stop", value=[1]),
     ["stop must be a list of strings"]),
    ("sampler-not-object", _set("nodes", 1, "sampler", value=0.9), ["sampler must be an object"]),
    ("seed-float", _set("nodes", 1, "seed", value=1.5),
     ["seed must be an integer in [0, 2**63) or null"]),
    ("model-int", _set("nodes", 1, "model", value=1), ["model must be a string or null"]),
    ("created-string", _set("nodes", 1, "created", value="now"), ["created must be a number"]),
    ("bookmarked-int", _set("nodes", 1, "bookmarked", value=1), ["bookmarked must be true"]),
    ("note-null", _set("nodes", 1, "note", value=None), ["note must be a string"]),
    ("tags-not-strings", _set("nodes", 1, "tags", value=["x", 1]), ["tags must be a list"]),
    ("tags-string", _set("nodes", 1, "tags", value="x"), ["tags must be a list"]),
    ("graph-root-mismatch", _set("graph", "root", value="a"),
     ["graph.root is 'a' but the root is 'r'"]),
    ("graph-selected-missing", _set("graph", "selected", value="ghost"),
     ["graph.selected names a node that does not exist"]),
    ("graph-selected-unhashable", _set("graph", "selected", value=["a"]),
     ["graph.selected names a node that does not exist"]),
    ("graph-model", _set("graph", "model", value=5), ["graph.model must be a string or null"]),
    ("graph-sampler", _set("graph", "sampler", "top_k", value=-1),
     ["graph.sampler: top-k must be an integer in [0, 2**31)"]),
    ("graph-created", _set("graph", "created", value="x"), ["graph.created and graph.modified"]),
    ("deeply-nested-json", b"[" * 100_000 + b"]" * 100_000, ["not valid JSON"]),
]


@pytest.mark.parametrize(("name", "bad", "needles"), BAD, ids=[b[0] for b in BAD])
def test_invalid_session_is_one_line_session_error(
        tmp_path: Path, name: str, bad: bytes | Mut, needles: list[str]) -> None:
    if isinstance(bad, bytes):
        raw = bad
    else:
        doc = rich_doc()
        bad(doc)
        raw = json.dumps(doc, indent=1).encode()
    path = tmp_path / "bad.json"
    path.write_bytes(raw)
    mtime = path.stat().st_mtime_ns

    with pytest.raises(SessionError) as ei:
        session.load(path)
    msg = one_line(ei.value)
    assert msg.startswith(f"{path}: "), msg
    assert ei.value.path == str(path)
    for needle in needles:
        assert needle in msg, (needle, msg)
    # loading never touches the file (nor writes anything beside it)
    assert path.read_bytes() == raw
    assert path.stat().st_mtime_ns == mtime
    assert _files(tmp_path) == ["bad.json"]
    # the same problem through loads() names the given source
    with pytest.raises(SessionError) as ei2:
        session.loads(raw, "some/source.json")
    assert str(ei2.value) == f"some/source.json: {ei.value.problem}"


def test_valid_variants_load(tmp_path: Path) -> None:
    """Things the format allows: defaults for optional fields, ints for floats, null model."""
    doc = rich_doc()
    for key in ("created", "bookmarked", "note", "tags"):
        del doc["nodes"][3][key]
    del doc["graph"]["selected"]
    del doc["graph"]["root"]
    doc["multigraph"] = None
    doc["nodes"][1]["distribution"]["entropy"] = None
    doc["nodes"][1]["distribution"]["mass"] = 1
    doc["graph"]["created"] = 7
    t = session.loads(orjson.dumps(doc))
    b = t.node("b")
    assert (b.created, b.bookmarked, b.note, b.tags) == (0.0, False, "", [])
    assert t.selected == "r"
    assert t.created == 7.0
    assert t.node("a").distribution.entropy is None  # type: ignore[union-attr]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SessionError) as ei:
        session.load(tmp_path / "nope.json")
    assert one_line(ei.value) == f"{tmp_path / 'nope.json'}: no such file"
    with pytest.raises(SessionError) as ei:
        session.load(tmp_path)
    assert one_line(ei.value) == f"{tmp_path}: is a directory, not a session file"
    assert not (tmp_path / "nope.json").exists()


def test_newer_version_message() -> None:
    doc = rich_doc()
    doc["graph"]["version"] = 7
    with pytest.raises(SessionError) as ei:
        session.loads(orjson.dumps(doc), "future.json")
    assert str(ei.value) == ("future.json: session format version 7 is newer than this loomtui "
                             "reads (2); upgrade loomtui")


# --------------------------------------------------------------------------- property: round trip

finite = st.floats(allow_nan=False, allow_infinity=False)
logprob = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
short_text = st.text(max_size=10)
token_id = st.integers(0, 2**31 - 1)


def choices(max_size: int, ids: st.SearchStrategy[int | None] = token_id
            ) -> st.SearchStrategy[Choices]:
    return st.lists(st.tuples(ids, short_text, logprob), max_size=max_size).map(Choices.of)


samplers = st.builds(
    Sampler,
    temperature=st.floats(0, 5), top_k=st.integers(0, 10_000),
    top_p=st.floats(0, 1, exclude_min=True), min_p=st.floats(0, 1, exclude_max=True),
    max_tokens=st.integers(1, 100_000), stop=st.lists(short_text, max_size=3).map(tuple),
    n=st.integers(1, 64),
)
distributions = st.builds(Distribution, top=choices(6), entropy=st.none() | st.floats(0, 20),
                          mass=st.floats(0, 1), model=st.none() | short_text)
partial_distributions = st.builds(
    Distribution, top=choices(6, st.none() | token_id), entropy=st.none(),
    mass=st.floats(0, 1), model=st.none() | short_text, partial=st.just(True))
json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | short_text
foreign_values = st.dictionaries(short_text, st.recursive(
    json_leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(short_text, kids,
                                                                          max_size=3),
    max_leaves=6), max_size=3)


@st.composite
def token_scores(draw: st.DrawFn, text: str) -> TokenScores:
    offs = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4)))
    k = len(offs)
    rows = draw(st.none() | st.lists(choices(2, st.none() | token_id), min_size=k, max_size=k))
    return TokenScores(
        offs, draw(st.lists(st.none() | logprob, min_size=k, max_size=k)),
        draw(st.none() | st.lists(st.none() | token_id, min_size=k, max_size=k)),
        None if rows is None else Alternatives([r.ids for r in rows], [r.texts for r in rows],
                                               [r.logprobs for r in rows]),
        draw(st.none() | distributions | partial_distributions))


@st.composite
def node_bodies(draw: st.DrawFn, v2: bool = True) -> dict[str, Any]:
    text = draw(st.text(max_size=24))
    body: dict[str, Any] = {"text": text, "origin": draw(st.sampled_from(ORIGINS))}
    if draw(st.booleans()):
        offs = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
        k = len(offs)
        known_ids = not v2 or draw(st.booleans())
        if known_ids:
            body["token_ids"] = draw(st.lists(token_id, min_size=k, max_size=k))
        body["token_offsets"] = offs
        body["token_logprobs"] = draw(
            st.none() | st.lists(st.none() | logprob, min_size=k, max_size=k))
        rows = draw(st.none() | st.lists(choices(3, token_id if not v2 else
                                                 st.none() | token_id),
                                         min_size=k, max_size=k))
        if rows is not None:
            body["alternatives"] = Alternatives([r.ids for r in rows], [r.texts for r in rows],
                                                [r.logprobs for r in rows])
        if v2 and draw(st.booleans()):
            body["token_bytes"] = draw(st.lists(st.binary(max_size=4), min_size=k, max_size=k))
    body["distribution"] = draw(st.none() | distributions | (
        partial_distributions if v2 else st.none()))
    body["sampler"] = draw(st.none() | samplers)
    body["seed"] = draw(st.none() | st.integers(0, 2**63 - 1))
    body["model"] = draw(st.none() | short_text)
    body["created"] = draw(st.floats(0, 4e9))
    body["bookmarked"] = draw(st.booleans())
    body["note"] = draw(st.text(max_size=16))
    body["tags"] = draw(st.lists(short_text, max_size=3))
    if v2:
        body["scores"] = draw(st.dictionaries(short_text, token_scores(text), max_size=2))
        body["foreign"] = draw(foreign_values)
    return body


@st.composite
def trees(draw: st.DrawFn, v2: bool = True) -> Tree:
    bodies = draw(st.lists(node_bodies(v2), min_size=1, max_size=10))
    shape = draw(st.sampled_from(["random", "deep", "wide"]))
    if shape == "random":
        n = len(bodies) + draw(st.integers(0, 20))
        ids = draw(st.lists(st.text(min_size=1, max_size=6), min_size=n, max_size=n,
                            unique=True))
        parents = [draw(st.integers(0, i - 1)) for i in range(1, n)]
    else:
        n = draw(st.integers(1, 1500 if shape == "deep" else 300))
        prefix = draw(st.text(max_size=3))
        ids = [f"{prefix}{i}" for i in range(n)]
        parents = list(range(n - 1)) if shape == "deep" else [0] * (n - 1)
    nodes = [Node(id=ids[i], **bodies[i % len(bodies)]) for i in range(n)]
    edges = [(ids[p], ids[i]) for i, p in enumerate(parents, start=1)]
    tree = Tree.from_parts(nodes, edges, ids[0], model=draw(st.none() | short_text),
                           sampler=draw(samplers), created=draw(finite))
    tree.modified = draw(finite)
    tree.selected = draw(st.sampled_from(ids))
    if v2:
        tree.foreign = draw(foreign_values)
    return tree


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tree=trees())
def test_property_save_load_round_trip(tree: Tree) -> None:
    expected = session.tree_to_json(tree)
    data = session.dumps(tree)
    loaded = session.loads(data)
    assert session.tree_to_json(loaded) == expected
    assert session.dumps(loaded) == data  # byte-stable
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.json"
        session.save(tree, path)
        assert session.tree_to_json(session.load(path)) == expected
        graph = nx.node_link_graph(json.loads(path.read_bytes()), edges="edges")
        assert set(graph.edges) == set(tree.graph.edges)
        assert nx.is_arborescence(graph)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tree=trees(v2=False))
def test_property_version_1_loads_and_saves_as_version_2(tree: Tree) -> None:
    """A version-1 document (no version-2 fields) loads, and saves as the same tree in
    version 2."""
    doc = session.tree_to_json(tree)
    assert not any(k in n for n in doc["nodes"] for k in ("token_bytes", "scores", "foreign"))
    doc["graph"]["version"] = 1
    loaded = session.loads(orjson.dumps(doc))
    again = session.tree_to_json(loaded)
    assert again["graph"]["version"] == 2
    doc["graph"]["version"] = 2
    assert again == doc


# --------------------------------------------------------------------------- property: fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    stack = [(doc, prefix)]
    while stack:
        value, here = stack.pop()
        items = (value.items() if isinstance(value, dict)
                 else enumerate(value) if isinstance(value, list) else ())
        for k, v in items:
            out.append((*here, k))
            stack.append((v, (*here, k)))
    return out


def _retype(v: Any) -> list[Any]:
    return [str(v), [v], {"value": v}, None, True, 1.5, -1, 2**63 - 1, "", []]


def synthetic_doc() -> dict[str, Any]:
    tree = make_tree(6)
    tree.created = tree.modified = 1000.0  # deterministic, so hypothesis can replay its draws
    return orjson.loads(session.dumps(tree))


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    doc = draw(st.sampled_from([rich_doc, synthetic_doc]))()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(st.sampled_from(["delete", "replace", "retype", "duplicate"]))
        if not path:
            if action in ("replace", "retype"):
                doc = draw(json_values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "retype":
            parent[key] = draw(st.sampled_from(_retype(parent[key])))
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key + "_"] = copy.deepcopy(parent[key])
    raw = orjson.dumps(doc)
    byte_action = draw(st.sampled_from(["none", "none", "truncate", "flip", "insert"]))
    if byte_action != "none" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        if byte_action == "truncate":
            raw = raw[:i]
        elif byte_action == "flip":
            raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
        else:
            raw = raw[:i] + draw(st.binary(min_size=1, max_size=4)) + raw[i:]
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated_documents())
def test_property_mutated_documents_load_or_raise_session_error(raw: bytes) -> None:
    try:
        tree = session.loads(raw, "fuzz.json")
    except SessionError as exc:
        assert one_line(exc).startswith("fuzz.json: ")
        return
    # anything accepted is a usable tree that saves and reloads to the same state
    assert tree.root_id in tree and tree.selected in tree
    assert len(list(tree.iter_preorder())) == len(tree)
    again = session.loads(session.dumps(tree))
    assert session.tree_to_json(again) == session.tree_to_json(tree)


def test_mutated_documents_include_the_original_shapes() -> None:
    """Sanity check of the fuzzer's starting points: both load unchanged."""
    assert session.tree_to_json(session.loads(orjson.dumps(rich_doc()))) == session.tree_to_json(
        rich_tree())
    assert len(session.loads(orjson.dumps(synthetic_doc()))) == 6
