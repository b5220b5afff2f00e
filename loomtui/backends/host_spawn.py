"""Starting the model process (see ``hosted``), with nothing imported but the standard
library: ``loomtui.launch`` starts it before the rest of loomtui is imported, since its
torch import is the longest wait of a launch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

Spawned = tuple["subprocess.Popen[bytes]", socket.socket]

_early: tuple[int | None, Spawned] | None = None
"""The process ``start_early`` started, with the threads it was given, until it is taken."""


def enabled() -> bool:
    return os.environ.get("LOOMTUI_MODEL_PROCESS", "1") != "0"


def child_python() -> list[str]:
    """The interpreter for loomtui's own subprocesses: ``-P`` keeps the working directory off
    its import path (a ``torch.py`` there must not be imported)."""
    return [sys.executable, "-P"]


def child_env() -> dict[str, str]:
    """The environment for them: where this loomtui is imported from goes on PYTHONPATH when
    it is not an installed location (a checkout run with ``python -m loomtui.cli``)."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    if root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return env


def spawn(threads: int | None) -> Spawned | None:
    """Start ``model_host`` (it imports torch at once) with one end of a socket pair; None
    where it cannot start. Its errors go to its log, never to the app's terminal."""
    if not enabled():
        return None
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [*child_python(), "-m", "loomtui.backends.model_host",
             str(theirs.fileno()), str(threads or 0)],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
            start_new_session=True)  # never the terminal's: ctrl+c is the app's
    except OSError:
        ours.close()
        return None
    finally:
        theirs.close()
    return proc, ours


def start_early(threads: int | None) -> None:
    """Start the process now, for the next :func:`take` to use (:func:`discard` ends it if
    none does)."""
    global _early
    spawned = spawn(threads)
    if spawned is not None:
        _early = (threads, spawned)


def take(threads: int | None) -> Spawned | None:
    """The process :func:`start_early` started with these threads, once; None otherwise (one
    started with other threads is ended)."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early[0] != threads:
        _end(early[1])
        return None
    return early[1]


def discard() -> None:
    """End the process :func:`start_early` started, unless it was taken: left alone it would
    import torch (seconds of a core) before it saw its socket close."""
    global _early
    early, _early = _early, None
    if early is not None:
        _end(early[1])


def _end(spawned: Spawned) -> None:
    proc, ours = spawned
    ours.close()
    proc.kill()
    proc.wait()  # reaped: no zombie
