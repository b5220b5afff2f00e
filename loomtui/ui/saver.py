"""Writing a session without holding up the screen.

Serialising a big session is seconds of CPU (40,000 nodes with distributions: tens of MB of
JSON), and ``orjson.dumps`` holds the GIL for all of it, so a thread alone still freezes the
event loop. Where the platform can fork, the snapshot is taken by ``fork()``: the parent holds
the tree's lock only for the fork itself; the child process encodes and writes its copy-on-write
view of the tree and reports the new file identity through a pipe. Elsewhere (or with
``LOOMTUI_SAVE_FORK=0``) the encoding runs in the calling thread.

Call :func:`write_session` from a thread worker; it blocks until the file is written.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from loomtui.core.errors import SessionError
from loomtui.core.tree import Tree
from loomtui.ui.session_io import ConflictError, FileStamp, encode, write_bytes


@dataclass(frozen=True, slots=True)
class Written:
    """A finished save: where, the tree's revision it holds, the file's new identity."""

    path: Path
    revision: int
    selected: str
    stamp: FileStamp


def use_fork() -> bool:
    return hasattr(os, "fork") and os.environ.get("LOOMTUI_SAVE_FORK", "1") != "0"


def write_session(tree: Tree, path: Path, expect: FileStamp | None, *, check: bool = True,
                  fork: bool | None = None) -> Written:
    """Snapshot ``tree`` and write it to ``path`` (see :func:`session_io.write_bytes`).

    Raises :class:`ConflictError` or :class:`SessionError` with a one-line message."""
    if fork if fork is not None else use_fork():
        return _write_forked(tree, path, expect, check)
    with tree.lock:
        revision, selected = tree.revision, tree.selected
        data = encode(tree)
    return Written(path, revision, selected, write_bytes(path, data, expect=expect,
                                                           check=check))


def _write_forked(tree: Tree, path: Path, expect: FileStamp | None, check: bool) -> Written:
    r, w = os.pipe()
    with tree.lock:  # no worker is half way through an update in the child's copy
        revision, selected = tree.revision, tree.selected
        pid = os.fork()
        if pid == 0:  # the child: encode, write, report, and leave without cleanup
            code = 0
            try:
                os.close(r)
                gc.disable()  # a collection would touch (and copy) every page
                stamp = write_bytes(path, encode(tree), expect=expect, check=check)
                msg = {"stamp": [stamp.mtime_ns, stamp.size, stamp.inode]}
            except ConflictError as exc:
                msg = {"conflict": exc.problem}
            except SessionError as exc:
                msg = {"error": exc.problem}
            except BaseException as exc:
                msg = {"error": f"cannot save: {type(exc).__name__}: {exc}"}
            try:
                os.write(w, orjson.dumps(msg))
            except BaseException:
                code = 1
            os._exit(code)
    os.close(w)
    chunks = []
    try:
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    try:
        msg = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise SessionError(path, "cannot save: the writing process died") from None
    if "conflict" in msg:
        raise ConflictError(path, msg["conflict"])
    if "error" in msg:
        raise SessionError(path, msg["error"])
    return Written(path, revision, selected, FileStamp(*msg["stamp"]))
