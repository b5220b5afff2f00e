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
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loomtui.backends import host_spawn
from loomtui.core.errors import LoomError, ModelError, TreeError
from loomtui.core.node import Alternatives, Node
from loomtui.core.predictor import OnToken, Segment
from loomtui.core.tree import Tree

SEEN_MAX = 200_000
"""Nodes remembered as sent; past this both sides forget them all and start again."""

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


def log_path() -> Path:
    from loomtui.core.recent import state_dir

    return state_dir() / "model-host.log"


def light(node: Node) -> Node:
    """A copy of what the host's model reads of a node (call under ``tree.lock``): without
    alternatives, distribution, tags and notes (an empty ``Alternatives`` stands for
    "scored"). A node with no token ids yet keeps its scores: tokenising it files them away
    (``Node.scores_kept``)."""
    out = copy.copy(node)
    if node.token_ids is None:
        return out
    out.alternatives = Alternatives() if node.alternatives is not None else None
    out.distribution = None
    out.scores = {}
    out.foreign = {}
    out.tags = []
    out.note = ""
    return out


def _fingerprint(node: Node) -> tuple[Any, ...] | None:
    """Changes whenever a field the host's model reads changes (nodes change in place, but a
    field is always given a new value, never mutated: the lists' identity is enough). None
    for a node with no token ids yet: it is sent every time (its scores are read too)."""
    if node.token_ids is None:
        return None
    return (node.text, node.token_ids, node.model, node.token_logprobs is None,
            node.alternatives is None, node.token_offsets)


class ModelHost:
    """The host process and the one connection to it (calls from any thread)."""

    def __init__(self, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[tuple[str, Any]]] = {}
        self._seen: dict[str, tuple[Any, ...]] = {}
        self.dead: str | None = None

        self._reader = threading.Thread(target=self._read, name="model-host-reader",
                                         daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, threads: int | None = None) -> ModelHost | None:
        """The host (it imports torch at once): the one ``loomtui.launch`` started for these
        threads, else a new one; None where it cannot start."""
        spawned = host_spawn.take(threads) or host_spawn.spawn(threads)
        if spawned is None:
            return None
        proc, ours = spawned
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
        except Exception:  # the end of the connection, or a message that is not ours
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
                cancel: threading.Event | None = None, timeout: float | None = None,
                prepare: Any = None) -> Any:
        """Send one request and wait for its answer (streamed tokens go to ``on_token`` on
        this thread; ``cancel`` is passed on to the host). ``prepare(payload)`` builds the
        payload under the send lock, so what it records as sent is sent in that order."""
        if self.dead:
            raise ModelError(self.dead)
        call_id = next(self._ids)
        box: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._waiting[call_id] = box
        cancelled = False
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            try:
                with self._send_lock:
                    self.conn.send((kind, call_id,
                                    payload if prepare is None else prepare(payload)))
            except (OSError, ValueError):
                raise ModelError(self.dead or self._ended()) from None
            while True:
                if cancel is not None and cancel.is_set() and not cancelled:
                    cancelled = True
                    with contextlib.suppress(OSError, ValueError):
                        self._send(("cancel", call_id, None))
                try:
                    what, data = box.get(timeout=POLL)
                except queue.Empty:
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
    def sync(self, tree: Tree, node_id: str) -> tuple[list[str], dict[str, Node], bool]:
        """The path to ``node_id``, copies of the nodes on it the host has not seen as they
        are, and whether the host must forget every node it has (call under the send lock:
        what is recorded as seen is sent in this order)."""
        with tree.lock:
            path = tree.path(node_id)
            reset = len(self._seen) > SEEN_MAX  # both sides start again (they only grow)
            if reset:
                self._seen.clear()
            send = {}
            for nid in path:
                node = tree.node(nid)
                fp = _fingerprint(node)
                if fp is None or self._seen.get(nid) != fp:
                    if fp is not None:
                        self._seen[nid] = fp
                    send[nid] = light(node)
        return path, send, reset

    @property
    def failed(self) -> bool:
        """It ended on its own (it could not start, say): the model may load in the app
        instead. One killed by a signal (out of memory while loading) is not retried there."""
        code = self.proc.poll()
        return self.dead is not None and code is not None and code >= 0

    def forget(self, node_ids: Any) -> None:
        """Send these nodes again next time (a call failed, or an update did not apply)."""
        for nid in node_ids:
            self._seen.pop(nid, None)

    def load_or_none(self, name: str | None, *, threads: int | None, device: str, dtype: str
                     ) -> HostedPredictor | None:
        """:meth:`load`, or None (the host closed) when the process failed on its own: the
        caller loads the model in its own process then. A model that failed to load, or a
        host killed while loading (out of memory, say), raises ModelError."""
        try:
            return self.load(name, threads=threads, device=device, dtype=dtype)
        except ModelError:
            if not self.failed:
                raise
        self.close()
        return None

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
        self.threads: int | None = info.get("threads")
        """The model process's torch threads."""
        self._pieces: dict[int, str] = {}

    def _call(self, method: str, tree: Tree, node_id: str, *args: Any,
              on_token: OnToken | None = None, cancel: threading.Event | None = None) -> Any:
        host = self.host
        on_path: list[str] = []

        def prepare(_: Any) -> tuple[Any, ...]:
            path, nodes, reset = host.sync(tree, node_id)
            on_path.extend(path)
            return (method, path, nodes, args, cancel is not None, reset)

        try:
            result, updates = host.request("call", None, prepare=prepare, on_token=on_token,
                                           cancel=cancel)
        except BaseException:
            host.forget(on_path)  # whatever the host holds of them: sent again next time
            raise
        for nid, same, fields in updates:  # what the model stored on the path's nodes
            if not tree.update_if(nid, same, **fields):
                host.forget([nid])  # changed here meanwhile: the host's copy is stale
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
