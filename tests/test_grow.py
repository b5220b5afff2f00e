"""The two-phase growth pipeline on the real bundled model: compute, then attach and adopt."""

from __future__ import annotations

import pytest
import torch

from loomtui.backends import load_predictor
from loomtui.core import grow
from loomtui.core.errors import TreeError
from loomtui.core.node import Alternatives, Choices, Distribution, Node, Sampler
from loomtui.core.predictor import CachingPredictor, Predictor
from loomtui.core.tree import Tree

PROMPT = "KING HENRY. Now, lords, "


@pytest.fixture(scope="module")
def pred():
    torch.set_num_threads(1)
    return load_predictor("bard")


@pytest.fixture()
def tree(pred) -> Tree:
    return grow.new_tree(pred, PROMPT)


def test_predictor_protocols(pred) -> None:
    assert isinstance(pred, Predictor)
    assert isinstance(pred, CachingPredictor)


def test_phase_one_changes_no_structure(tree: Tree, pred) -> None:
    before = (len(tree), tree.revision, len(tree.history.undo_stack))
    growth = grow.sample(tree, pred, tree.root_id, Sampler(n=3, max_tokens=5), seed=4)
    typed = grow.score_text(tree, pred, tree.root_id, " my liege")
    picked = grow.score_tokens(tree, pred, tree.root_id,
                               [grow.choose_token(tree, pred, tree.root_id, rank=2)])
    assert (len(tree), len(tree.history.undo_stack)) == before[::2]
    assert len(growth.segments) == 3 and [s.seed for s in growth.segments] == [4, 5, 6]
    assert typed.origin == "typed" and picked.origin == "picked"
    assert growth.model == pred.model_id and growth.stamp.valid(tree)


def test_attach_is_one_undo_step_and_adopt_caches(tree: Tree, pred) -> None:
    growth = grow.sample(tree, pred, tree.root_id, Sampler(n=4, max_tokens=6), seed=1)
    kids = grow.attach(tree, growth)
    assert [tree.parent(k.id) for k in kids] == [tree.root_id] * 4
    assert all(k.origin == "sampled" and k.sampler == growth.sampler for k in kids)
    grow.adopt(tree, pred, kids, growth)
    assert all(k.id in pred.store for k in kids)
    assert tree.history.undo_stack[-1].label == "expand"
    tree.undo()
    assert len(tree) == 1


def test_attach_refuses_a_parent_changed_meanwhile(tree: Tree, pred) -> None:
    child = grow.type_text(tree, pred, tree.root_id, " the day is ours")
    growth = grow.sample(tree, pred, child.id, Sampler(n=2, max_tokens=4), seed=1)
    tree.split(child.id, at_token=2)  # the user split it while the model ran
    with pytest.raises(grow.StaleError, match="changed while the model ran"):
        grow.attach(tree, growth)
    growth = grow.score_text(tree, pred, child.id, " and")
    tree.delete(child.id)
    with pytest.raises(grow.StaleError):
        grow.attach(tree, growth)


def test_attach_refuses_results_for_another_tree(pred) -> None:
    a, b = grow.new_tree(pred, PROMPT), grow.new_tree(pred, PROMPT)
    growth = grow.score_text(a, pred, a.root_id, " yes")
    with pytest.raises(grow.StaleError):
        grow.attach(b, growth)


def test_pick_and_type_select_the_new_child(tree: Tree, pred) -> None:
    picked = grow.pick(tree, pred, tree.root_id, rank=1)
    assert tree.selected == picked.id and picked.origin == "picked"
    assert picked.distribution is not None and picked.distribution.model == pred.model_id
    typed = grow.type_text(tree, pred, picked.id, " good")
    assert tree.selected == typed.id and typed.token_logprobs and None not in typed.token_logprobs


def test_choose_token_checks_its_input(tree: Tree, pred) -> None:
    with pytest.raises(TreeError, match="rank must be 1 or more"):
        grow.choose_token(tree, pred, tree.root_id, rank=0)
    with pytest.raises(TreeError, match="outside bard's vocabulary"):
        grow.choose_token(tree, pred, tree.root_id, token_id=pred.vocab_size)
    with pytest.raises(TreeError, match="is not one token"):
        grow.choose_token(tree, pred, tree.root_id, token_text=" my good lord")
    with pytest.raises(TreeError, match="pick needs"):
        grow.choose_token(tree, pred, tree.root_id)


def test_rank_uses_the_predictors_own_distribution(pred) -> None:
    """A stored distribution made by another model is not picked from by rank."""
    tree = grow.new_tree(pred, PROMPT)
    theirs = Distribution(Choices.of([(7, "zz", -0.1)]), 1.0, 0.9, "other-model")
    tree.update(tree.root_id, distribution=theirs)
    tid = grow.choose_token(tree, pred, tree.root_id, rank=1)
    ours = pred.distribution(tree, tree.root_id, 1)
    assert tid == ours.top.ids[0]
    grow.ensure_distribution(tree, pred, tree.root_id)
    root = tree.root
    assert root.distribution.model == pred.model_id
    assert root.scores["other-model"].distribution == theirs  # kept, not lost


def test_seed_limits(tree: Tree, pred) -> None:
    with pytest.raises(TreeError, match="seed must be in"):
        grow.sample(tree, pred, tree.root_id, Sampler(n=2, max_tokens=2), seed=2**63 - 1)
    with pytest.raises(ValueError, match="n must be an integer in"):
        grow.sample(tree, pred, tree.root_id, Sampler(n=100_000_000, max_tokens=2), seed=1)


def test_model_may_not_run_inside_a_transaction(tree: Tree, pred) -> None:
    with tree.transaction("x"), pytest.raises(TreeError, match="inside a tree transaction"):
        grow.sample(tree, pred, tree.root_id, Sampler(n=1, max_tokens=2), seed=1)


def test_undo_group_spans_model_calls(tree: Tree, pred) -> None:
    with tree.undo_group("autoloom"):
        a = grow.expand(tree, pred, tree.root_id, Sampler(n=2, max_tokens=3), seed=1)
        grow.expand(tree, pred, a[0].id, Sampler(n=2, max_tokens=3), seed=3)
        with pytest.raises(TreeError, match="while 'autoloom' is running"):
            tree.undo()
    assert len(tree) == 5 and len(tree.history.undo_stack) == 1
    tree.undo()
    assert len(tree) == 1
    tree.redo()
    assert len(tree) == 5


def test_undo_group_keeps_what_was_done_before_an_error(tree: Tree, pred) -> None:
    with pytest.raises(RuntimeError), tree.undo_group("run"):
        grow.expand(tree, pred, tree.root_id, Sampler(n=2, max_tokens=3), seed=1)
        raise RuntimeError("cancelled")
    assert len(tree) == 3
    tree.undo()
    assert len(tree) == 1


# --------------------------------------------------------------------------- no model
def _with_alternatives() -> Tree:
    root = Node("0", "Hello", "prompt")
    tree = Tree(root)
    alts = Alternatives.of([[(1, " world", -0.5), (2, " there", -1.5)],
                            [(3, "!", -0.2), (4, ".", -1.9)]])
    child = tree.new_node(" world!", "sampled", token_ids=[1, 3], token_offsets=[0, 6],
                          token_logprobs=[-0.5, -0.2], alternatives=alts, model="m")
    tree.add_child("0", child)
    tree.update("0", distribution=Distribution(Choices.of([(1, " world", -0.5),
                                                           (2, " there", -1.5)]), 1.2, 0.83,
                                               "m"))
    tree.history.clear()
    return tree


def test_branch_at_splits_and_adds_the_alternative_as_one_step() -> None:
    tree = _with_alternatives()
    child = tree.children("0")[0]
    new = grow.branch_at(tree, child, 1, 2)
    assert tree.node(child).text == " world"
    assert new.text == "." and new.origin == "picked" and tree.parent(new.id) == child
    assert new.token_logprobs == [-1.9] and tree.selected == new.id
    assert len(tree.history.undo_stack) == 1
    tree.undo()
    assert tree.node(child).text == " world!" and len(tree) == 2


def test_branch_at_the_first_token_adds_a_sibling() -> None:
    tree = _with_alternatives()
    child = tree.children("0")[0]
    new = grow.branch_at(tree, child, 0, 2)
    assert tree.parent(new.id) == "0" and new.text == " there"


def test_branch_at_refuses_bad_positions() -> None:
    tree = _with_alternatives()
    child = tree.children("0")[0]
    with pytest.raises(TreeError, match="already at that position"):
        grow.branch_at(tree, child, 1, 1)
    with pytest.raises(TreeError, match=r"rank must be in 1\.\.2"):
        grow.branch_at(tree, child, 1, 3)
    with pytest.raises(TreeError, match=r"token index must be in 0\.\.1"):
        grow.branch_at(tree, child, 5, 1)
    with pytest.raises(TreeError, match="no stored alternatives"):
        grow.branch_at(tree, "0", 0, 1)


def test_pick_stored_needs_no_model() -> None:
    tree = _with_alternatives()
    new = grow.pick_stored(tree, "0", 2)
    assert (new.text, new.token_ids, new.token_logprobs, new.model) == (
        " there", [2], [-1.5], "m")
    assert tree.selected == new.id
    with pytest.raises(TreeError, match=r"rank must be in 1\.\.2"):
        grow.pick_stored(tree, "0", 3)
    with pytest.raises(TreeError, match="no stored distribution"):
        grow.pick_stored(tree, new.id, 1)


def test_partial_distribution_is_not_recomputed_for_its_model() -> None:
    d = Distribution.from_choices(Choices.of([(None, " a", -0.7), (5, " b", -1.2)]), "eng")
    assert d.partial and d.entropy is None and d.complete_for("eng")
    assert not d.complete_for("other")


def test_bytes_of_split_characters_join_in_the_branch_text() -> None:
    """Two byte-level tokens that make one character, picked one at a time."""
    raw = "ح".encode()
    tree = Tree(Node("0", "x", "prompt"))
    a = tree.add_child("0", tree.new_node("\ufffd", "picked", token_ids=[1], token_offsets=[0],
                                          token_bytes=[raw[:1]]))
    b = tree.add_child(a.id, tree.new_node("\ufffd", "picked", token_ids=[2],
                                           token_offsets=[0], token_bytes=[raw[1:]]))
    assert tree.context_text(b.id) == "xح"
    merged = tree.merge(a.id)
    assert merged.token_bytes == [raw[:1], raw[1:]] and tree.context_text(a.id) == "xح"
    tail = tree.split(a.id, at_token=1)
    assert tree.node(a.id).token_bytes == [raw[:1]] and tail.token_bytes == [raw[1:]]
    assert tree.context_text(tail.id) == "xح"


def test_edit_prompt_in_place_marks_every_score_stale(pred) -> None:
    tree = grow.new_tree(pred, PROMPT)
    kids = grow.expand(tree, pred, tree.root_id, Sampler(n=2, max_tokens=4), seed=2)
    tree.edit_prompt("QUEEN. ")
    root = tree.root
    assert root.text == "QUEEN. " and root.token_ids is None and root.distribution is None
    assert all(tree.node(k.id).token_logprobs is None for k in kids)
    assert all(tree.node(k.id).token_ids == k.token_ids for k in kids)  # tokens stay
    # a model fills them in again, after the new prompt
    grow.ensure_distribution(tree, pred, kids[0].id)
    assert tree.node(kids[0].id).token_logprobs is not None
    tree.undo()
    assert tree.root.text == PROMPT


def test_prompt_edited_in_place_never_reuses_stale_kv(pred, hf_model) -> None:
    """Both children are cached after the old prompt; the prompt changes to text of the same
    token count; the second child's distribution must be computed after the new prompt."""
    pred.store.clear()
    tree = grow.new_tree(pred, "ROMEO. ")
    a, b = grow.expand(tree, pred, tree.root_id, Sampler(n=2, max_tokens=4), seed=5)
    grow.ensure_distribution(tree, pred, b.id)
    new_prompt = "JULIET. "
    assert len(pred.tokenize(new_prompt)) == len(pred.tokenize("ROMEO. "))
    tree.edit_prompt(new_prompt)
    grow.ensure_distribution(tree, pred, a.id)  # recomputes the root's slice
    grow.ensure_distribution(tree, pred, b.id)
    ids = tree.context_ids(b.id)
    assert ids is not None
    with torch.inference_mode():
        full = torch.log_softmax(hf_model("bard")(input_ids=torch.tensor([ids])).logits[0, -1],
                                 -1)
    dist = tree.node(b.id).distribution
    assert dist is not None
    assert dist.top.logprobs[0] == pytest.approx(full[dist.top.ids[0]].item(), abs=1e-3)


def test_picking_the_two_byte_tokens_of_one_character_keeps_it_whole(pred) -> None:
    """bard splits "ح" into two byte-level tokens; picked one at a time, each node's text is
    U+FFFD, but the nodes keep their bytes and the branch (and its export) reads "ح"."""
    ids = pred.tokenize("ح")
    assert len(ids) == 2
    tree = grow.new_tree(pred, PROMPT)
    a = grow.pick(tree, pred, tree.root_id, token_id=ids[0])
    b = grow.pick(tree, pred, a.id, token_id=ids[1])
    assert a.text == b.text == "\ufffd" and a.token_bytes and b.token_bytes
    assert tree.context_text(b.id) == PROMPT + "ح"
    typed = grow.type_text(tree, pred, tree.root_id, " café")
    assert typed.token_bytes is None  # exact text keeps no bytes


def test_split_of_text_only_tokens_keeps_a_loadable_session(tmp_path) -> None:
    """Tokens an engine gave by text only (offsets, no ids) split at a token index; a split at
    a character clears the head's token fields so the session still loads."""
    from loomtui.core import session

    tree = Tree(Node("0", "Hi", "prompt"))
    node = tree.add_child("0", tree.new_node(" there you", "sampled", token_offsets=[0, 6],
                                             token_logprobs=[-0.5, -1.0], model="eng"))
    tail = tree.split(node.id, at_token=1)
    assert (tree.node(node.id).text, tail.text) == (" there", " you")
    assert tail.token_offsets == [0] and tail.token_ids is None
    path = tmp_path / "s.json"
    session.save(tree, path)
    assert len(session.load(path)) == 3
    plain = tree.add_child("0", tree.new_node("abcdef", "imported"))
    tree.split(plain.id, at_char=3)
    session.save(tree, path)
    assert session.load(path).node(plain.id).text == "abc"


def test_distribution_at_a_position_extends_the_stored_alternatives(tree: Tree, pred) -> None:
    """More alternatives on demand: the full distribution before token k of a node, whose top
    entries are the few stored with the token, computed without changing the tree; branching
    from it picks a token the node never stored."""
    child = grow.expand(tree, pred, tree.root_id, Sampler(n=1, max_tokens=8), seed=3)[0]
    before = (tree.revision, len(tree), child.text)
    for k in (0, 4):
        dist = grow.distribution_at(tree, pred, child.id, k, top_k=60)
        assert len(dist.top) == 60 and dist.entropy is not None
        stored = child.alternatives[k]
        assert dist.top.ids[: len(stored)] == stored.ids
        assert dist.top.logprobs[: len(stored)] == pytest.approx(stored.logprobs, abs=1e-3)
    assert (tree.revision, len(tree), child.text) == before
    assert all(not nid.startswith("\0") for nid in tree.graph)
    rank = len(child.alternatives[4]) + 3  # beyond what the token stored
    new = grow.branch_at(tree, child.id, 4, rank, choices=dist.top)
    assert new.token_ids == [dist.top.ids[rank - 1]]
    assert tree.parent(new.id) == child.id and child.n_tokens == 4
    with pytest.raises(TreeError, match="before the first token of the prompt"):
        grow.distribution_at(tree, pred, tree.root_id, 0)
