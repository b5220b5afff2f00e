"""The model host: ``python -m loomtui.backends.model_host FD THREADS`` (see ``hosted``).

It imports torch at once, then serves one connection: ``load`` a predictor, then calls on
copies of the paths the app sends. Each call runs in a thread of its own (the predictor's
lock orders the model's work; tokenising does not wait for it), so a cancel or a tokenise
arrives while a rollout runs.
"""

from __future__ import annotations

import copy
import itertools
import os
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from loomtui.backends.hosted import HostHandle
from loomtui.core.node import Node
from loomtui.core.predictor import Segment
from loomtui.core.tree import Tree

STREAM_INTERVAL = 1 / 30
"""A rollout's progress is sent at most this often (the app draws it at that rate)."""

HANDLES = 1024
"""KV caches kept for segments not yet adopted (the oldest go first): more than the most
rollouts one expansion makes (``limits``), so none is dropped before the app adopts it."""


class _Mirror(Tree):
    """A copy of one path; records what the predictor stores on its nodes."""

    updates: list[tuple[str, dict[str, Any], dict[str, Any]]]

    def update_if(self, node_id: str, same: dict[str, Any], **fields: Any) -> bool:
        done = super().update_if(node_id, same, **fields)
        if done:
            self.updates.append((node_id, same, fields))
        return done


class Host:
    def __init__(self, conn: Connection, threads: int) -> None:
        self.conn = conn
        self.threads = threads
        self.pred: Any = None
        self.nodes: dict[str, Node] = {}
        self.handles: OrderedDict[int, Any] = OrderedDict()
        self.keys = iter(range(1, 2**62))
        self.cancels: dict[int, threading.Event] = {}
        self.send_lock = threading.Lock()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="host")

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def serve(self) -> None:
        while True:
            try:
                kind, call_id, payload = self.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "quit":
                return
            if kind == "cancel":
                event = self.cancels.get(call_id)
                if event is not None:
                    event.set()
                continue
            try:
                job = self._job(kind, call_id, payload)  # the path is copied now, in order
            except Exception as exc:
                self._answer(("err", call_id, (type(exc).__name__, str(exc))))
                continue
            self.pool.submit(self._run, call_id, job)

    def _run(self, call_id: int, job: Any) -> None:
        try:
            result = job()
        except BaseException as exc:  # every failure is an answer; the host goes on
            self._answer(("err", call_id, (type(exc).__name__, str(exc))))
        else:
            self._answer(("ok", call_id, result))
        finally:
            self.cancels.pop(call_id, None)

    def _answer(self, message: tuple[Any, ...]) -> None:
        try:
            self.send(message)
        except (OSError, ValueError):
            pass
        except Exception as exc:  # a result that does not pickle: say so instead
            self.send(("err", message[1], ("ModelError", f"cannot send the result: {exc}")))

    def _job(self, kind: str, call_id: int, payload: Any) -> Any:
        if kind == "load":
            return lambda: self._load(*payload)
        if kind == "tokenize":
            return lambda: self.pred.tokenize(payload)
        if kind == "decode":
            return lambda: self.pred.decode(payload)
        if kind == "token_text":
            return lambda: self.pred.token_text(payload)
        if kind != "call":
            raise ValueError(f"unknown request {kind!r}")
        method, path, nodes, args, cancellable, reset = payload
        if reset:
            self.nodes.clear()
        self.nodes.update(nodes)
        tree = self._mirror(path)
        cancel = threading.Event() if cancellable else None
        if cancel is not None:
            self.cancels[call_id] = cancel
        return lambda: self._call(call_id, method, tree, path[-1], args, cancel)

    def _mirror(self, path: list[str]) -> _Mirror:
        """A tree of copies of the path's nodes: what the predictor stores on them reaches
        the app as updates (applied there, and sent back here when they are), never the
        nodes kept here, so a call that fails leaves nothing the app does not have."""
        missing = [nid for nid in path if nid not in self.nodes]
        if missing:
            raise LookupError(f"node {missing[0]!r:.40} was not sent (sending it again)")
        nodes = [copy.copy(self.nodes[nid]) for nid in path]
        tree = _Mirror.from_parts(nodes, list(itertools.pairwise(path)), path[0])
        assert isinstance(tree, _Mirror)
        tree.updates = []
        return tree

    def _load(self, name: str | None, threads: int | None, device: str, dtype: str
              ) -> dict[str, Any]:
        from loomtui.backends import load_predictor

        self.pred = load_predictor(name, threads=threads or self.threads or None,
                                   device=device, dtype=dtype)
        import torch

        return {"model_id": self.pred.model_id, "context_window": self.pred.context_window,
                "threads": torch.get_num_threads(),
                "vocab_size": self.pred.vocab_size, "notes": list(getattr(self.pred, "notes",
                                                                           []))}

    def _call(self, call_id: int, method: str, tree: _Mirror, node_id: str, args: tuple[Any, ...],
              cancel: threading.Event | None) -> Any:
        pred = self.pred
        if pred is None:
            raise RuntimeError("no model is loaded")
        if method == "sample":
            n, sampler, seed = args
            last = [0.0] * n

            def on_token(i: int, seg: Segment) -> None:
                now = time.monotonic()
                if now - last[i] >= STREAM_INTERVAL:
                    last[i] = now
                    self.send(("tok", call_id, (i, seg.text, list(seg.token_ids))))

            result: Any = pred.sample(tree, node_id, n, sampler, seed, on_token=on_token,
                                      cancel=cancel)
        elif method == "adopt":
            key, token_ids = args
            with self.lock:
                kv = self.handles.pop(key, None)
            if kv is not None:
                pred.adopt(tree, node_id, Segment("", token_ids, [], [], None, handle=kv))
            result = None
        else:
            result = getattr(pred, method)(tree, node_id, *args)
        return self._keep_handles(result), tree.updates

    def _keep_handles(self, result: Any) -> Any:
        """Keep each segment's KV cache here; the segment carries a key to it."""
        for seg in result if isinstance(result, list) else [result]:
            if isinstance(seg, Segment) and seg.handle is not None:
                with self.lock:
                    key = next(self.keys)
                    self.handles[key] = seg.handle
                    while len(self.handles) > HANDLES:
                        self.handles.popitem(last=False)
                seg.handle = HostHandle(key)
        return result


def _log_to_file() -> None:
    """Send this process's stderr (warnings, a crash's traceback) to its log file."""
    from loomtui.backends.hosted import log_path

    try:
        path = log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return
    os.dup2(fd, 2)
    os.close(fd)


def default_threads(torch_default: int) -> int:
    """One thread fewer than the cores this process may use, and never more than torch's
    own choice (``torch_default``: its physical cores, or ``OMP_NUM_THREADS``, which is kept
    as it is when set): the app draws the screen on the core left over. On a 2-core machine
    the model's threads took both cores while it sampled and keys waited for them (tmux p95
    55-58 ms against 46-55 ms with one thread, which also sampled as fast: a small model's
    decoding is bound by memory, not by cores)."""
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("TORCH_NUM_THREADS"):
        return torch_default
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(torch_default, cores - 1))


def main(argv: list[str]) -> int:
    _log_to_file()
    import torch  # first: the import is most of the wait, and runs while the app starts

    threads = int(argv[2]) if len(argv) > 2 else 0
    torch.set_num_threads(threads or default_threads(torch.get_num_threads()))
    conn = Connection(int(argv[1]))
    host = Host(conn, threads)
    host.serve()
    # The app quit or ended: stop now, whatever is running (a load, a rollout) has no one to
    # answer and holds the model's memory.
    for event in list(host.cancels.values()):
        event.set()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
