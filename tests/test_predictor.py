"""The transformers predictor on the real bundled model: samplers, replay, cache, cancel."""

from __future__ import annotations

import threading

import pytest
import torch

from loomtui.backends import load_predictor
from loomtui.backends.kv_store import KVStore
from loomtui.backends.sampling import filtered_logprobs
from loomtui.core import grow
from loomtui.core.node import Node, Sampler
from loomtui.core.tree import Tree

PROMPT = "KING HENRY. Now, lords, "


@pytest.fixture(scope="module")
def pred():
    torch.set_num_threads(1)
    return load_predictor("bard")


@pytest.fixture()
def fresh(pred):
    pred.store.clear()
    pred.store.budget = 256 * 2**20
    pred.store.protected = set()
    return pred


def full_logprobs(pred, ids: list[int]) -> torch.Tensor:
    """Reference: the whole context run from scratch, no cache (last ``window`` tokens)."""
    ids = ids[-pred.context_window:]
    reference = _reference(pred.model_id)  # loaded outside inference mode
    with torch.inference_mode():
        logits = reference(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return torch.log_softmax(logits, -1)


def _reference(name: str):
    """transformers' own model (the predictor under test reads the weights without it)."""
    return load_predictor(name, fast=False).model


def cached_logprobs(pred, tree: Tree, node_id: str) -> torch.Tensor:
    with torch.inference_mode():
        return torch.log_softmax(pred._context(tree, node_id).last_logits, -1)


# ---------------------------------------------------------------- sampler settings
def test_filters_truncate_as_specified():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = lambda s: (filtered_logprobs(logits, s)[0] > float("-inf")).nonzero()[:, 0].tolist()  # noqa: E731
    assert kept(Sampler(temperature=1.0, top_k=2)) == [0, 1]
    assert kept(Sampler(temperature=1.0, top_p=0.6)) == [0, 1]  # 0.5 < 0.6, 0.7 covers it
    assert kept(Sampler(temperature=1.0, top_p=0.5)) == [0]
    assert kept(Sampler(temperature=1.0, min_p=0.25)) == [0, 1, 2]  # >= 0.125
    assert kept(Sampler(temperature=0.0)) == [0]
    renorm = filtered_logprobs(logits, Sampler(temperature=1.0, top_k=2))[0].exp()
    assert renorm[:2].tolist() == pytest.approx([0.5 / 0.7, 0.2 / 0.7], abs=1e-6)


def test_top_p_keeps_exactly_the_nucleus_of_a_large_vocabulary():
    """Against the definition, row by row: keep a token when the tokens more probable than
    it hold less than p (ties with the last kept token stay). Tokens within float32 rounding
    of the boundary may go either way."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 49152, generator=gen) * torch.tensor([[0.5], [1], [2], [4], [8], [1]])
    logits[5, 100:] = float("-inf")  # a row already cut by another filter
    logits[0, :3] = 50.0  # ties at the top
    probs = torch.softmax(logits.double(), -1)
    asc, _ = torch.sort(probs, -1)
    cum = asc.cumsum(-1)
    # mass of the tokens strictly more probable than each token
    more = cum[:, -1:] - cum.gather(-1, torch.searchsorted(asc, probs, right=True) - 1)
    for p in (0.05, 0.5, 0.95):
        got = filtered_logprobs(logits, Sampler(temperature=1.0, top_p=p)) > float("-inf")
        sure = (more - p).abs() > 1e-4
        assert torch.equal(got[sure], (more < p)[sure]), p
        assert got.sum(-1).min() >= 1


def test_temperature_sharpens(pred):
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    cold = filtered_logprobs(logits, Sampler(temperature=0.5))[0].exp()
    hot = filtered_logprobs(logits, Sampler(temperature=2.0))[0].exp()
    assert cold[0] > torch.softmax(logits, -1)[0, 0] > hot[0]


def test_greedy_is_argmax_of_full_recompute(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    kids = grow.expand(tree, fresh, tree.root_id, Sampler(temperature=0, max_tokens=12, n=2),
                       seed=5)
    assert kids[0].token_ids == kids[1].token_ids
    ctx = list(tree.root.token_ids)
    for tok in kids[0].token_ids:
        assert tok == int(full_logprobs(fresh, ctx).argmax())
        ctx.append(tok)


@pytest.mark.parametrize("setting", [{"top_k": 3}, {"top_p": 0.3}, {"min_p": 0.2}])
def test_sampled_tokens_respect_truncation(fresh, setting):
    tree = grow.new_tree(fresh, PROMPT)
    sampler = Sampler(temperature=1.5, max_tokens=16, n=6, **setting)
    kids = grow.expand(tree, fresh, tree.root_id, sampler, seed=11)
    for kid in kids:
        ctx = tree.context_ids(tree.parent(kid.id))
        for tok in kid.token_ids:
            lp = full_logprobs(fresh, ctx)
            allowed = (filtered_logprobs(lp[None], sampler)[0] > float("-inf")).nonzero()[:, 0]
            assert tok in allowed.tolist()
            if "top_k" in setting:
                assert tok in torch.topk(lp, 3).indices.tolist()
            ctx.append(tok)


def test_seeded_replay_gives_the_same_tokens(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    sampler = Sampler(temperature=1.0, top_p=0.95, max_tokens=20, n=3)
    first = grow.expand(tree, fresh, tree.root_id, sampler, seed=1234)
    fresh.store.clear()  # replay must not depend on what happens to be cached
    again = grow.expand(tree, fresh, tree.root_id, sampler, seed=1234)
    assert [k.token_ids for k in first] == [k.token_ids for k in again]
    assert [k.seed for k in first] == [1234, 1235, 1236]
    assert len({tuple(k.token_ids) for k in first}) > 1  # different seeds differ
    # A single child replays from its own stored seed.
    one = fresh.sample(tree, tree.root_id, 1, sampler, first[1].seed)
    assert one[0].token_ids == first[1].token_ids


def test_stop_strings_and_logprobs(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    kids = grow.expand(tree, fresh, tree.root_id,
                       Sampler(temperature=1.0, max_tokens=40, n=4, stop=("\n",)), seed=3)
    for kid in kids:
        assert kid.text.count("\n") <= 1
        if "\n" in kid.text:
            assert kid.text.endswith("\n") or "\n" in kid.pieces()[-1]
        assert len(kid.token_logprobs) == len(kid.token_ids) == len(kid.alternatives)
        assert kid.distribution is not None and kid.distribution.entropy is not None
        assert kid.sampler.stop == ("\n",)
        assert "".join(kid.pieces()) == kid.text


# ---------------------------------------------------------------- cache
def test_cached_logits_match_full_recompute(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    node = tree.root_id
    for level in range(3):  # a deep branch grown level by level
        kids = grow.expand(tree, fresh, node, Sampler(max_tokens=16, n=3), seed=level)
        node = kids[-1].id
    run_before = fresh.store.stats.tokens_run
    for nid in [node, tree.parent(node), *tree.children(tree.root_id)]:
        got = cached_logprobs(fresh, tree, nid)
        want = full_logprobs(fresh, tree.context_ids(nid))
        assert torch.allclose(got, want, atol=1e-4), nid
    assert fresh.store.stats.tokens_run == run_before  # all of them were cache hits


def test_picked_token_runs_only_one_position(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    before = fresh.store.stats.tokens_run
    child = grow.pick(tree, fresh, tree.root_id, rank=2)
    assert fresh.store.stats.tokens_run - before == 1
    assert child.token_ids == [tree.root.distribution.top.ids[1]]
    assert child.token_logprobs[0] == pytest.approx(tree.root.distribution.top.logprobs[1],
                                                    abs=1e-4)
    want = full_logprobs(fresh, tree.context_ids(child.id))
    assert child.distribution.top.ids[0] == int(want.argmax())


def test_typed_text_is_scored_token_by_token(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    child = grow.type_text(tree, fresh, tree.root_id, "what say you")
    assert child.origin == "typed" and child.text == "what say you"
    ctx = list(tree.root.token_ids)
    for tok, lp in zip(child.token_ids, child.token_logprobs, strict=True):
        assert lp == pytest.approx(float(full_logprobs(fresh, ctx)[tok]), abs=1e-4)
        ctx.append(tok)


def test_split_and_undo_invalidate_stale_slices(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    kid = grow.expand(tree, fresh, tree.root_id, Sampler(max_tokens=10, n=1), seed=9)[0]
    grandkid = grow.expand(tree, fresh, kid.id, Sampler(max_tokens=6, n=1), seed=2)[0]
    tail = tree.split(kid.id, at_token=4)
    for nid in (kid.id, tail.id, grandkid.id):
        want = full_logprobs(fresh, tree.context_ids(nid))
        assert torch.allclose(cached_logprobs(fresh, tree, nid), want, atol=1e-4)
    tree.undo()
    want = full_logprobs(fresh, tree.context_ids(grandkid.id))
    assert torch.allclose(cached_logprobs(fresh, tree, grandkid.id), want, atol=1e-4)


def test_eviction_keeps_the_budget_and_the_protected_path(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    kids = grow.expand(tree, fresh, tree.root_id, Sampler(max_tokens=24, n=4), seed=1)
    fresh.protect(tree, kids[0].id)
    per_slice = max(s.nbytes for s in fresh.store.slices.values())
    fresh.store.budget = 3 * per_slice
    for k in kids[1:]:
        grow.expand(tree, fresh, k.id, Sampler(max_tokens=24, n=3), seed=2)
    assert fresh.store.bytes <= fresh.store.budget or set(fresh.store.slices) <= (
        fresh.store.protected)
    assert {tree.root_id, kids[0].id} <= set(fresh.store.slices)
    assert fresh.store.stats.evictions > 0
    # Whatever was evicted, results stay exact.
    for k in kids:
        want = full_logprobs(fresh, tree.context_ids(k.id))
        assert torch.allclose(cached_logprobs(fresh, tree, k.id), want, atol=1e-4)


def test_store_evicts_leaves_before_parents():
    store = KVStore(budget_bytes=10**9)
    t = torch.zeros(1, 1, 4, 2)
    store.put("a", None, [(t, t)], 0, [1, 2, 3, 4])
    store.put("b", "a", [(t, t)], 4, [5, 6, 7, 8])
    store.put("c", "b", [(t, t)], 8, [9, 9, 9, 9])
    store.get("a")  # most recently used, but still a parent
    store.budget = store.bytes - 1
    store.evict()
    assert "c" not in store and "a" in store and "b" in store


def test_context_longer_than_the_window_keeps_recent_tokens(fresh):
    text = "Now is the winter of our discontent made glorious summer. " * 60
    tree = grow.new_tree(fresh, text)
    assert tree.root.n_tokens > fresh.context_window
    got = torch.log_softmax(fresh._context(tree, tree.root_id).last_logits, -1)
    assert torch.allclose(got, full_logprobs(fresh, tree.root.token_ids), atol=1e-4)
    kids = grow.expand(tree, fresh, tree.root_id, Sampler(max_tokens=8, n=2), seed=1)
    segs = fresh.sample(tree, tree.root_id, 1, Sampler(max_tokens=8), 1)
    assert segs[0].truncated_context > 0
    assert all(k.token_ids for k in kids)


# ---------------------------------------------------------------- cancel
def test_cancel_mid_sample_keeps_what_was_generated(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    cancel = threading.Event()
    seen = []

    def on_token(i, seg):
        seen.append(i)
        if len(seen) >= 9:
            cancel.set()

    kids = grow.expand(tree, fresh, tree.root_id, Sampler(max_tokens=200, n=3), seed=4,
                       on_token=on_token, cancel=cancel)
    assert kids and all(0 < len(k.token_ids) < 200 for k in kids)
    assert sum(len(k.token_ids) for k in kids) == len(seen)
    for k in kids:  # consistent nodes: text, offsets and scores line up
        assert len(k.token_logprobs) == len(k.token_ids) == len(k.token_offsets)
        assert "".join(k.pieces()) == k.text
    tree.undo()
    assert tree.children(tree.root_id) == []


# ---------------------------------------------------------------- imported text
def test_imported_nodes_get_scored_by_the_model(fresh):
    root = Node(id="r", text="HAMLET. To be, or not", origin="imported")
    tree = Tree(root)
    tree.add_child("r", Node(id="c", text=" to be", origin="imported", created=1.0))
    grow.ensure_distribution(tree, fresh, "c")
    c = tree.node("c")
    assert c.token_ids and c.model == "bard" and c.distribution is not None
    assert c.token_logprobs[0] is not None  # scored in context
    assert tree.root.token_logprobs[0] is None  # the very first token has no context
    for nid in ("r", "c"):  # every other token scored exactly as a full recompute does
        node = tree.node(nid)
        ctx = tree.context_ids(nid)[: -node.n_tokens]
        for i, (tok, lp) in enumerate(zip(node.token_ids, node.token_logprobs, strict=True)):
            if ctx:
                assert lp == pytest.approx(float(full_logprobs(fresh, ctx)[tok]), abs=1e-4)
                assert node.alternatives[i].ids[0] == int(full_logprobs(fresh, ctx).argmax())
            ctx = [*ctx, tok]
    want = full_logprobs(fresh, tree.context_ids("c"))
    assert c.distribution.top.ids[0] == int(want.argmax())


def test_nodes_of_another_model_are_retokenised_not_rewritten(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    kid = grow.expand(tree, fresh, tree.root_id, Sampler(max_tokens=8, n=1), seed=1)[0]
    for nid in (tree.root_id, kid.id):  # pretend another model (other vocabulary) made them
        tree.update(nid, token_ids=[9999999] * tree.node(nid).n_tokens, model="other")
    fresh.store.clear()
    dist = fresh.distribution(tree, kid.id)
    want = full_logprobs(fresh, fresh.tokenize(tree.context_text(kid.id)))
    assert dist.top.ids[0] == int(want.argmax())
    assert tree.node(kid.id).token_ids[0] == 9999999 and tree.node(kid.id).model == "other"


def test_pick_by_text_must_be_one_token(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    from loomtui.core.errors import TreeError

    with pytest.raises(TreeError, match="not one token"):
        grow.pick(tree, fresh, tree.root_id, token_text="notwithstanding whereupon")
    child = grow.pick(tree, fresh, tree.root_id, token_text=" the")
    assert child.text == " the" and child.origin == "picked"


def test_adopt_skips_a_node_changed_since_sampling(fresh):
    tree = grow.new_tree(fresh, PROMPT)
    seg = fresh.sample(tree, tree.root_id, 1, Sampler(max_tokens=8), 3)[0]
    node = tree.add_child(tree.root_id, grow.node_from_segment(tree, seg, "sampled", "bard"))
    tree.split(node.id, at_token=3)  # the node now holds 3 tokens, the KV covers 8
    fresh.adopt(tree, node.id, seg)
    assert node.id not in fresh.store
    want = full_logprobs(fresh, tree.context_ids(node.id))
    assert torch.allclose(cached_logprobs(fresh, tree, node.id), want, atol=1e-4)


def test_store_refuses_a_slice_that_does_not_cover_the_tokens():
    store = KVStore()
    t = torch.zeros(1, 1, 4, 2)
    store.put("a", None, [(t, t)], 0, [1, 2, 3])
    assert "a" not in store


def test_an_edit_made_while_the_model_runs_is_not_overwritten(fresh, monkeypatch):
    """The app edits the tree on its main thread while a worker runs the model: scores
    computed for a node's old tokens must not land on the node once it changed."""
    tree = grow.new_tree(fresh, PROMPT)
    kid = tree.add_child(tree.root_id, Node(id="k", text=" my good lord, what news",
                                            origin="imported", created=1.0))
    forward = fresh.adapter.forward

    def edit_meanwhile(*args, **kwargs):
        tree.split(kid.id, at_token=2)  # as if the user split it during the forward
        monkeypatch.setattr(fresh.adapter, "forward", forward)
        return forward(*args, **kwargs)

    monkeypatch.setattr(fresh.adapter, "forward", edit_meanwhile)
    fresh.distribution(tree, kid.id)
    node = tree.node(kid.id)
    assert len(node.token_ids) == 2
    assert node.token_logprobs is None or len(node.token_logprobs) == 2
    grow.ensure_distribution(tree, fresh, kid.id)  # later calls score the new tokens
    node = tree.node(kid.id)
    assert len(node.token_logprobs) == len(node.token_ids) == 2


def test_the_model_refuses_to_run_inside_a_transaction(fresh):
    """Workers take the predictor's lock, then the tree's; a transaction holds the tree's."""
    from loomtui.core.errors import TreeError

    tree = grow.new_tree(fresh, PROMPT)
    with pytest.raises(TreeError, match="transaction"), tree.transaction("macro"):
        grow.type_text(tree, fresh, tree.root_id, " there")
    assert len(tree) == 1
