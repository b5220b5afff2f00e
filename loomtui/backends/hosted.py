"""The app's model in a process of its own: a predictor here, the model in ``model_host``.

Started before the app imports its UI, the host imports torch (seconds) on the other core
while this process draws its first frame and reads the session; in one process the two
queued behind each other (torch's import holds the GIL), and every key pressed while the
model sampled shared the GIL with it. Nothing here imports torch.

The model reads the tree: each call sends the path to its node, every node the host has not
seen as it is now (without the heavy fields the model never reads: alternatives, stored
distributions), and the host runs the real predictor on a copy of that path. What the
predictor stores on those nodes (their tokens and scores) comes back as the same guarded
``update_if`` calls, applied here. KV caches stay in the host; a segment carries a
:class:`HostHandle` to them, redeemed by :meth:`HostedPredictor.adopt`.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loomtui.core.errors import LoomError, ModelError, TreeError
from loomtui.core.node import Alternatives, Node
from loomtui.core.predictor import OnToken, Segment
from loomtui.core.tree import Tree

POLL = 0.02
"""How often a call waiting for its answer looks at its cancel event (seconds)."""

LOAD_TIMEOUT = 600.0
"""A model load (conversion included) that takes longer than this has failed."""

ERRORS: dict[str, type[Exception]] = {
    "ModelError": ModelError, "TreeError": TreeError, "StaleError": TreeError,
    "ValueError": ValueError, "LoomError": LoomError,
}
"""Exceptions the host reports that keep their kind here (others become ModelError)."""


@dataclass(frozen=True, slots=True)
class HostHandle:
    """A segment's KV cache, kept in the model host under ``key``."""

    key: int


def enabled() -> bool:
    return os.environ.get("LOOMTUI_MODEL_PROCESS", "1") != "0"


def log_path() -> Path:
    from loomtui.core.recent import state_dir

    return state_dir() / "model-host.log"


def light(node: Node) -> Node:
    """What the host's model reads of a node: a copy without alternatives, distribution, tags
    and notes (an empty ``Alternatives`` stands for "scored"). A node with no token ids yet is
    sent whole: tokenising it files its old scores away (``Node.scores_kept``)."""
    if node.token_ids is None:
        return node
    out = copy.copy(node)
    out.alternatives = Alternatives() if node.alternatives is not None else None
    out.distribution = None
    out.scores = {}
    out.foreign = {}
    out.tags = []
    out.note = ""
    return out


def _fingerprint(node: Node) -> tuple[Any, ...]:
    """Changes whenever a field the host's model reads changes (nodes change in place; a field
    is always given a new value, never mutated, so identity of the lists is enough)."""
    return (node.text, node.token_ids, node.model, node.token_logprobs is None,
            node.alternatives is None, node.token_offsets, node.scores)


class ModelHost:
    """The host process and the one connection to it (calls from any thread)."""

    def __init__(self, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[tuple[str, Any]]] = {}
        self._sync_lock = threading.Lock()
        self._seen: dict[str, tuple[Any, ...]] = {}
        self.dead: str | None = None
        self._reader = threading.Thread(target=self._read, name="model-host-reader",
                                         daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, threads: int | None = None) -> ModelHost | None:
        """Start the host (it imports torch at once); None where it cannot start."""
        if not enabled():
            return None
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # where this loomtui is imported from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        try:  # its errors go to its log (see model_host.main), never to the app's terminal
            proc = subprocess.Popen(
                [sys.executable, "-m", "loomtui.backends.model_host",
                 str(theirs.fileno()), str(threads or 0)],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                start_new_session=True)  # never the terminal's: ctrl+c is the app's
        except OSError:
            ours.close()
            return None
        finally:
            theirs.close()
        return cls(proc, Connection(ours.detach()))

    # ------------------------------------------------------------ transport
    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def _read(self) -> None:
        try:
            while True:
                kind, call_id, payload = self.conn.recv()
                box = self._waiting.get(call_id)
                if box is not None:
                    box.put((kind, payload))
        except (EOFError, OSError):
            pass
        self.dead = self._ended()
        for box in list(self._waiting.values()):
            box.put(("dead", None))

    def _ended(self) -> str:
        """Why the host is gone, in one line."""
        try:
            code = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        return (f"the model process ended (exit code {code}); see {log_path()}"
                if code not in (0, None) else "the model process ended")

    def request(self, kind: str, payload: Any, *, on_token: OnToken | None = None,
                cancel: threading.Event | None = None, timeout: float | None = None) -> Any:
        """Send one request and wait for its answer (streamed tokens go to ``on_token`` on
        this thread; ``cancel`` is passed on to the host)."""
        if self.dead:
            raise ModelError(self.dead)
        call_id = next(self._ids)
        box: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._waiting[call_id] = box
        cancelled = False
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            try:
                self._send((kind, call_id, payload))
            except (OSError, ValueError):
                raise ModelError(self.dead or self._ended()) from None
            while True:
                try:
                    what, data = box.get(timeout=POLL)
                except queue.Empty:
                    if cancel is not None and cancel.is_set() and not cancelled:
                        cancelled = True
                        self._send(("cancel", call_id, None))
                    if deadline is not None and time.monotonic() > deadline:
                        raise ModelError(f"the model process did not answer in {timeout:g} s"
                                         ) from None
                    continue
                if what == "tok":
                    if on_token is not None:
                        i, text, ids = data
                        on_token(i, Segment(text, ids, [], [], None))
                    continue
                if what == "ok":
                    return data
                if what == "err":
                    name, message = data
                    error = ERRORS.get(name)
                    if error is None:
                        raise ModelError(f"{name}: {message}" if message else name)
                    raise error(message)
                raise ModelError(self.dead or "the model process ended")
        finally:
            self._waiting.pop(call_id, None)

    # ------------------------------------------------------------ the tree
    def path_of(self, tree: Tree, node_id: str) -> tuple[list[str], dict[str, Node]]:
        """The path to ``node_id`` and the nodes on it the host has not seen as they are."""
        with tree.lock:
            path = tree.path(node_id)
            nodes = [tree.node(n) for n in path]
            with self._sync_lock:
                send = {}
                for node in nodes:
                    fp = _fingerprint(node)
                    if self._seen.get(node.id) != fp:
                        self._seen[node.id] = fp
                        send[node.id] = light(node)
        return path, send

    def forget(self, node_ids: list[str]) -> None:
        """The host did not take these nodes (a failed call): send them again next time."""
        with self._sync_lock:
            for nid in node_ids:
                self._seen.pop(nid, None)

    def load(self, name: str | None, *, threads: int | None, device: str, dtype: str
             ) -> HostedPredictor:
        info = self.request("load", (name, threads, device, dtype), timeout=LOAD_TIMEOUT)
        return HostedPredictor(self, info)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._send(("quit", 0, None))
        with contextlib.suppress(OSError):
            self.conn.close()


class HostedPredictor:
    """A :class:`~loomtui.core.predictor.CachingPredictor` whose model runs in a
    :class:`ModelHost`."""

    def __init__(self, host: ModelHost, info: dict[str, Any]) -> None:
        self.host = host
        self.model_id: str = info["model_id"]
        self.context_window: int = info["context_window"]
        self.vocab_size: int = info["vocab_size"]
        self.notes: list[str] = list(info.get("notes", []))
        self._pieces: dict[int, str] = {}

    def _call(self, method: str, tree: Tree, node_id: str, *args: Any,
              on_token: OnToken | None = None, cancel: threading.Event | None = None) -> Any:
        path, nodes = self.host.path_of(tree, node_id)
        try:
            result, updates = self.host.request(
                "call", (method, path, nodes, args, cancel is not None),
                on_token=on_token, cancel=cancel)
        except BaseException:
            self.host.forget(list(nodes))
            raise
        for nid, same, fields in updates:  # what the model stored on the path's nodes
            tree.update_if(nid, same, **fields)
        return result

    # ------------------------------------------------------------ the model
    def distribution(self, tree: Tree, node_id: str, top_k: int = 20) -> Any:
        return self._call("distribution", tree, node_id, top_k)

    def sample(self, tree: Tree, node_id: str, n: int, sampler: Any, seed: int,
               on_token: OnToken | None = None, cancel: threading.Event | None = None
               ) -> list[Segment]:
        return self._call("sample", tree, node_id, n, sampler, seed, on_token=on_token,
                          cancel=cancel)

    def score(self, tree: Tree, node_id: str, text: str) -> Segment:
        return self._call("score", tree, node_id, text)

    def score_tokens(self, tree: Tree, node_id: str, token_ids: list[int]) -> Segment:
        return self._call("score_tokens", tree, node_id, list(token_ids))

    def adopt(self, tree: Tree, node_id: str, segment: Segment) -> None:
        handle, segment.handle = segment.handle, None
        if isinstance(handle, HostHandle):
            self._call("adopt", tree, node_id, handle.key, list(segment.token_ids))

    def protect(self, tree: Tree, node_id: str) -> None:
        self._call("protect", tree, node_id)

    # ------------------------------------------------------------ the tokenizer
    def tokenize(self, text: str) -> list[int]:
        return self.host.request("tokenize", text)

    def decode(self, token_ids: list[int]) -> str:
        return self.host.request("decode", list(token_ids))

    def token_text(self, token_id: int) -> str:
        text = self._pieces.get(token_id)
        if text is None:
            text = self._pieces[token_id] = self.host.request("token_text", token_id)
        return text

    def close(self) -> None:
        self.host.close()
