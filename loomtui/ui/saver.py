"""Writing a session without holding up the screen.

Serialising a big session is seconds of CPU (40,000 nodes with distributions: tens of MB of
JSON), and ``orjson.dumps`` holds the GIL for all of it, so encoding in one call on a thread
still freezes the event loop. Two ways, chosen by ``LOOMTUI_SAVE`` (the benchmark compares
them):

* ``steps`` (the default): encode a few hundred nodes at a time on the worker thread, holding
  the tree's lock and the GIL for one step only, and waiting between steps while the user is
  pressing keys; a change between steps starts the encoding again (see
  :func:`loomtui.core.session.encode_in_steps`).
* ``thread``: one :func:`loomtui.core.session.encode` call on the worker thread.

Call :func:`write_session` from a thread worker; it blocks until the file is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loomtui.core import session
from loomtui.core.errors import SessionError
from loomtui.core.session import FileStamp
from loomtui.core.tree import Tree

AUTOSAVE_RESTARTS = 2
"""An autosave whose tree changes this many times while it is encoded gives up (the change
schedules another) instead of encoding 40,000 nodes in one step (seconds without the GIL
for the screen)."""


def _encode(path: Path, tree: Tree, pause: Callable[[], None] | None = None,
            steps: bool = False, give_up: bool = False) -> tuple[bytes | list[bytes], int, str]:
    try:
        if steps:
            return session.encode_in_steps(tree, pause=pause, give_up=give_up,
                                           restarts=AUTOSAVE_RESTARTS if give_up else 10)
        with tree.lock:
            return session.encode(tree), tree.revision, tree.selected
    except ValueError as exc:  # an integer over 64 bits, a lone surrogate
        raise SessionError(path, f"cannot save: {exc}") from None


def _write(path: Path, data: bytes | list[bytes], expect: FileStamp | None, check: bool
           ) -> FileStamp:
    """Write, refusing a file changed since ``expect`` unless ``check`` is off (save as, after
    the user said to replace it)."""
    if check:
        return session.write_bytes(path, data, expect=expect)
    return session.write_bytes(path, data)


@dataclass(frozen=True, slots=True)
class Written:
    """A finished save: where, the tree's revision it holds, the file's new identity."""

    path: Path
    revision: int
    selected: str
    stamp: FileStamp


MODES = ("steps", "thread")
"""(A third, encoding in a ``fork()``ed child, measured 2.0x the keys at rest against 1.28x for
steps, and the writer lock cannot be held across a fork: it was removed.)"""


def save_mode() -> str:
    mode = os.environ.get("LOOMTUI_SAVE", "steps")
    if mode not in MODES:
        return "steps"
    return mode


def write_session(tree: Tree, path: Path, expect: FileStamp | None, *, check: bool = True,
                  mode: str | None = None, pause: Callable[[], None] | None = None,
                  autosave: bool = False) -> Written:
    """Snapshot ``tree`` and write it to ``path`` (see :func:`loomtui.core.session.write_bytes`);
    ``pause`` is called between encoding steps (it may wait while the user is busy). An
    ``autosave`` of a tree that keeps changing raises ``session.Superseded`` (nothing written).

    Raises :class:`ConflictError` or :class:`SessionError` with a one-line message."""
    mode = mode or save_mode()
    data, revision, selected = _encode(path, tree, pause, steps=mode == "steps",
                                       give_up=autosave)
    return Written(path, revision, selected, _write(path, data, expect, check))
