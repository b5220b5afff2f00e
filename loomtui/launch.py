"""The ``loomtui`` command. When it is about to open the app, it starts the model process
first, before the rest of loomtui is imported: that process's torch import is the longest
wait of a launch, and it begins some 0.1 s sooner than if ``cli`` started it."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from loomtui.command_line import is_tty, route


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


def main() -> int:
    from loomtui.backends import host_spawn

    wanted, threads = early_host_threads(sys.argv[1:])
    if wanted:
        host_spawn.start_early(threads)
    try:
        from loomtui.cli import main as cli_main

        return cli_main()
    finally:  # started, and the command failed before it opened the app (a bad option, say)
        host_spawn.discard()
