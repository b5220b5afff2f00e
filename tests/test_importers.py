"""Importing socketteer/loom (Python Loom) JSON trees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loomtui.core import session
from loomtui.core.errors import SessionError
from loomtui.core.importers import import_pyloom, load_pyloom

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tests" / "data" / "formats" / "pyloom" / "loom_demo.json"


@pytest.fixture(scope="module")
def demo_raw() -> dict[str, Any]:
    if not DEMO.is_file():
        pytest.skip(f"fixture {DEMO} is not in this checkout")
    return json.loads(DEMO.read_bytes())


@pytest.fixture(scope="module")
def demo_contexts(demo_raw: dict[str, Any]) -> dict[str, tuple[str, str | None, int, dict]]:
    """id -> (context text, parent id, depth, raw node), walking the raw JSON ourselves."""
    out: dict[str, tuple[str, str | None, int, dict]] = {}
    stack: list[tuple[dict, str, str | None, int]] = [(demo_raw["root"], "", None, 0)]
    while stack:
        raw, prefix, parent, depth = stack.pop()
        ctx = prefix + raw["text"]
        out[raw["id"]] = (ctx, parent, depth, raw)
        stack.extend((k, ctx, raw["id"], depth + 1) for k in raw.get("children", []))
    return out


def test_demo_imports_whole_tree(demo_raw: dict[str, Any],
                                 demo_contexts: dict[str, tuple]) -> None:
    tree = load_pyloom(DEMO)
    assert len(tree) == 764 == len(demo_contexts)
    assert max(d for _, d in tree.iter_preorder()) == 21
    assert tree.root_id == demo_raw["root"]["id"]
    assert tree.selected == demo_raw["selected_node_id"]
    assert {n.id for n in tree.nodes()} == set(demo_contexts)
    for nid, (ctx, parent, depth, raw) in demo_contexts.items():
        assert tree.parent(nid) == parent
        assert tree.depth(nid) == depth
        assert tree.context_text(nid) == ctx
        # sibling order is the file's order
        assert tree.children(nid) == [k["id"] for k in raw.get("children", [])]
        if parent is not None:
            assert raw.get("parent_id", parent) == parent


def test_demo_known_deep_node_context(demo_contexts: dict[str, tuple]) -> None:
    tree = load_pyloom(DEMO)
    deepest = max(demo_contexts, key=lambda n: (demo_contexts[n][2], n))
    assert tree.depth(deepest) == 21
    segments = [demo_contexts[n][3]["text"] for n in tree.path(deepest)]
    assert len(segments) == 22
    assert tree.context_text(deepest) == "".join(segments)
    assert len(tree.context_text(deepest)) > 0


def test_demo_bookmarks_tags_and_origins(demo_contexts: dict[str, tuple]) -> None:
    tree = load_pyloom(DEMO)
    raw_bookmarked = {nid for nid, (*_, raw) in demo_contexts.items()
                      if "bookmark" in (raw.get("tags") or [])}
    assert len(raw_bookmarked) == 22
    assert set(tree.bookmarks()) == raw_bookmarked
    assert len(tree.bookmarks()) == 22
    for n in tree.nodes():
        raw = demo_contexts[n.id][3]
        assert n.tags == [t for t in raw.get("tags") or [] if t != "bookmark"]
        assert n.origin == _expected_origin(raw, n.id == tree.root_id)
        assert n.token_ids is None and n.token_offsets is None and n.token_logprobs is None
        assert n.alternatives is None and n.distribution is None
        assert n.text == raw["text"]
    tag_counts: dict[str, int] = {}
    for n in tree.nodes():
        for t in n.tags:
            tag_counts[t] = tag_counts.get(t, 0) + 1
    assert tag_counts == {"demo": 302, "archived": 106, "choice": 21, "note": 1}


def _expected_origin(raw: dict[str, Any], is_root: bool) -> str:
    """socketteer/loom's meta.source (an object, or its Python repr in the demo)."""
    if is_root:
        return "prompt"
    meta = raw.get("meta")
    text = meta if isinstance(meta, str) else json.dumps(meta)
    for source, origin in (("AI", "sampled"), ("prompt", "typed"), ("mixed", "edited")):
        if f"'source': '{source}'" in text or f'"source": "{source}"' in text:
            return origin
    return "imported"


def test_demo_origins_come_from_meta_source() -> None:
    from collections import Counter

    tree = load_pyloom(DEMO)
    assert Counter(n.origin for n in tree.nodes()) == {
        "sampled": 374, "imported": 323, "typed": 42, "edited": 24, "prompt": 1}


def test_demo_survives_a_session_round_trip(tmp_path: Path) -> None:
    tree = load_pyloom(DEMO) if DEMO.is_file() else pytest.skip("no fixture")
    path = tmp_path / "demo.json"
    session.save(tree, path)
    loaded = session.load(path)
    assert session.tree_to_json(loaded) == session.tree_to_json(tree)
    assert loaded.selected == tree.selected
    # imported text has no token log-probabilities until a model scores it
    leaf = max(loaded.iter_preorder(), key=lambda item: item[1])[0]
    assert loaded.context_text(leaf) and loaded.cumulative_logprob(leaf) is None


def test_bare_node_document() -> None:
    doc = {"text": "Root.", "children": [
        {"id": "x", "text": " One", "children": [{"text": " deeper"}]},
        {"text": " Two"},
        {"id": 7, "text": " Seven", "tags": ["bookmark", "keep"], "note": "n"},
    ]}
    tree = import_pyloom(doc)
    assert len(tree) == 5
    assert tree.node(tree.root_id).text == "Root."
    kids = tree.children(tree.root_id)
    assert [tree.node(k).text for k in kids] == [" One", " Two", " Seven"]
    assert kids[0] == "x" and kids[2] == "7"  # numeric ids become strings
    assert len(set(n.id for n in tree.nodes())) == 5
    assert tree.context_text(tree.children("x")[0]) == "Root. One deeper"
    seven = tree.node("7")
    assert seven.bookmarked and seven.tags == ["keep"] and seven.note == "n"
    assert tree.selected == tree.root_id


def test_full_save_without_selection_and_with_unknown_selection() -> None:
    doc = {"root": {"id": "r", "text": "a", "children": [{"id": "c", "text": "b"}]},
           "selected_node_id": "ghost"}
    assert import_pyloom(doc).selected == "r"
    doc["selected_node_id"] = "c"
    assert import_pyloom(doc).selected == "c"


def test_parent_id_styles_follow_the_nesting() -> None:
    """Nodes may carry ``parent_id`` or ``parentId``; the nesting of ``children`` decides."""
    snake = {"root": {"id": "r", "text": "A", "children": [
        {"id": "c1", "parent_id": "r", "text": "B", "children": [
            {"id": "g", "parent_id": "c1", "text": "C"}]},
        {"id": "c2", "parent_id": "r", "text": "D"}]}}
    camel = json.loads(json.dumps(snake).replace('"parent_id"', '"parentId"'))
    t1, t2 = import_pyloom(snake), import_pyloom(camel)
    j1, j2 = session.tree_to_json(t1), session.tree_to_json(t2)
    for j in (j1, j2):  # each keeps its own spelling of the parent field under foreign
        for n in j["nodes"]:
            n.pop("foreign", None)
    assert (j1["nodes"], j1["edges"]) == (j2["nodes"], j2["edges"])
    assert t2.path("g") == ["r", "c1", "g"]
    assert t2.context_text("g") == "ABC"
    assert t2.children("r") == ["c1", "c2"]


def test_duplicate_and_missing_ids_get_fresh_ones() -> None:
    doc = {"id": "r", "text": "", "children": [
        {"id": "same", "text": "1"}, {"id": "same", "text": "2"}, {"id": "", "text": "3"},
        {"id": ["bad"], "text": "4"}]}
    tree = import_pyloom(doc)
    assert len(tree) == 5
    texts = [tree.node(k).text for k in tree.children("r")]
    assert texts == ["1", "2", "3", "4"]
    assert tree.children("r")[0] == "same"
    assert all(k.startswith("imported-") for k in tree.children("r")[1:])


def test_bookmark_field_created_and_missing_text() -> None:
    doc = {"id": "r", "children": [{"id": "a", "bookmark": True, "created": 5},
                                   {"id": "b", "tags": "not-a-list", "note": 3}]}
    tree = import_pyloom(doc)
    assert tree.node("r").text == ""
    assert tree.node("a").bookmarked and tree.node("a").created == 5.0
    assert tree.node("b").tags == [] and tree.node("b").note == ""
    assert not tree.node("b").bookmarked


def refused(path: Path, content: bytes) -> str:
    """Import ``content`` from ``path``: the one-line error it gets (the file is untouched)."""
    path.write_bytes(content)
    with pytest.raises(SessionError) as ei:
        load_pyloom(path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert path.read_bytes() == content
    return msg


@pytest.mark.parametrize(("content", "needle"), [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    (b"[1, 2]", "top level is not an object"),
    (b'{"foo": 1}', "no 'root'"),
    (b'{"root": {"text": "a", "children": [5]}}', "is not an object"),
    (b'{"root": {"id": "r", "text": "a", "children": {"x": 1}}}',
     "node 'r': children is not a list"),
    (b'{"root": {"id": "r", "text": 5}}', "node 'r': text is not a string"),
])
def test_malformed_input_is_one_line_session_error(tmp_path: Path, content: bytes,
                                                   needle: str) -> None:
    path = tmp_path / "loom.json"
    msg = refused(path, content)
    assert msg.startswith(f"{path}: ")
    assert needle in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SessionError) as ei:
        load_pyloom(tmp_path / "nope.json")
    assert str(ei.value) == f"{tmp_path / 'nope.json'}: no such file"


def test_import_pyloom_raises_value_error_for_non_trees() -> None:
    for bad in ([], "x", None, {"unrelated": True}):
        with pytest.raises(ValueError, match="not a loom tree"):
            import_pyloom(bad)


def _nested_chain(depth: int) -> bytes:
    """A pyloom save whose root has a single branch ``depth`` nodes deep (built without
    recursion, as the format nests every child inside its parent)."""
    opens = "".join(f'{{"id": "n{i}", "text": "w{i % 10}", "children": [' for i in range(depth))
    return ('{"root": ' + opens + '{"id": "leaf", "text": "!"}' + "]}" * depth
            + ', "selected_node_id": "leaf"}').encode()


def test_deep_branch_imports(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(_nested_chain(200))
    tree = load_pyloom(path)
    assert len(tree) == 201
    assert tree.selected == "leaf" and tree.depth("leaf") == 200
    assert tree.context_text("leaf") == "".join(f"w{i % 10}" for i in range(200)) + "!"


def test_chain_deeper_than_the_json_parser_imports(tmp_path: Path) -> None:
    """5,000 levels of nesting: json.loads raises RecursionError; the importer does not, and
    the interpreter's recursion limit is left alone."""
    import sys

    limit = sys.getrecursionlimit()
    path = tmp_path / "deeper.json"
    path.write_bytes(_nested_chain(5000))
    with pytest.raises(RecursionError):
        json.loads(path.read_bytes())
    tree = load_pyloom(path)
    assert sys.getrecursionlimit() == limit
    assert len(tree) == 5001 and tree.depth("leaf") == 5000 and tree.selected == "leaf"
    assert tree.context_text("leaf") == "".join(f"w{i % 10}" for i in range(5000)) + "!"
