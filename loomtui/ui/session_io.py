"""The session API the app codes against, until ``loomtui.core.session`` (a package) has it.

The lead's session package provides ``FileStamp``, ``ConflictError``, ``load_stamped``,
``encode``, ``write_bytes`` and ``save(..., expect=...)`` with these meanings; when it lands
on main, delete this module and import them from :mod:`loomtui.core.session`. Only what the app
needs is here: a file's identity, a load that returns it, and a write that refuses to replace a
file another process changed since we loaded or last wrote it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import filelock
import orjson

from loomtui.core import session as _session
from loomtui.core.errors import SessionError
from loomtui.core.tree import Tree

LOCK_TIMEOUT = 10.0
"""Seconds a save waits for another writer's lock before giving up with one line."""


class ConflictError(SessionError):
    """The file on disk is not the one we loaded or last wrote: another process changed it."""


@dataclass(frozen=True, slots=True)
class FileStamp:
    """The identity of a file as it was: modification time, size and inode."""

    mtime_ns: int
    size: int
    inode: int

    @staticmethod
    def of(path: str | os.PathLike[str]) -> FileStamp | None:
        """The file's stamp now, or None when there is no file."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return FileStamp(st.st_mtime_ns, st.st_size, st.st_ino)


def load_stamped(path: str | os.PathLike[str]) -> tuple[Tree, FileStamp | None]:
    """Load a session and the identity of the file it came from."""
    before = FileStamp.of(path)
    tree = _session.load(path)
    return tree, before


def encode(tree: Tree) -> bytes:
    """The session as bytes (a consistent snapshot: holds the tree's lock)."""
    try:
        return _session.dumps(tree)
    except Exception as exc:  # orjson: an integer over 64 bits, a lone surrogate
        raise SessionError("<session>", f"cannot save: {exc}") from None


class _Changed(Exception):
    """The tree changed between two steps of an encoding."""


STEP_NODES = 32
"""Nodes encoded per step of :func:`encode_in_steps` (about a millisecond of GIL)."""


def encode_in_steps(tree: Tree, *, step: int = STEP_NODES,
                    pause: Callable[[], None] | None = None, restarts: int = 10
                    ) -> tuple[bytes, int, str]:
    """The bytes of :func:`encode` (and the revision and selection they hold), made ``step``
    nodes at a time: the tree's lock is held for one step only and the GIL is given up
    between steps (``pause`` may wait longer, while the user is busy). When the tree changes
    between steps the encoding starts again; after ``restarts`` it is made in one step."""
    for attempt in range(restarts + 1):
        try:
            return _encode_steps(tree, step if attempt < restarts else 0, pause)
        except _Changed:
            continue
    raise AssertionError("unreachable")  # the last attempt is one step


def _encode_steps(tree: Tree, step: int, pause: Callable[[], None] | None
                  ) -> tuple[bytes, int, str]:
    w = _session._Writer()
    parts: list[bytes] = []
    edges: list[dict[str, str]] = []
    with tree.lock:
        revision, selected = tree.revision, tree.selected
        order = tree.iter_preorder()
    while True:
        if pause is not None:
            pause()
        else:
            time.sleep(0)  # let the event loop have the GIL
        with tree.lock:
            if tree.revision != revision:
                raise _Changed
            batch = []
            for nid, _ in (itertools.islice(order, step) if step else order):
                batch.append(_session.node_to_json(tree.node(nid), w))
                parent = tree.parent(nid) if nid != tree.root_id else None
                if parent is not None:
                    edges.append({"source": parent, "target": nid})
            if batch:
                try:
                    parts.append(orjson.dumps(batch)[1:-1])
                except orjson.JSONEncodeError as exc:  # an integer over 64 bits...
                    raise SessionError("<session>", f"cannot save: {exc}") from None
            if step and len(batch) == step:
                continue
            graph = {
                "format": _session.FORMAT, "version": _session.VERSION, "root": tree.root_id,
                "selected": tree.selected, "model": tree.model,
                "sampler": tree.sampler.to_json(), "seed": tree.seed,
                "vocab": w.vocab_json(), "created": tree.created, "modified": tree.modified,
            }
            break
    try:
        data = b"".join([b'{"directed":true,"multigraph":false,"graph":', orjson.dumps(graph),
                         b',"nodes":[', b",".join(parts), b'],"edges":', orjson.dumps(edges),
                         b"}"])
    except orjson.JSONEncodeError as exc:
        raise SessionError("<session>", f"cannot save: {exc}") from None
    return data, revision, selected


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def write_bytes(path: str | os.PathLike[str], data: bytes, *,
                expect: FileStamp | None = None, check: bool = True) -> FileStamp:
    """Write ``data`` to ``path`` atomically (the old file kept as ``PATH.bak``) under the
    session's lock file. With ``check``, refuse with :class:`ConflictError` when the file's
    identity is not ``expect`` (None: there must be no file). Returns the new identity."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise SessionError(path, f"cannot save: no directory {directory}")
    try:
        with filelock.FileLock(_lock_path(path), timeout=LOCK_TIMEOUT):
            now = FileStamp.of(path)
            if check and now != expect:
                what = "was created" if expect is None else (
                    "was deleted" if now is None else "was changed")
                raise ConflictError(path, f"{what} by another program since it was loaded; "
                                          "not saved (reload it, or save as a new file)")
            _atomic_write(path, directory, data)
            stamp = FileStamp.of(path)
    except filelock.Timeout:
        raise SessionError(path, f"cannot save: another program holds its lock for over "
                                 f"{LOCK_TIMEOUT:g} s") from None
    except OSError as exc:
        raise SessionError(path, f"cannot save: {exc.strerror or exc}") from None
    assert stamp is not None
    return stamp


def _atomic_write(path: Path, directory: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            bak = path.with_name(path.name + ".bak")
            shutil.copy2(path, bak)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(tree: Tree, path: str | os.PathLike[str], *, expect: FileStamp | None = None,
         check: bool = True) -> FileStamp:
    """Encode and write in one call (quit, tests)."""
    return write_bytes(path, encode(tree), expect=expect, check=check)
