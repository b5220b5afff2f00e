"""File-name completion for the open and save-as dialogs (as a shell's tab does)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_ENTRIES = 2000
"""A directory listing stops here (a directory of a million files must not hang the app)."""


@dataclass(frozen=True, slots=True)
class Entry:
    path: Path
    is_dir: bool
    size: int
    mtime: float


def split(text: str) -> tuple[Path, str]:
    """The directory a typed path is in, and the partial name after its last slash."""
    expanded = os.path.expanduser(text) if text else ""
    if not expanded:
        return Path("."), ""
    if expanded.endswith(os.sep):
        return Path(expanded), ""
    head, tail = os.path.split(expanded)
    return Path(head or "."), tail


def entries(directory: Path, prefix: str = "", *, hidden: bool = False) -> list[Entry]:
    """Entries of ``directory`` whose names start with ``prefix``: directories first, then
    files, each by name; hidden ones only when asked for or when the prefix starts with a dot.
    An unreadable directory has none."""
    show_hidden = hidden or prefix.startswith(".")
    out: list[Entry] = []
    try:
        with os.scandir(directory) as it:
            for item in it:
                if len(out) >= MAX_ENTRIES:
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
    except OSError:
        return []
    out.sort(key=lambda e: (not e.is_dir, e.path.name.lower()))
    return out


def complete(text: str) -> tuple[str, list[Entry]]:
    """Tab on ``text``: the text extended by the longest common prefix of the names it could
    mean (a lone directory gets its slash), and those entries."""
    directory, prefix = split(text)
    found = entries(directory, prefix)
    if not found:
        return text, []
    common = os.path.commonprefix([e.path.name for e in found])  # noqa: RUF071 (by character)
    if len(found) == 1 and found[0].is_dir:
        common += os.sep
    if len(common) <= len(prefix):
        return text, found
    return text + common[len(prefix):], found
