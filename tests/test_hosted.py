"""The model in a process of its own (``loomtui open``): the same numbers as in the app's
process, streaming and cancelling across the process boundary, and one-line errors."""

from __future__ import annotations

import os
import threading
import time

import pytest
from ui_helpers import SIZE, screen, settle

from loomtui.backends.hosted import ModelHost
from loomtui.core import grow
from loomtui.core.errors import ModelError, TreeError
from loomtui.core.node import Node, Sampler
from loomtui.core.tree import Tree
from loomtui.ui.app import make_app
from loomtui.ui.demo import demo_tree


@pytest.fixture(scope="module")
def host():
    host = ModelHost.start(1)
    assert host is not None
    yield host
    host.close()


@pytest.fixture(scope="module")
def hosted(host):
    return host.load("bard", threads=1, device="auto", dtype="float32")


def _grow(pred) -> tuple[Tree, list[str]]:
    tree = grow.new_tree(pred, "ROMEO:\nBut soft, what light")
    streamed: list[int] = []
    grow.expand(tree, pred, tree.root_id, Sampler(n=3, max_tokens=12), 7,
                on_token=lambda i, seg: streamed.append(i))
    kids = tree.children(tree.root_id)
    assert streamed and set(streamed) <= {0, 1, 2}
    grow.expand(tree, pred, kids[0], Sampler(n=2, max_tokens=8), 3)  # over the adopted KV
    grow.type_text(tree, pred, kids[1], " and the moon")
    return tree, kids


def _facts(tree: Tree) -> list[tuple]:
    return [(n.text, n.token_ids, n.token_logprobs, n.model) for n in tree.nodes()]


def test_the_hosted_model_grows_the_tree_as_the_model_in_process_does(hosted, pred):
    assert (hosted.model_id, hosted.context_window, hosted.vocab_size) == (
        pred.model_id, pred.context_window, pred.vocab_size)
    there, kids = _grow(hosted)
    here, _ = _grow(pred)
    assert _facts(there) == _facts(here)
    d_there = hosted.distribution(there, kids[0])
    d_here = pred.distribution(here, kids[0])
    assert d_there.top.ids == d_here.top.ids
    assert d_there.top.logprobs == d_here.top.logprobs
    ids = hosted.tokenize("But soft, what light")
    assert ids == pred.tokenize("But soft, what light")
    assert hosted.decode(ids) == "But soft, what light"
    assert [hosted.token_text(t) for t in ids] == [pred.token_text(t) for t in ids]


def test_nodes_without_tokens_are_tokenised_and_scored_in_the_host(hosted, pred):
    """An imported node has text only: the model tokenises and scores it where it runs, and
    what it stores comes back onto this process's tree."""
    def tree_with_text_only() -> Tree:
        tree = Tree(Node(id="0", text="KING RICHARD.", origin="imported"))
        tree.add_child("0", Node(id="1", text="\nNow is the winter", origin="imported"))
        return tree

    there, here = tree_with_text_only(), tree_with_text_only()
    hosted.distribution(there, "1")
    pred.distribution(here, "1")
    for nid in ("0", "1"):
        a, b = there.node(nid), here.node(nid)
        assert a.token_ids is not None and a.model == "bard"
        assert (a.token_ids, a.token_offsets, a.token_logprobs) == (
            b.token_ids, b.token_offsets, b.token_logprobs)


def test_cancelling_stops_the_hosted_rollouts_at_once(hosted):
    tree = grow.new_tree(hosted, "ROMEO:")
    cancel = threading.Event()
    t0 = time.monotonic()
    segs = hosted.sample(tree, tree.root_id, 2, Sampler(n=2, max_tokens=400), 1,
                         on_token=lambda i, seg: cancel.set(), cancel=cancel)
    assert time.monotonic() - t0 < 5
    assert {s.finish for s in segs} == {"cancelled"}
    assert all(len(s.token_ids) < 400 for s in segs)


def test_the_model_process_leaves_a_core_to_the_app_unless_told_its_threads(hosted):
    import subprocess
    import sys

    from loomtui.backends.model_host import default_threads

    def torch_default() -> int:  # torch's own choice in a fresh process, as the host sees it
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, check=True)
        return int(out.stdout)

    assert hosted.threads == 1  # as told
    host = ModelHost.start()
    assert host is not None
    try:
        pred = host.load("bard", threads=None, device="auto", dtype="float32")
        cores = len(os.sched_getaffinity(0))
        assert pred.threads == max(1, min(cores - 1, torch_default()))
        assert default_threads(1) == 1 and default_threads(64) == max(1, cores - 1)
    finally:
        host.close()


def test_errors_are_one_line_and_a_dead_host_says_so(host):
    with pytest.raises(ModelError, match="no-such-model") as info:
        host.load("no-such-model", threads=1, device="auto", dtype="float32")
    assert "\n" not in str(info.value)
    doomed = ModelHost.start(1)
    assert doomed is not None
    pred = doomed.load("bard", threads=1, device="auto", dtype="float32")
    doomed.proc.kill()
    doomed.proc.wait()
    with pytest.raises(ModelError, match="the model process ended"):
        for _ in range(50):  # until the reader has seen the end
            pred.tokenize("x")
            time.sleep(0.05)


async def test_the_app_loads_its_model_in_the_host_and_falls_back_without_one(tmp_path):
    from loomtui.backends.hosted import HostedPredictor
    from loomtui.core import session

    path = tmp_path / "s.json"
    session.save(demo_tree(), path)
    host = ModelHost.start(1)
    app = make_app(str(path), model="bard", threads=1, host=host)
    assert not isinstance(app, str)
    async with app.run_test(size=SIZE) as pilot:
        while app.model_loading or app.pred is None:
            await pilot.pause(0.05)
        assert isinstance(app.pred, HostedPredictor)
        await settle(pilot)
        before = len(app.loom)
        await pilot.press("e")
        while screen(app).generating or len(app.loom) == before:
            await pilot.pause(0.05)
        assert len(app.loom) > before
    app._drop_host()
    assert host.proc.wait(timeout=10) == 0  # the quit ends it

    from loomtui.backends import host_spawn

    real = host_spawn.child_python
    host_spawn.child_python = lambda: [*real(), "-c", "raise SystemExit(3)"]  # cannot start
    try:
        dead = ModelHost.start(1)
    finally:
        host_spawn.child_python = real
    assert dead is not None
    app = make_app(str(path), model="bard", threads=1, host=dead)
    assert not isinstance(app, str)
    async with app.run_test(size=SIZE) as pilot:
        while app.model_loading or app.pred is None:
            await pilot.pause(0.05)
        assert not isinstance(app.pred, HostedPredictor) and app.host is None
        await settle(pilot)
        assert any("the model runs in the app instead" in s for s in app.said)


def test_a_local_model_chosen_later_gets_a_process_of_its_own():
    from loomtui.backends.hosted import HostedPredictor
    from loomtui.ui.predictors import close, load_named

    pred = load_named("bard", threads=1, hosted=True)
    assert isinstance(pred, HostedPredictor) and pred.model_id == "bard"
    with pytest.raises(ModelError, match="no-such-model"):
        load_named("no-such-model", threads=1, hosted=True)
    close(pred)
    assert pred.host.proc.wait(timeout=10) == 0


def test_a_failed_call_leaves_both_sides_in_step(hosted, pred):
    """A call that fails midway (a file's token id outside the vocabulary, after an earlier
    node was tokenised) stores nothing on either side; once the node is fixed, the next call
    gives what the model in this process gives."""
    def broken() -> Tree:
        tree = Tree(Node(id="0", text="KING RICHARD.", origin="imported"))
        tree.add_child("0", Node(id="1", text="x", origin="imported", token_ids=[99999],
                                 token_offsets=[0], model="bard"))
        return tree

    there, here = broken(), broken()
    for p, tree in ((hosted, there), (pred, here)):
        with pytest.raises(TreeError, match="outside the vocabulary"):
            p.distribution(tree, "1")
    assert there.node("0").token_ids is None
    for tree in (there, here):
        tree.update("1", token_ids=[5])
    d_there, d_here = hosted.distribution(there, "1"), pred.distribution(here, "1")
    assert d_there.top.ids == d_here.top.ids
    assert there.node("0").token_ids == here.node("0").token_ids is not None


def test_the_loomtui_command_starts_the_model_process_first_when_it_opens_the_app(
        monkeypatch):
    import subprocess
    import sys

    from loomtui import launch
    from loomtui.backends import host_spawn

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr(sys, "stdout", Tty())
    opens = launch.early_host_threads
    assert opens([]) == (True, None)
    assert opens(["s.json", "--threads", "2"]) == (True, 2)
    assert opens(["open", "--threads=3", "--model", "bard"]) == (True, 3)
    for refused in (["show", "s.json"], ["s.json", "--engine", "x"], ["--engine=x"],
                    ["s.json", "--help"], ["--threads", "two"], ["nosuchcommand"], ["-h"]):
        assert opens(refused) == (False, None), refused
    monkeypatch.setattr(sys, "stdin", None)  # no terminal: no app, no model
    assert opens(["s.json"]) == (False, None)

    monkeypatch.delenv("LOOMTUI_MODEL_PROCESS", raising=False)
    try:
        host_spawn.start_early(1)
        proc = host_spawn._early[1][0]  # type: ignore[index]
        host = ModelHost.start(1)  # `open` takes the process started first
        assert host is not None and host.proc is proc
        try:
            pred = host.load("bard", threads=1, device="cpu", dtype="float32")
            assert pred.tokenize("hello")
        finally:
            host.close()
        assert proc.wait(timeout=30) == 0

        host_spawn.start_early(2)
        proc = host_spawn._early[1][0]  # type: ignore[index]
        other = ModelHost.start(1)  # other threads: a new process; the first one is ended
        assert other is not None and other.proc is not proc
        assert proc.returncode is not None  # ended and reaped at once, not left importing
        other.close()
        assert other.proc.wait(timeout=60) == 0
        assert host_spawn.take(1) is None

        host_spawn.start_early(None)  # a command that never takes it (--engine, an error)
        proc = host_spawn._early[1][0]  # type: ignore[index]
        host_spawn.discard()
        assert proc.returncode is not None and host_spawn.take(None) is None
    finally:
        host_spawn.discard()

    # The command starts it before it imports the command line, and ends it when the command
    # fails instead of opening the app.
    script = (
        "import sys\n"
        "class Tty:\n"
        "    def __init__(self, f): self.f = f\n"
        "    def isatty(self): return True\n"
        "    def __getattr__(self, name): return getattr(self.f, name)\n"
        "sys.stdin, sys.stdout = Tty(sys.stdin), Tty(sys.stdout)\n"
        "from loomtui.backends import host_spawn\n"
        "real = host_spawn.start_early\n"
        "def early(threads):\n"
        "    print('started', 'loomtui.cli' in sys.modules, threads, flush=True)\n"
        "    real(threads)\n"
        "host_spawn.start_early = early\n"
        "sys.argv = ['loomtui', 's.json', '--threads', '2', '--bogus']\n"
        "from loomtui.launch import main\n"
        "rc = main()\n"
        "print('left', host_spawn._early, flush=True)\n"
        "sys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.splitlines() == ["started False 2", "left None"], out.stderr
    assert out.returncode == 2 and "unrecognized arguments: --bogus" in out.stderr

    out = subprocess.run([sys.executable, "-c", "import sys; from loomtui.launch import main; "
                          "sys.argv = ['loomtui', 'nosuchcommand']; sys.exit(main())"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "unknown command 'nosuchcommand'" in out.stderr
