"""File-name completion for the open and save-as dialogs (as a shell's tab does)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG

MAX_SCANNED = 5000
"""A directory listing reads at most this many entries (a directory of a million files must
not hang the app); :func:`entries` says when it stopped there."""


@dataclass(frozen=True, slots=True)
class Entry:
    path: Path
    is_dir: bool
    size: int
    mtime: float


def stat(path: Path) -> os.stat_result | None:
    """The file's status, or None for anything the OS refuses (missing, a name too long, no
    permission, a NUL byte): a typed or remembered path must never raise."""
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def is_dir(path: Path) -> bool:
    st = stat(path)
    return st is not None and S_ISDIR(st.st_mode)


def is_file(path: Path) -> bool:
    st = stat(path)
    return st is not None and S_ISREG(st.st_mode)


def split(text: str) -> tuple[Path, str]:
    """The directory a typed path is in, and the partial name after its last slash."""
    expanded = os.path.expanduser(text) if text else ""
    if not expanded:
        return Path("."), ""
    if expanded.endswith(os.sep):
        return Path(expanded), ""
    head, tail = os.path.split(expanded)
    return Path(head or "."), tail


class Listing(list[Entry]):
    """Entries, and whether the directory had more than :data:`MAX_SCANNED` to read."""

    cut: bool = False


def entries(directory: Path, prefix: str = "") -> Listing:
    """Entries of ``directory`` whose names start with ``prefix``: directories first, then
    files, each by name; hidden ones only when the prefix starts with a dot. An unreadable
    directory has none."""
    show_hidden = prefix.startswith(".")
    out = Listing()
    try:
        with os.scandir(directory) as it:
            for scanned, item in enumerate(it):
                if scanned >= MAX_SCANNED:
                    out.cut = True
                    break
                name = item.name
                if not name.startswith(prefix) or (name.startswith(".") and not show_hidden):
                    continue
                try:
                    is_dir = item.is_dir()
                    st = item.stat()
                except OSError:
                    continue
                out.append(Entry(Path(directory) / name, is_dir, st.st_size, st.st_mtime))
    except (OSError, ValueError):
        return Listing()
    out.sort(key=lambda e: (not e.is_dir, e.path.name.lower()))
    return out


def complete(text: str) -> tuple[str, list[Entry]]:
    """Tab on ``text``: the text extended by the longest common prefix of the names it could
    mean (a lone directory gets its slash), and those entries."""
    directory, prefix = split(text)
    found = entries(directory, prefix)
    if not found or found.cut:  # a cut listing may miss a name: complete nothing
        return text, list(found)
    common = os.path.commonprefix([e.path.name for e in found])  # noqa: RUF071 (by character)
    if len(found) == 1 and found[0].is_dir:
        common += os.sep
    if len(common) <= len(prefix):
        return text, found
    return text + common[len(prefix):], found
