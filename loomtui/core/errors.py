"""Errors the domain raises; each carries a one-line message meant for the user."""

from __future__ import annotations


class LoomError(Exception):
    """A problem the user can act on; ``str()`` is one line, with no traceback needed."""


class SessionError(LoomError):
    """A session file that cannot be read or written; the message names the file."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TreeError(LoomError):
    """An operation that does not apply to the tree as it is (unknown node, bad index...)."""


class ModelError(LoomError):
    """A model that cannot be found, loaded or run."""
