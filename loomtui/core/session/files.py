"""Session files on disk: safe reads, atomic writes, a lock between writers, and identity.

Reads accept only regular files up to a size limit (a FIFO would hang, a link to /dev/zero
would read forever). Writes are atomic (temporary file in the same directory, fsync,
``os.replace``), keep the previous version as ``FILE.bak``, go through a symbolic link to its
target, refuse a read-only file, never create missing directories, and never overwrite a file
that another process changed since it was read (:class:`FileStamp`). Writers take an advisory
lock on ``.FILE.lock`` beside the session, so two loomtui processes never interleave.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import filelock

from loomtui.core import limits
from loomtui.core.errors import SessionError

LOCK_TIMEOUT = 30.0
"""Seconds a writer waits for another loomtui process to finish with a session."""


class ConflictError(SessionError):
    """The file changed on disk since this process read or wrote it: nothing was written."""


@dataclass(frozen=True, slots=True)
class FileStamp:
    """A file's identity and version as the OS reports it: equal stamps mean an unchanged file
    (``os.replace`` gives every save a new inode, so a rewrite within one clock tick shows)."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @staticmethod
    def of(path: str | os.PathLike[str]) -> FileStamp | None:
        """The stamp of the file at ``path`` now (through links), or None if there is none."""
        return stamp_of(path)

    @staticmethod
    def of_stat(st: os.stat_result) -> FileStamp:
        return FileStamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def stamp_of(path: str | os.PathLike[str]) -> FileStamp | None:
    """The stamp of the file at ``path`` now (through links), or None if there is none."""
    try:
        return FileStamp.of_stat(os.stat(path))
    except OSError:
        return None


def target_of(path: Path) -> Path:
    """Where a save of ``path`` writes: the file a symbolic link points to, else ``path``."""
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def read_regular(path: str | os.PathLike[str], max_bytes: int | None = None
                 ) -> tuple[bytes, FileStamp]:
    """The bytes of a regular file (through links) and its stamp; a one-line SessionError for
    anything else: missing, a directory, a FIFO or device, too big, unreadable."""
    path = Path(path)
    limit = limits.session_max_bytes() if max_bytes is None else max_bytes
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SessionError(path, "no such file") from None
    except IsADirectoryError:
        raise SessionError(path, "is a directory, not a session file") from None
    except OSError as exc:
        raise SessionError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SessionError(path, "is a directory, not a session file")
        if not stat.S_ISREG(st.st_mode):
            raise SessionError(path, "is not a regular file (a pipe, device or socket)")
        if st.st_size > limit:
            raise SessionError(path, f"is {st.st_size / 2**20:.0f} MiB, over the limit of "
                                     f"{limit / 2**20:.0f} MiB (set LOOMTUI_MAX_SESSION_MB "
                                     "to raise it)")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise SessionError(path, "grew past the size limit while being read")
            chunks.append(chunk)
        return b"".join(chunks), FileStamp.of_stat(st)
    except OSError as exc:
        raise SessionError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the lock
_locks: dict[str, tuple[threading.RLock, filelock.FileLock]] = {}
_locks_guard = threading.Lock()


def lock_path(path: Path) -> Path:
    target = target_of(path)
    return target.with_name(f".{target.name}.lock")


@contextmanager
def locked(path: str | os.PathLike[str], timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the advisory writer lock of the session at ``path`` (re-entrant in a process).

    A command that changes a session holds it from load to save, so a second writer waits and
    then sees the first one's change. Where the directory cannot hold a lock file (read-only),
    there is nothing to write either, and the lock is skipped.
    """
    target = target_of(Path(path))
    if target.exists() and not target.is_file():  # no lock file beside a device or a FIFO
        raise SessionError(path, "is not a regular file (a directory, pipe, device or socket)")
    lp = lock_path(Path(path))
    key = str(lp.resolve()) if lp.parent.exists() else str(lp)
    with _locks_guard:
        pair = _locks.get(key)
        if pair is None:
            pair = _locks[key] = (threading.RLock(), filelock.FileLock(str(lp),
                                                                       thread_local=False))
    in_process, between_processes = pair
    # threads of this process exclude each other with the RLock (re-entrant per thread);
    # the file lock, held by the first owner, excludes other processes
    if not in_process.acquire(timeout=timeout):
        raise SessionError(path, f"another save of it is under way (waited {timeout:.0f} s)")
    try:
        try:
            between_processes.acquire(timeout=timeout)
        except filelock.Timeout:
            raise SessionError(path, f"another loomtui process is writing it (waited "
                                     f"{timeout:.0f} s); try again when it is done") from None
        except OSError:
            if os.access(lp.parent, os.W_OK):  # the directory takes files, but not this lock
                raise SessionError(path, f"cannot take its lock {lp.name}: it belongs to "
                                         "another user or cannot be opened") from None
            yield  # a read-only directory: there is nothing to write either
            return
        try:
            yield
        finally:
            between_processes.release()
    finally:
        in_process.release()


# --------------------------------------------------------------------------- writing
_UNSET: object = object()


def write_atomic(path: str | os.PathLike[str], data: bytes | list[bytes], *,
                 expect: FileStamp | object | None = _UNSET, backup: bool = True) -> FileStamp:
    """Write ``data`` (bytes, or chunks written in a row) as the session at ``path``
    atomically, under the writer lock.

    ``expect``: the stamp the file had when this process last read or wrote it (None: it did
    not exist); if the file is not that one any more, raise :class:`ConflictError` and write
    nothing. Returns the new file's stamp.
    """
    path = Path(path)
    target = target_of(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SessionError(path, f"cannot save: the directory {directory} does not exist")
    with locked(path):
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise SessionError(path, f"cannot save: {exc.strerror or exc}") from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise SessionError(path, "cannot save: not a regular file")
        if st is not None and not st.st_mode & 0o222:
            raise SessionError(path, "is read-only: save it as another file")
        now = None if st is None else FileStamp.of_stat(st)
        if expect is not _UNSET and now != expect:
            what = ("was deleted" if now is None else "was created by another program"
                    if expect is None else "was changed by another program")
            raise ConflictError(path, f"{what} since it was opened; not saved (reload it, or "
                                      "save as another file)")
        _remove_stale_temps(target)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise SessionError(path, f"cannot save: {exc.strerror or exc}") from None
        try:
            os.chmod(tmp, st.st_mode & 0o777 if st is not None else _default_mode())
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, bytes):
                    fh.write(data)
                else:
                    fh.writelines(data)
                fh.flush()
                os.fsync(fh.fileno())
                new = FileStamp.of_stat(os.fstat(fh.fileno()))  # a rename keeps all of it
            if backup and st is not None:
                _backup(target)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise SessionError(path, f"cannot save: {exc.strerror or exc}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(directory)
        return new


def _remove_stale_temps(target: Path) -> None:
    """Temporary files of our own naming left by a killed save (under the lock, so no live
    save of another loomtui is writing one)."""
    ours = re.compile(re.escape(f".{target.name}.") + r"([a-z0-9_]{8}|bak)\.tmp")
    try:
        names = os.listdir(target.parent if str(target.parent) else ".")
    except OSError:
        return
    for name in names:  # mkstemp's names: prefix, 8 characters, suffix (and the backup's)
        if ours.fullmatch(name):
            (target.parent / name).unlink(missing_ok=True)


def _default_mode() -> int:
    """The usual mode under the umask (``mkstemp`` would leave it readable by its owner only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _backup(path: Path) -> None:
    bak = path.with_name(path.name + ".bak")
    tmp = path.with_name(f".{path.name}.bak.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copy2(path, tmp)
    try:
        os.replace(tmp, bak)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
