"""The ``loomtui`` command. When it is about to open the app, it starts the model process
first, before the rest of loomtui is imported: that process's torch import is the longest
wait of a launch, and it begins some 0.1 s sooner than if ``cli`` started it."""

from __future__ import annotations

import os
import sys
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


def early_host_threads(argv: Sequence[str]) -> tuple[bool, int | None]:
    """(whether this command line opens the app with its model in a process of its own, the
    ``--threads`` it gives): as ``cli.cmd_open`` decides, without importing it."""
    routed = route(argv)
    if routed is None or routed[0] != "open" or not (is_tty(sys.stdin) and is_tty(sys.stdout)):
        return False, None
    threads = None
    for i, arg in enumerate(routed):
        if arg in ("-h", "--help") or arg == "--engine" or arg.startswith("--engine="):
            return False, None
        value = (arg.partition("=")[2] if arg.startswith("--threads=")
                 else routed[i + 1] if arg == "--threads" and i + 1 < len(routed) else None)
        if value is not None:
            if not value.isdigit():
                return False, None  # the command line is refused: no model is needed
            threads = int(value)
    return True, threads


def is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)  # sys.stdin is None where no stdin was given
    return bool(isatty is not None and isatty())


def main() -> int:
    wanted, threads = early_host_threads(sys.argv[1:])
    if not wanted:
        from loomtui.cli import main as cli_main

        return cli_main()
    from loomtui.backends import host_spawn

    host_spawn.start_early(threads)
    try:
        from loomtui.cli import main as cli_main

        return cli_main()
    finally:  # the command failed before it opened the app (a bad option, say)
        host_spawn.discard()
