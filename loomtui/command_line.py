"""The command line's first word and the terminal, with the standard library only: the
launcher (``loomtui.launch``) reads them before the rest of loomtui is imported."""

from __future__ import annotations

import os
from collections.abc import Sequence

COMMANDS = ("open", "show", "tree", "import", "export", "new", "expand", "pick", "type", "branch",
            "edit", "split", "merge", "delete", "note", "bookmark", "select", "search", "grow",
            "bench", "models", "compare")


def route(argv: Sequence[str]) -> list[str] | None:
    """The command line with its command: ``loomtui [SESSION] [options]`` opens the app; None
    when the first word is neither a command nor a session."""
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        return ["open", *argv]
    first = argv[0]
    if first in COMMANDS or first in ("-h", "--help", "--version"):
        return argv
    if first.endswith(".json") or os.sep in first or os.path.exists(first):
        return ["open", *argv]
    return None


def is_tty(stream: object) -> bool:
    """``stream.isatty()``, False where there is no stream (``sys.stdin`` is None when the
    process was started with its standard input closed)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())
