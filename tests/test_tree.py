"""The rollout tree: reading, structural edits, undo/redo, and very deep chains."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from loomtui.core import session
from loomtui.core.errors import TreeError
from loomtui.core.node import Alternatives, Choices, Distribution, Node, Sampler
from loomtui.core.tree import Tree

# --------------------------------------------------------------------------- helpers


def tok_node(nid: str, pieces: list[str], *, ids: list[int] | None = None,
             lps: list[float | None] | None = None, alts: bool = True, created: float = 0.0,
             origin: str = "sampled", **kw: Any) -> Node:
    """A tokenised node whose tokens are ``pieces`` (ids, offsets, logprobs, alternatives)."""
    offs, pos = [], 0
    for p in pieces:
        offs.append(pos)
        pos += len(p)
    n = len(pieces)
    ids = ids if ids is not None else [100 + i for i in range(n)]
    alternatives = None
    if alts:
        alternatives = Alternatives.of(
            [(ids[i], pieces[i], -0.1 * (i + 1)), (900 + i, f"<{i}a>", -1.5 - i),
             (950 + i, f"<{i}b>", -2.5 - i)]
            for i in range(n))
    return Node(id=nid, text="".join(pieces), origin=origin, token_ids=ids, token_offsets=offs,
                token_logprobs=lps if lps is not None else [-0.1 * (i + 1) for i in range(n)],
                alternatives=alternatives, created=created, **kw)


def snapshot(tree: Tree) -> dict[str, Any]:
    """Everything about the tree an undo must restore: every field of every node (as saved),
    the structure, the root and the selection. Deep-copied, so later edits cannot alias it."""
    doc = orjson.loads(session.dumps(tree))
    del doc["graph"]["modified"]  # a timestamp of the last change, not state
    parents = {nid: tree.parent(nid) for nid in tree.subtree(tree.root_id)}
    return {
        "doc": doc,
        "parents": parents,
        "children": {nid: tree.children(nid) for nid in parents},
        "len": len(tree),
        "selected": tree.selected,
    }


def check_consistent(tree: Tree) -> None:
    """Internal invariants: the graph and the node table agree and form an arborescence."""
    import networkx as nx

    assert set(tree.graph.nodes) == {n.id for n in tree.nodes()}
    assert nx.is_arborescence(tree.graph)
    assert tree.parent(tree.root_id) is None
    assert tree.selected in tree


@pytest.fixture
def tree() -> Tree:
    """r: "Once upon" (prompt)
       ├─ a: " a time"        (2 tokens, lp -0.5 -1.0)      created 1
       │   └─ a1: " there"    (1 token,  lp -0.2)           created 3
       │       └─ a2: " was"  (1 token,  lp -0.3)           created 4
       ├─ b: " the end"       (2 tokens, lp -0.1 -0.1)      created 2
       └─ c: "!! typed"       (untokenised)                 created 5
    """
    root = tok_node("r", ["Once", " upon"], ids=[1, 2], lps=[None, -2.0], alts=False,
                    origin="prompt")
    t = Tree(root, model="m", sampler=Sampler(temperature=0.7), created=10.0)
    dist = Distribution(Choices([7, 8], [" and", "."], [-0.4, -1.4]), 1.23, 0.9, "m")
    t.add_child("r", tok_node("a", [" a", " time"], ids=[11, 12], lps=[-0.5, -1.0], created=1.0,
                              sampler=Sampler(temperature=0.9), seed=5, model="m"))
    t.add_child("r", tok_node("b", [" the", " end"], ids=[21, 22], lps=[-0.1, -0.1],
                              created=2.0))
    t.add_child("a", tok_node("a1", [" there"], ids=[13], lps=[-0.2], created=3.0))
    t.add_child("a1", tok_node("a2", [" was"], ids=[14], lps=[-0.3], created=4.0,
                               distribution=dist))
    t.add_child("r", Node("c", "!! typed", "typed", created=5.0))
    t.history.clear()
    return t


# --------------------------------------------------------------------------- reading


def test_add_child_links_node_and_is_one_undo_step(tree: Tree) -> None:
    n = tree.new_node(" more", "typed")
    assert n.id not in tree
    before = len(tree)
    assert tree.add_child("b", n) is n
    assert len(tree) == before + 1
    assert tree.parent(n.id) == "b"
    assert tree.children("b") == [n.id]
    assert tree.node(n.id) is n
    assert tree.can_undo and not tree.can_redo
    assert [p.label for p in tree.history.undo_stack] == ["add"]
    check_consistent(tree)


def test_add_child_refuses_duplicate_id_and_unknown_parent(tree: Tree) -> None:
    with pytest.raises(TreeError, match="'a1' already exists"):
        tree.add_child("b", Node("a1", "x", "typed"))
    with pytest.raises(TreeError, match="no node with id 'nope'"):
        tree.add_child("nope", tree.new_node("x", "typed"))
    assert not tree.can_undo
    assert tree.parent("a1") == "a"


def test_new_ids_are_fresh(tree: Tree) -> None:
    tree.add_child("r", Node("1", "taken", "typed", created=9.0))
    ids = {tree.new_id() for _ in range(200)}
    assert len(ids) == 200
    assert not ids & {n.id for n in tree.nodes()}


def test_unknown_node_is_a_tree_error(tree: Tree) -> None:
    for call in (lambda: tree.node("zz"), lambda: tree.path("zz"), lambda: tree.parent("zz"),
                 lambda: tree.children("zz"), lambda: tree.context_text("zz"),
                 lambda: tree.subtree("zz"), lambda: tree.select("zz")):
        with pytest.raises(TreeError, match="no node with id 'zz'"):
            call()


def test_path_context_and_depth(tree: Tree) -> None:
    assert tree.path("a2") == ["r", "a", "a1", "a2"]
    assert tree.path("r") == ["r"]
    assert tree.depth("a2") == 3
    assert tree.depth("r") == 0
    assert tree.context_text("a2") == "Once upon a time there was"
    assert tree.context_text("b") == "Once upon the end"
    assert tree.context_ids("a2") == [1, 2, 11, 12, 13, 14]
    assert tree.context_ids("r") == [1, 2]
    # one untokenised node on the path: no exact token ids for the context
    assert tree.context_ids("c") is None
    assert tree.context_text("c") == "Once upon!! typed"


def test_siblings_and_children_orders(tree: Tree) -> None:
    assert tree.children("r") == ["a", "b", "c"]
    assert tree.siblings("b") == ["a", "b", "c"]
    assert tree.siblings("r") == ["r"]
    assert tree.siblings("a1") == ["a1"]
    # b: -0.2, a: -1.5, c: unknown (last)
    assert tree.children("r", "probability") == ["b", "a", "c"]
    assert tree.siblings("a", "probability") == ["b", "a", "c"]
    assert tree.n_children("r") == 3
    assert sorted(tree.leaves()) == ["a2", "b", "c"]


def test_children_by_creation_not_insertion(tree: Tree) -> None:
    tree.add_child("r", Node("early", "x", "typed", created=0.5))
    assert tree.children("r") == ["early", "a", "b", "c"]


def test_cumulative_logprob(tree: Tree) -> None:
    assert tree.cumulative_logprob("a2") == pytest.approx(-0.5 - 1.0 - 0.2 - 0.3)
    assert tree.cumulative_logprob("b") == pytest.approx(-0.2)
    assert tree.cumulative_logprob("r") == 0.0
    # the prompt's first token has no log-probability
    assert tree.cumulative_logprob("a", include_root=True) is None
    # untokenised text on the path: unknown
    assert tree.cumulative_logprob("c") is None
    # an empty untokenised node adds nothing
    tree.add_child("a2", Node("e", "", "typed", created=6.0))
    tree.add_child("e", tok_node("f", [" x"], lps=[-1.0], created=7.0))
    assert tree.cumulative_logprob("f") == pytest.approx(-3.0)
    assert tree.node("a").logprob() == pytest.approx(-1.5)
    assert tree.node("c").logprob() is None


def test_subtree_and_preorder(tree: Tree) -> None:
    assert tree.subtree("r") == ["r", "a", "a1", "a2", "b", "c"]
    assert tree.subtree("a1") == ["a1", "a2"]
    assert list(tree.iter_preorder()) == [
        ("r", 0), ("a", 1), ("a1", 2), ("a2", 3), ("b", 1), ("c", 1)]


def test_bookmark_note_and_tags(tree: Tree) -> None:
    tree.set_bookmark("a2", True)
    tree.set_bookmark("b", True)
    assert tree.node("a2").bookmarked
    assert tree.bookmarks() == ["a2", "b"]
    tree.set_bookmark("a2", False)
    assert tree.bookmarks() == ["b"]
    tree.set_note("a", "a good one")
    assert tree.node("a").note == "a good one"
    tags = ["x", "y"]
    tree.set_tags("a", tags)
    tags.append("leak")
    assert tree.node("a").tags == ["x", "y"]
    assert [p.label for p in tree.history.undo_stack] == [
        "bookmark", "bookmark", "unbookmark", "note", "tags"]
    with pytest.raises(TreeError):
        tree.set_note("zz", "x")


def test_update_is_not_an_undo_step(tree: Tree) -> None:
    rev = tree.revision
    tree.update("a", seed=99)
    assert tree.node("a").seed == 99
    assert tree.revision > rev
    assert not tree.can_undo


def test_select(tree: Tree) -> None:
    tree.select("a1")
    assert tree.selected == "a1"
    with pytest.raises(TreeError):
        tree.select("zz")
    assert tree.selected == "a1"


# --------------------------------------------------------------------------- split


def test_split_at_token(tree: Tree) -> None:
    parent = tok_node("s", [" one", " two", " three", " four"], ids=[31, 32, 33, 34],
                      lps=[-0.1, -0.2, -0.3, -0.4], created=6.0,
                      sampler=Sampler(top_k=5), seed=42, model="m", note="n",
                      distribution=Distribution(Choices([1], ["!"], [-0.01]), 0.5, 0.99, "m"))
    orig_alts = parent.alternatives.slice(0)
    orig_dist = parent.distribution
    tree.add_child("b", parent)
    tree.add_child("s", Node("k1", "K1", "typed", created=7.0))
    tree.add_child("s", Node("k2", "K2", "typed", created=8.0))
    ctx_k2 = tree.context_text("k2")

    tail = tree.split("s", at_token=2)
    head = tree.node("s")

    assert head.text == " one two"
    assert tail.text == " three four"
    assert head.token_ids == [31, 32]
    assert tail.token_ids == [33, 34]
    assert head.token_offsets == [0, 4]
    assert tail.token_offsets == [0, 6]
    assert tail.pieces() == [" three", " four"]
    assert head.token_logprobs == [-0.1, -0.2]
    assert tail.token_logprobs == [-0.3, -0.4]
    assert head.alternatives == orig_alts.slice(0, 2)
    assert tail.alternatives == orig_alts.slice(2)
    # the head now ends before token 2: its next-token distribution is token 2's alternatives
    assert head.distribution is not None
    assert head.distribution.top == orig_alts[2]
    assert head.distribution.entropy is None
    expected_mass = sum(math.exp(lp) for lp in orig_alts[2].logprobs)
    assert head.distribution.mass == pytest.approx(expected_mass)
    assert head.distribution.model == "m"
    # the tail keeps what followed the whole node
    assert tail.distribution is orig_dist
    assert (tail.origin, tail.sampler, tail.seed, tail.model, tail.created) == (
        "sampled", Sampler(top_k=5), 42, "m", 6.0)
    assert head.note == "n"  # annotations stay on the head
    # structure: s -> tail -> (k1, k2)
    assert tree.children("s") == [tail.id]
    assert tree.children(tail.id) == ["k1", "k2"]
    assert tree.parent("k1") == tail.id
    assert tree.context_text("k2") == ctx_k2
    assert tree.context_ids(tail.id) == [1, 2, 21, 22, 31, 32, 33, 34]
    assert tree.cumulative_logprob(tail.id) == pytest.approx(-0.2 - 1.0)
    assert [p.label for p in tree.history.undo_stack][-1] == "split"
    check_consistent(tree)


def test_split_at_token_without_alternatives_has_no_head_distribution(tree: Tree) -> None:
    tail = tree.split("r", at_token=1)
    assert tree.node("r").text == "Once"
    assert tree.node("r").distribution is None
    assert tail.text == " upon"
    assert tail.token_logprobs == [-2.0]
    assert tail.alternatives is None
    assert tail.origin == "prompt"
    assert tree.children(tail.id) == ["a", "b", "c"]
    assert tree.context_text("a2") == "Once upon a time there was"


@pytest.mark.parametrize("at", [0, 2, -1, 5])
def test_split_at_token_out_of_range(tree: Tree, at: int) -> None:
    with pytest.raises(TreeError, match=rf"split point {at} is outside 1\.\.1 for node a"):
        tree.split("a", at_token=at)
    assert not tree.can_undo


def test_split_errors(tree: Tree) -> None:
    with pytest.raises(TreeError, match="no tokens to split at; split at a character"):
        tree.split("c", at_token=1)
    with pytest.raises(TreeError, match="tokenised; split it at a token index"):
        tree.split("a", at_char=2)
    with pytest.raises(TreeError, match="needs a token index or a character offset"):
        tree.split("a")
    with pytest.raises(TreeError, match="no node"):
        tree.split("zz", at_token=1)
    for at in (0, len("!! typed"), 100):
        with pytest.raises(TreeError, match=rf"split point {at} is outside 1\.\.7"):
            tree.split("c", at_char=at)
    assert not tree.can_undo


def test_split_at_char_for_untokenised_node(tree: Tree) -> None:
    tree.update("c", distribution=Distribution(Choices([1], ["x"], [-1.0]), 2.0, 0.4, "m"),
                note="kept", bookmarked=True)
    tree.add_child("c", Node("c1", " tail kid", "typed", created=9.0))
    tail = tree.split("c", at_char=2)
    head = tree.node("c")
    assert head.text == "!!"
    assert tail.text == " typed"
    assert head.distribution is None  # unknown after a shorter context
    assert tail.distribution is not None and tail.distribution.entropy == 2.0
    assert head.token_ids is None and tail.token_ids is None
    assert tail.origin == "typed"
    assert head.note == "kept" and head.bookmarked
    assert tree.children("c") == [tail.id]
    assert tree.children(tail.id) == ["c1"]
    assert tree.context_text("c1") == "Once upon!! typed tail kid"


# --------------------------------------------------------------------------- merge


def test_merge_chain_of_only_children(tree: Tree) -> None:
    dist = tree.node("a2").distribution
    tree.set_bookmark("a1", True)
    tree.select("a2")
    merged = tree.merge("a")
    assert merged is tree.node("a")
    assert "a1" not in tree and "a2" not in tree
    assert merged.text == " a time there was"
    assert merged.token_ids == [11, 12, 13, 14]
    assert merged.token_offsets == [0, 2, 7, 13]
    assert merged.pieces() == [" a", " time", " there", " was"]
    assert merged.token_logprobs == [-0.5, -1.0, -0.2, -0.3]
    assert merged.alternatives is not None and len(merged.alternatives) == 4
    assert merged.alternatives.ids == [[11, 900, 950], [12, 901, 951], [13, 900, 950],
                                       [14, 900, 950]]
    assert merged.distribution is dist
    assert merged.bookmarked  # a1 was bookmarked
    assert tree.selected == "a"  # the selection was inside the merged chain
    assert tree.children("a") == []
    assert tree.context_text("a") == "Once upon a time there was"
    assert tree.cumulative_logprob("a") == pytest.approx(-2.0)
    assert [p.label for p in tree.history.undo_stack][-1] == "merge"
    check_consistent(tree)


def test_merge_moves_the_last_nodes_children(tree: Tree) -> None:
    tree.add_child("a2", Node("x", " X", "typed", created=6.0))
    tree.add_child("a2", Node("y", " Y", "typed", created=7.0))
    tree.merge("a")  # a, a1, a2 (a2 has two children: the chain stops there)
    assert tree.children("a") == ["x", "y"]
    assert tree.context_text("y") == "Once upon a time there was Y"


def test_merge_partial_chain_and_mixed_tokenisation(tree: Tree) -> None:
    tree.add_child("b", Node("b1", " typed", "typed", created=6.0))
    merged = tree.merge("b")
    assert merged.text == " the end typed"
    # one node had no tokens: the merged text has none either
    assert merged.token_ids is None
    assert merged.token_offsets is None
    assert merged.token_logprobs is None
    assert merged.alternatives is None


def test_merge_fills_missing_alternatives_and_logprobs() -> None:
    t = Tree(Node("r", "", "prompt"))
    t.add_child("r", tok_node("p", ["A", "B"], alts=True, created=1.0))
    t.add_child("p", Node("q", "CD", "picked", token_ids=[5, 6], token_offsets=[0, 1],
                          created=2.0))
    m = t.merge("p")
    assert m.token_ids == [100, 101, 5, 6]
    assert m.token_offsets == [0, 1, 2, 3]
    assert m.token_logprobs == [-0.1, -0.2, None, None]
    assert m.logprob() is None
    assert m.alternatives is not None
    assert m.alternatives.ids[2:] == [[], []]
    assert m.alternatives.ids[0] == [100, 900, 950]


@pytest.mark.parametrize("nid", ["r", "b", "a2"])
def test_merge_refuses_when_not_a_chain(tree: Tree, nid: str) -> None:
    before = snapshot(tree)
    with pytest.raises(TreeError, match=rf"node {nid} does not have exactly one child"):
        tree.merge(nid)
    assert snapshot(tree) == before
    assert not tree.can_undo


# --------------------------------------------------------------------------- edit / delete


def test_edit_forks_and_keeps_the_original(tree: Tree) -> None:
    original = session.node_to_json(tree.node("a1"))
    kids_before = tree.children("a1")
    fork = tree.edit("a1", " here")
    assert fork.origin == "edited"
    assert fork.text == " here"
    assert fork.id != "a1"
    assert "a1" in fork.note
    assert tree.parent(fork.id) == "a"
    assert tree.children("a")[0] == "a1" and fork.id in tree.children("a")
    assert tree.children(fork.id) == []
    assert tree.selected == fork.id
    assert session.node_to_json(tree.node("a1")) == original
    assert tree.children("a1") == kids_before
    assert tree.context_text(fork.id) == "Once upon a time here"
    assert fork.token_ids is None


def test_edit_refuses_root_and_unknown(tree: Tree) -> None:
    with pytest.raises(TreeError, match="root"):
        tree.edit("r", "new prompt")
    with pytest.raises(TreeError, match="no node"):
        tree.edit("zz", "x")
    assert not tree.can_undo


def test_delete_subtree(tree: Tree) -> None:
    tree.select("a2")
    gone = tree.delete("a")
    assert gone == ["a", "a1", "a2"]
    for nid in gone:
        assert nid not in tree
    assert len(tree) == 3
    assert tree.children("r") == ["b", "c"]
    assert tree.selected == "r"  # was inside the deleted subtree
    check_consistent(tree)


def test_delete_keeps_selection_outside(tree: Tree) -> None:
    tree.select("b")
    assert tree.delete("a1") == ["a1", "a2"]
    assert tree.selected == "b"
    assert tree.children("a") == []


def test_delete_refuses_root_and_unknown(tree: Tree) -> None:
    with pytest.raises(TreeError, match="root cannot be deleted"):
        tree.delete("r")
    with pytest.raises(TreeError, match="no node"):
        tree.delete("zz")
    assert len(tree) == 6
    assert not tree.can_undo


# --------------------------------------------------------------------------- undo / redo


def _add(t: Tree) -> None:
    t.add_child("a1", t.new_node(" new", "typed"))


def _add_and_select(t: Tree) -> None:
    n = t.new_node(" sel", "typed")
    with t.transaction("add+select"):
        t.add_child("a2", n)
        t.select(n.id)


EDITS: dict[str, Callable[[Tree], object]] = {
    "add": _add,
    "add+select": _add_and_select,
    "split-token": lambda t: t.split("a", at_token=1),
    "split-token-root": lambda t: t.split("r", at_token=1),
    "split-char": lambda t: t.split("c", at_char=3),
    "merge": lambda t: t.merge("a"),
    "merge-from-middle": lambda t: t.merge("a1"),
    "edit": lambda t: t.edit("a1", " edited"),
    "delete": lambda t: t.delete("a"),
    "delete-leaf": lambda t: t.delete("b"),
    "bookmark": lambda t: t.set_bookmark("b", True),
    "note": lambda t: t.set_note("a", "note"),
    "tags": lambda t: t.set_tags("a", ["t1", "t2"]),
}


@pytest.mark.parametrize("name", list(EDITS))
@pytest.mark.parametrize("selected", ["r", "a2"])
def test_undo_redo_restore_exact_state(tree: Tree, name: str, selected: str) -> None:
    tree.select(selected)
    before = snapshot(tree)
    EDITS[name](tree)
    after = snapshot(tree)
    assert after != before
    check_consistent(tree)

    assert tree.can_undo and not tree.can_redo
    patch = tree.undo()
    assert patch is not None
    assert snapshot(tree) == before
    assert not tree.can_undo and tree.can_redo
    check_consistent(tree)

    assert tree.redo() is patch
    assert snapshot(tree) == after
    check_consistent(tree)

    tree.undo()
    assert snapshot(tree) == before
    # a second round trip still works (ops are replayable)
    tree.redo()
    assert snapshot(tree) == after


def test_unbookmark_undo(tree: Tree) -> None:
    tree.set_bookmark("b", True)
    tree.history.clear()
    before = snapshot(tree)
    tree.set_bookmark("b", False)
    assert not tree.node("b").bookmarked
    tree.undo()
    assert snapshot(tree) == before
    assert tree.node("b").bookmarked


def test_undo_redo_sequence_of_every_edit(tree: Tree) -> None:
    states = [snapshot(tree)]
    tree.split("a", at_token=1)
    states.append(snapshot(tree))
    tree.edit("a2", " is")
    states.append(snapshot(tree))
    tree.set_bookmark("b", True)
    states.append(snapshot(tree))
    tree.merge("a")  # the chain is a, tail, a1 (two children now): stops at a1
    states.append(snapshot(tree))
    tree.split("c", at_char=1)
    states.append(snapshot(tree))
    tree.delete("b")
    states.append(snapshot(tree))
    tree.set_note("r", "prompt note")
    states.append(snapshot(tree))
    for expected in reversed(states[:-1]):
        tree.undo()
        assert snapshot(tree) == expected
    assert tree.undo() is None
    for expected in states[1:]:
        tree.redo()
        assert snapshot(tree) == expected
    assert tree.redo() is None


def test_new_edit_clears_redo(tree: Tree) -> None:
    tree.set_note("a", "one")
    tree.set_note("a", "two")
    tree.undo()
    assert tree.can_redo
    tree.set_bookmark("b", True)
    assert not tree.can_redo
    assert tree.redo() is None
    assert tree.node("a").note == "one"


def test_failed_edit_keeps_redo(tree: Tree) -> None:
    tree.set_note("a", "one")
    tree.undo()
    with pytest.raises(TreeError):
        tree.merge("r")
    assert tree.can_redo


def test_undo_and_redo_on_empty_history(tree: Tree) -> None:
    before = snapshot(tree)
    assert tree.undo() is None
    assert tree.redo() is None
    assert snapshot(tree) == before


def test_transaction_groups_edits_into_one_undo_step(tree: Tree) -> None:
    before = snapshot(tree)
    with tree.transaction("batch") as patch:
        n1 = tree.add_child("b", tree.new_node(" 1", "sampled"))
        n2 = tree.add_child(n1.id, tree.new_node(" 2", "sampled"))
        tree.set_bookmark(n2.id, True)
        with tree.transaction("inner"):  # nested: still the same step
            tree.set_note("a", "batched")
            tree.split("a", at_token=1)
        tree.select(n2.id)
    after = snapshot(tree)
    assert patch.label == "batch"
    assert len(tree.history.undo_stack) == 1
    assert patch.selected_before == "r" and patch.selected_after == n2.id
    assert {"b", n1.id, n2.id, "a"} <= patch.touched()
    tree.undo()
    assert snapshot(tree) == before
    assert not tree.can_undo
    tree.redo()
    assert snapshot(tree) == after
    assert tree.selected == n2.id


def test_empty_transaction_records_nothing(tree: Tree) -> None:
    tree.set_note("a", "x")
    tree.undo()
    with tree.transaction("nothing"):
        tree.select("b")
    assert not tree.can_undo
    assert tree.can_redo  # an empty step does not clear redo


def test_transaction_interrupted_by_error_is_rolled_back(tree: Tree) -> None:
    before = snapshot(tree)
    depth = len(tree.history.undo_stack)
    with pytest.raises(TreeError), tree.transaction("partial"):
        tree.set_note("a", "changed")
        tree.delete("r")
    assert snapshot(tree) == before
    assert len(tree.history.undo_stack) == depth


def test_history_is_bounded() -> None:
    t = Tree(Node("r", "", "prompt"))
    t.history.limit = 5
    for i in range(8):
        t.set_note("r", str(i))
    assert len(t.history.undo_stack) == 5
    while t.undo():
        pass
    assert t.node("r").note == "2"


# --------------------------------------------------------------------------- deep chains

DEEP = 50_000


@pytest.fixture(scope="module")
def deep_doc() -> bytes:
    """A saved 50,000-deep chain (node i: text "w{i%10}", one token, logprob -0.01)."""
    nodes = [Node("n0", "P", "prompt", token_ids=[0], token_offsets=[0], token_logprobs=[None])]
    edges = []
    for i in range(1, DEEP):
        nodes.append(Node(f"n{i}", f"w{i % 10}", "sampled", token_ids=[i], token_offsets=[0],
                          token_logprobs=[-0.01], created=float(i)))
        edges.append((f"n{i - 1}", f"n{i}"))
    t = Tree.from_parts(nodes, edges, "n0", model="m", created=1.0)
    t.selected = f"n{DEEP - 1}"
    return session.dumps(t)


@pytest.fixture
def deep(deep_doc: bytes) -> Tree:
    return session.loads(deep_doc)


def test_deep_chain_reading(deep: Tree) -> None:
    leaf = f"n{DEEP - 1}"
    path = deep.path(leaf)
    assert len(path) == DEEP and path[0] == "n0" and path[-1] == leaf
    assert deep.depth(leaf) == DEEP - 1
    ctx = deep.context_text(leaf)
    assert ctx.startswith("Pw1w2") and len(ctx) == 1 + 2 * (DEEP - 1)
    assert deep.context_ids(leaf) == list(range(DEEP))
    assert deep.cumulative_logprob(leaf) == pytest.approx(-0.01 * (DEEP - 1))
    sub = deep.subtree("n0")
    assert sub == [f"n{i}" for i in range(DEEP)]
    assert list(deep.iter_preorder()) == [(f"n{i}", i) for i in range(DEEP)]
    assert deep.subtree("n49990") == [f"n{i}" for i in range(49990, DEEP)]


def test_deep_chain_delete_and_undo(deep: Tree) -> None:
    before = snapshot(deep)
    gone = deep.delete("n10")
    assert len(gone) == DEEP - 10
    assert len(deep) == 10
    assert deep.selected == "n9"
    check_consistent(deep)
    deep.undo()
    assert snapshot(deep) == before
    deep.redo()
    assert len(deep) == 10


def test_deep_chain_merge_and_undo(deep: Tree) -> None:
    before = snapshot(deep)
    merged = deep.merge("n1")
    assert len(deep) == 2
    assert merged.n_tokens == DEEP - 1
    assert merged.token_ids == list(range(1, DEEP))
    assert merged.token_offsets == list(range(0, 2 * (DEEP - 1), 2))
    assert deep.selected == "n1"
    assert deep.cumulative_logprob("n1") == pytest.approx(-0.01 * (DEEP - 1))
    deep.undo()
    assert snapshot(deep) == before
    check_consistent(deep)


def test_deep_chain_edit_and_session_round_trip(deep: Tree, tmp_path) -> None:
    deep.edit("n40000", "fork")
    path = tmp_path / "deep.json"
    session.save(deep, path)
    loaded = session.load(path)
    assert session.tree_to_json(loaded) == session.tree_to_json(deep)
    assert loaded.depth(loaded.selected) == 40000
    assert loaded.context_text(f"n{DEEP - 1}") == deep.context_text(f"n{DEEP - 1}")


def test_merge_across_models_drops_token_ids_for_retokenising() -> None:
    root = Node(id="r", text="A", origin="prompt", token_ids=[1], token_offsets=[0],
                model="m1")
    tree = Tree(root)
    tree.add_child("r", Node(id="b", text=" b", origin="sampled", token_ids=[2],
                             token_offsets=[0], model="m1", created=1.0))
    tree.add_child("b", Node(id="c", text=" c", origin="sampled", token_ids=[3],
                             token_offsets=[0], model="m2", created=2.0))
    merged = tree.merge("b")
    assert merged.text == " b c" and merged.token_ids is None
    tree.undo()
    assert tree.node("b").token_ids == [2] and tree.node("c").token_ids == [3]


def test_update_if_applies_only_to_an_unchanged_node():
    tree = Tree(Node(id="r", text="root", origin="prompt"))
    kid = tree.add_child("r", tree.new_node("abc", "typed", token_ids=[1, 2, 3],
                                              token_offsets=[0, 1, 2]))
    assert tree.update_if(kid.id, {"text": "abc", "token_ids": [1, 2, 3]}, token_logprobs=[0.0])
    assert tree.node(kid.id).token_logprobs == [0.0]
    tree.split(kid.id, at_token=1)
    assert not tree.update_if(kid.id, {"text": "abc", "token_ids": [1, 2, 3]},
                              token_logprobs=[-1.0, -1.0, -1.0])
    assert tree.node(kid.id).token_logprobs != [-1.0, -1.0, -1.0]
    assert not tree.update_if("missing", {}, note="x")


def test_a_transaction_holds_the_lock_against_worker_writes():
    """A worker's update_if waits until an edit is complete (never sees a half-done split)."""
    import threading

    tree = Tree(Node(id="r", text="root", origin="prompt"))
    kid = tree.add_child("r", tree.new_node("abc", "typed", token_ids=[1, 2, 3],
                                            token_offsets=[0, 1, 2]))
    seen: list[bool] = []
    worker = threading.Thread(target=lambda: seen.append(
        tree.update_if(kid.id, {"token_ids": [1, 2, 3]}, token_logprobs=[0.0, 0.0, 0.0])))
    with tree.transaction("split"):
        worker.start()
        worker.join(0.2)
        assert worker.is_alive()  # blocked while the edit is in progress
        tree.split(kid.id, at_token=1)
    worker.join(5)
    assert seen == [False]  # it saw the split node, not the one it read
    assert tree.node(kid.id).token_logprobs is None


def test_an_edit_that_fails_half_way_is_rolled_back():
    tree = Tree(Node(id="r", text="root", origin="prompt"))
    kid = tree.add_child("r", tree.new_node("abc", "typed", token_ids=[1, 2, 3],
                                            token_offsets=[0, 1, 2]))
    tree.select(kid.id)
    depth = len(tree.history.undo_stack)
    with pytest.raises(RuntimeError), tree.transaction("branch"):
        tail = tree.split(kid.id, at_token=1)
        tree.select(tail.id)
        raise RuntimeError("the rest of the edit failed")
    assert len(tree) == 2 and tree.node(kid.id).text == "abc"
    assert tree.node(kid.id).token_ids == [1, 2, 3] and tree.selected == kid.id
    assert len(tree.history.undo_stack) == depth and not tree.in_transaction


def test_undo_restores_the_model_of_token_ids_retokenised_meanwhile():
    """A merge of nodes from two tokenizers drops the token ids; if a model then tokenises
    the node for itself, undoing the merge must bring back the old ids *and* their model."""
    tree = Tree(Node(id="r", text="root", origin="prompt"))
    a = tree.add_child("r", tree.new_node(" there was", "imported", token_ids=[11, 22, 33],
                                          token_offsets=[0, 6, 7], model="other"))
    tree.add_child(a.id, tree.new_node(" a fox", "typed", token_ids=[5, 6],
                                       token_offsets=[0, 2], model="mine"))
    tree.merge(a.id)
    assert tree.node(a.id).token_ids is None
    assert tree.update_if(a.id, {"token_ids": None}, token_ids=[7, 8, 9, 10], model="mine")
    tree.undo()
    node = tree.node(a.id)
    assert (node.token_ids, node.model) == ([11, 22, 33], "other")


def test_edit_prompt_in_place_is_one_undo_step_and_clears_stale_scores():
    from loomtui.ui.demo import demo_tree

    tree = demo_tree()
    kids = tree.subtree(tree.root_id)[1:]
    assert all(tree.node(k).distribution is not None for k in kids)
    scored = [k for k in kids if tree.node(k).token_logprobs is not None]
    tree.edit_prompt("JULIET:\nO Romeo")
    root = tree.root
    assert root.text == "JULIET:\nO Romeo" and root.token_ids is None
    assert root.distribution is None and root.token_logprobs is None
    assert all(tree.node(k).distribution is None and tree.node(k).token_logprobs is None
               for k in kids)  # recomputed when a model next looks at them
    assert len(tree.history.undo_stack) == 1
    tree.undo()
    assert tree.root.text.startswith("ROMEO") and tree.root.token_ids is not None
    assert all(tree.node(k).distribution is not None for k in kids)
    assert all(tree.node(k).token_logprobs is not None for k in scored)
    with pytest.raises(TreeError, match="the prompt is empty"):
        tree.edit_prompt("")
