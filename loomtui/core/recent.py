"""The sessions a user opened or saved lately, newest first, kept in a small JSON file in the
user's state directory (``$LOOMTUI_STATE`` overrides it). The file is untrusted like any other:
a missing, broken or hostile one reads as an empty list and is only ever replaced whole
(atomically, under the writer lock, merged with what another loomtui process added meanwhile).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from loomtui.core.errors import SessionError
from loomtui.core.session.files import locked, read_regular, write_atomic

KEEP = 20
"""How many files the list keeps."""
MAX_BYTES = 256 * 1024


def state_dir() -> Path:
    from platformdirs import user_state_dir

    return Path(os.environ.get("LOOMTUI_STATE") or user_state_dir("loomtui"))


def recent_path() -> Path:
    return state_dir() / "recent.json"


def read_recent(path: Path | None = None) -> list[Path]:
    """The remembered files, newest first (entries that are not absolute paths are dropped)."""
    path = path or recent_path()
    try:
        data, _ = read_regular(path, MAX_BYTES)
        items = json.loads(data)
    except (SessionError, ValueError, RecursionError):
        return []
    if not isinstance(items, list):
        return []
    out: list[Path] = []
    for item in items[:KEEP]:
        if isinstance(item, str) and 0 < len(item) <= 4096 and "\0" not in item:
            p = Path(item)
            if p.is_absolute() and p not in out:
                out.append(p)
    return out


def remember(file: str | os.PathLike[str], path: Path | None = None) -> None:
    """Put ``file`` first in the list. Never raises: the list is a convenience, and a state
    directory that cannot be written must not stop a session being opened or saved."""
    path = path or recent_path()
    entry = Path(os.path.abspath(file))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path):
            items = [entry] + [p for p in read_recent(path) if p != entry]
            data = json.dumps([str(p) for p in items[:KEEP]], indent=0).encode()
            write_atomic(path, data, backup=False)
    except (SessionError, OSError):
        pass
