"""The lean forward pass against transformers' own, on both shipped models, and the hot
context buffers the predictor reuses between selections."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from loomtui.backends import load_predictor
from loomtui.backends.cache_adapter import from_cache, to_cache
from loomtui.backends.lean_forward import lean_forward
from loomtui.core import grow
from loomtui.core.node import Sampler

MODELS = ["bard", pytest.param("smollm2", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=MODELS)
def pred(request):
    """Built by transformers, so its own forward is there to compare with."""
    torch.set_num_threads(2)
    return load_predictor(request.param, fast=False)


@pytest.mark.parametrize("name", MODELS)
def test_fast_loader_gives_the_transformers_models_logits(name):
    """The fast loader (tokenizers + safetensors, no transformers model classes) reads the
    same weights and tokenizer: the same ids, texts and logits as transformers' model."""
    torch.set_num_threads(2)
    fast, ref = load_predictor(name), load_predictor(name, fast=False)
    assert type(fast.model).__name__ == "LeanModel" and fast.adapter.lean is not None
    text = "ROMEO:\nBut soft, what light — é ح 🙂 \t  <|endoftext|>"
    ids = fast.tokenize(text)
    assert ids == ref.tokenize(text) and fast.decode(ids) == text == ref.decode(ids)
    assert fast.tok.convert_ids_to_tokens(ids) == ref.tok.convert_ids_to_tokens(ids)
    assert fast.eos_ids == ref.eos_ids and fast.context_window == ref.context_window
    assert fast.vocab_size == ref.vocab_size
    x = torch.tensor([list(range(200, 460))])
    with torch.inference_mode():
        want = ref.model(input_ids=x).logits.float()
        got = fast.adapter.forward(x, None, 0)[0]
    assert (got - want).abs().max().item() < 1e-4


def hf(pred, ids: torch.Tensor, cache=None, start: int = 0) -> torch.Tensor:
    """transformers' own forward (the lean one switched off), all logits."""
    lean, pred.adapter.lean = pred.adapter.lean, None
    try:
        return pred.adapter.forward(ids, cache, start)[0]
    finally:
        pred.adapter.lean = lean


def test_shipped_models_take_the_lean_path(pred):
    assert pred.adapter.lean is not None


def test_lean_matches_transformers(pred):
    lean = pred.adapter.lean
    ids = torch.tensor([list(range(200, 460))])
    with torch.inference_mode():
        want = hf(pred, ids)
        got, cache = lean(ids, None, 0)
        assert torch.allclose(got, want, atol=1e-4)
        # A continuation after a cached prefix, keeping only some rows of logits.
        _, prefix = lean(ids[:, :200], None, 0)
        got, _ = lean(ids[:, 200:], to_cache(from_cache(prefix), 60), 200, [0, 17, 59])
        assert torch.allclose(got[0], want[0, [200, 217, 259]], atol=1e-4)
        # One decoding step for a batch of three different tokens.
        step = torch.tensor([[5], [60], [700]])
        got, _ = lean(step, to_cache(from_cache(cache), 2, batch=3), 260)
        want = hf(pred, step, to_cache(from_cache(cache), 2, batch=3), 260)
        assert torch.allclose(got, want, atol=1e-4)
        for i in range(3):
            full = hf(pred, torch.cat([ids, step[i : i + 1]], dim=1))[0, -1]
            assert torch.allclose(got[i, 0], full, atol=1e-4)


def test_configurations_not_reproduced_keep_transformers():
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50,
                                      add_cross_attention=True)).eval()
    assert lean_forward(gpt2) is None
    llama = LlamaForCausalLM(LlamaConfig(
        num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=50,
        rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})).eval()
    assert lean_forward(llama) is None
    plain = LlamaForCausalLM(LlamaConfig(
        num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=50)).eval()
    assert lean_forward(plain) is not None
    assert lean_forward(plain.train()) is None


def test_hot_buffers_serve_siblings_and_survive_scoring(pred):
    """Selecting siblings, children and parents in turn reuses one set of buffers (copying
    only what differs) and every distribution still equals a full recompute."""
    pred.store.clear()
    tree = grow.new_tree(pred, "KING HENRY. Now, lords, ")
    kids = grow.expand(tree, pred, tree.root_id, Sampler(max_tokens=12, n=3), seed=1)
    grand = grow.expand(tree, pred, kids[0].id, Sampler(max_tokens=12, n=2), seed=2)
    order = [kids[1].id, grand[0].id, kids[2].id, grand[1].id, tree.root_id, kids[0].id]
    for nid in order:  # drop each node's own slice: its parent's is cached
        pred.store.drop(nid)
    with torch.inference_mode():
        for nid in order:
            got = torch.log_softmax(pred._context(tree, nid, want_cache=False).last_logits, -1)
            want = torch.log_softmax(hf(pred, torch.tensor([tree.context_ids(nid)]))[0, -1], -1)
            assert torch.allclose(got, want, atol=1e-4), nid
            # Scoring writes past the hot context; the next selection must not see it.
            grow.type_text(tree, pred, nid, " and so")
    assert pred._hot is not None


def test_rollouts_over_a_shared_context_match_transformers(pred):
    """Sampling holds the context once for all rows (SharedPrefix): the same tokens, scores
    and final distributions as the transformers path over a copied per-row cache."""
    pred.store.clear()
    tree = grow.new_tree(pred, "KING HENRY. Now, lords, for France; the enterprise whereof")
    lean = pred.adapter.lean
    out = {}
    for name, fwd in (("lean", lean), ("hf", None)):
        pred.adapter.lean = fwd
        try:
            out[name] = pred.sample(tree, tree.root_id, 3, Sampler(temperature=0, max_tokens=10),
                                    seed=0)
        finally:
            pred.adapter.lean = lean
    for a, b in zip(out["lean"], out["hf"], strict=True):
        assert a.token_ids == b.token_ids
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
        assert a.distribution.top.ids[:5] == b.distribution.top.ids[:5]
    # The KV each rollout leaves behind serves its node's context exactly.
    kid = grow.expand(tree, pred, tree.root_id, Sampler(max_tokens=10, n=3), seed=4)[1]
    run = pred.store.stats.tokens_run
    typed = grow.type_text(tree, pred, kid.id, " and so")  # runs on top of the kid's KV
    assert pred.store.stats.tokens_run - run == len(typed.token_ids)
    with torch.inference_mode():
        got = torch.log_softmax(pred._context(tree, typed.id, want_cache=False).last_logits, -1)
        want = torch.log_softmax(hf(pred, torch.tensor([tree.context_ids(typed.id)]))[0, -1],
                                 -1)
    assert torch.allclose(got, want, atol=1e-4)


def test_nodes_without_tokens_on_a_path(pred):
    """An emptied node (an edited fork, an import) holds no KV: contexts through it, a
    leaf made of it, and the hot buffers around it all stay exact."""
    pred.store.clear()
    tree = grow.new_tree(pred, "KING HENRY. Now, lords, for France; ")
    root = tree.root_id
    a = grow.type_text(tree, pred, root, " the enterprise whereof").id
    a1 = grow.type_text(tree, pred, a, " shall be to the advantage").id
    x = grow.type_text(tree, pred, root, " what say you, my good lord").id
    e = tree.add_child(x, tree.new_node("", "edited")).id
    y = tree.add_child(e, tree.new_node(" of Canterbury", "typed")).id
    empty_leaf = tree.add_child(a, tree.new_node("", "typed")).id

    def exact(nid: str, extra: list[int] | None = None) -> None:
        ids = [t for n in tree.path(nid) for t in pred._ids(tree.node(n))] + (extra or [])
        want = torch.log_softmax(hf(pred, torch.tensor([ids]))[0, -1], -1)
        if extra:
            seg = pred.score_tokens(tree, nid, extra)
            got = torch.tensor(seg.distribution.top.logprobs)
            assert torch.allclose(got, want[seg.distribution.top.ids], atol=1e-4), nid
        else:
            with torch.inference_mode():
                got = torch.log_softmax(pred._context(tree, nid).last_logits, -1)
            assert torch.allclose(got, want, atol=1e-4), nid

    with torch.inference_mode():
        for nid in (y, a1):
            exact(nid)
    exact(a1, [5, 6])
    exact(y, [5])  # copies x over a's region, then passes the empty node
    exact(a1, [5, 6])  # the hot buffers really hold a1's path again
    exact(empty_leaf)  # nothing to run: the distribution after its parent
    exact(empty_leaf, [7])


def test_fast_path_runs_the_loom_without_importing_transformers():
    """transformers' import alone costs about a second: the shipped models load, sample, score
    and reuse their cache without it."""
    import subprocess
    import sys

    code = """
import sys, torch
torch.set_num_threads(1)
from loomtui.backends import load_predictor
from loomtui.core import grow
from loomtui.core.node import Sampler
pred = load_predictor("bard")
tree = grow.new_tree(pred, "ROMEO:")
kids = grow.expand(tree, pred, tree.root_id, Sampler(n=2, max_tokens=8), seed=1)
grow.type_text(tree, pred, kids[0].id, " and so")
grow.ensure_distribution(tree, pred, kids[1].id)
assert pred.store.stats.hits + pred.store.stats.misses > 0
print("transformers" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "False"


def _tiny_llama(tmp_path, **config):
    """A tiny random Llama checkpoint directory with bard's tokenizer."""
    import shutil

    from loomtui.backends.models import bundled_dir

    cfg = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64,
               num_attention_heads=2, num_key_value_heads=1, vocab_size=6144)
    cfg.update(config)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**cfg)).eval().save_pretrained(tmp_path)
    shutil.copy(bundled_dir() / "tokenizer.json", tmp_path / "tokenizer.json")
    return tmp_path


def test_fast_loader_takes_only_what_it_reproduces(tmp_path):
    """A default-rope Llama loads fast with transformers' logits; a scaled rope (old or new
    config form), a config missing a key, or a tokenizer option it does not apply all fall
    back to transformers (None) instead of giving other numbers or an error."""
    import json

    from loomtui.backends import fast_load

    plain = _tiny_llama(tmp_path / "plain")
    model, _ = fast_load.load(plain, "cpu", torch.float32)
    ref = LlamaForCausalLM.from_pretrained(plain).eval()
    x = torch.tensor([list(range(5, 45))])
    with torch.inference_mode():
        got = model.prepared_forward(x, None, 0)[0]
        want = ref(input_ids=x).logits.float()
    assert (got - want).abs().max().item() < 1e-4

    cfg_file = plain / "config.json"
    cfg = json.loads(cfg_file.read_text())
    for change in ({"rope_scaling": {"type": "linear", "factor": 4.0}},
                   {"rope_parameters": {"rope_type": "linear", "factor": 4.0,
                                        "rope_theta": 10000.0}},
                   {"num_key_value_heads": None}):
        bad = {**cfg, **change}
        bad = {k: v for k, v in bad.items() if v is not None}
        cfg_file.write_text(json.dumps(bad))
        assert fast_load.load(plain, "cpu", torch.float32) is None, change
    cfg_file.write_text(json.dumps(cfg))
    (plain / "tokenizer_config.json").write_text(json.dumps({"add_prefix_space": True}))
    assert fast_load.load(plain, "cpu", torch.float32) is None


def test_fast_tokenizer_ignores_truncation_and_padding_in_its_file(tmp_path):
    import json
    import shutil

    from loomtui.backends.fast_load import FastTokenizer
    from loomtui.backends.models import bundled_dir

    data = json.loads((bundled_dir() / "tokenizer.json").read_text())
    data["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst",
                          "stride": 0}
    data["padding"] = {"strategy": {"Fixed": 64}, "direction": "Right", "pad_to_multiple_of": None,
                       "pad_id": 0, "pad_type_id": 0, "pad_token": "<|endoftext|>"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    shutil.copy(bundled_dir() / "tokenizer_config.json", tmp_path)
    text = "ROMEO: But soft, what light through yonder window breaks? It is the east."
    ids = FastTokenizer(tmp_path).encode(text, add_special_tokens=False)
    assert FastTokenizer(tmp_path).decode(ids) == text and len(ids) > 8


@pytest.mark.parametrize("tied", [False, True])
def test_lean_cache_serves_the_next_load_without_copying(tmp_path, monkeypatch, tied):
    """The first load has another process write the fused weights to the cache; the next load
    maps them and the lean forward uses them as they are, with the same logits. A broken
    cache file is removed and the model loads from its weights; changed weights get another
    cache file."""
    import os

    from loomtui.backends import fast_load, lean_cache

    monkeypatch.setenv("LOOMTUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LOOMTUI_LEAN_CACHE", "1")
    plain = _tiny_llama(tmp_path / "m", tie_word_embeddings=tied)
    first, _ = fast_load.load(plain, "cpu", torch.float32)
    assert first.cache_writer is not None
    assert first.cache_writer.wait(timeout=120) == 0
    path = lean_cache.path_for(plain, torch.float32)
    assert path.is_file()

    mapped: list[dict[str, torch.Tensor]] = []
    read = lean_cache.read
    monkeypatch.setattr(lean_cache, "read", lambda *a: mapped.append(read(*a)) or mapped[-1])
    second, _ = fast_load.load(plain, "cpu", torch.float32)
    assert mapped[0] is not None and second.cache_writer is None
    qkv = second.prepared_forward.layers[0][1]
    assert qkv.data_ptr() == mapped[0]["model.layers.0.self_attn.q_proj.weight"].data_ptr()
    x = torch.tensor([list(range(5, 45))])
    with torch.inference_mode():
        a = first.prepared_forward(x, None, 0)[0]
        b = second.prepared_forward(x, None, 0)[0]
    assert torch.equal(a, b)

    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    third, _ = fast_load.load(plain, "cpu", torch.float32)
    with torch.inference_mode():
        assert torch.equal(third.prepared_forward(x, None, 0)[0], a)
    assert third.cache_writer is not None  # the broken file was dropped and is written again
    assert third.cache_writer.wait(timeout=120) == 0
    assert path.stat().st_size > 1000

    weights = plain / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert lean_cache.path_for(plain, torch.float32) != path
    assert lean_cache.write(plain, torch.float32)  # the new file replaces the stale one
    assert lean_cache.path_for(plain, torch.float32).is_file() and not path.exists()
