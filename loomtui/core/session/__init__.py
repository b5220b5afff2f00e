"""Sessions on disk: node-link JSON graphs, validated on load and saved atomically.

The format is written by our own code (not ``networkx.node_link_data``) so networkx's changing
defaults cannot change it, and it loads with ``networkx.node_link_graph(data, edges="edges")``.
The node schema is one table (:mod:`.schema`) read by the writer (:mod:`.writer`) and the
validator (:mod:`.reader`); files on disk are handled by :mod:`.files`. This loomtui writes
format version 2 and reads versions 1 and 2. The README documents the format.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from loomtui.core.errors import SessionError
from loomtui.core.session.files import (
    ConflictError,
    FileStamp,
    locked,
    read_regular,
    stamp_of,
    write_atomic,
)
from loomtui.core.session.reader import Invalid, tree_from_json
from loomtui.core.session.schema import FORMAT, NODE_FIELDS, VERSION
from loomtui.core.session.writer import (
    Superseded,
    encode,
    encode_in_steps,
    node_to_json,
    tree_to_json,
)
from loomtui.core.tree import Tree

__all__ = [
    "FORMAT",
    "NODE_FIELDS",
    "VERSION",
    "ConflictError",
    "FileStamp",
    "Superseded",
    "dumps",
    "encode",
    "encode_in_steps",
    "load",
    "load_stamped",
    "loads",
    "locked",
    "node_to_json",
    "save",
    "stamp_of",
    "tree_from_json",
    "tree_to_json",
    "write_bytes",
]

_UNSET: object = object()


def dumps(tree: Tree) -> bytes:
    """The session as UTF-8 JSON bytes (a consistent snapshot: holds the tree's lock)."""
    with _no_gc():
        return encode(tree)


def write_bytes(path: str | os.PathLike[str], data: bytes | list[bytes], *,
                expect: FileStamp | object | None = _UNSET, backup: bool = True) -> FileStamp:
    """Write already-encoded session bytes (see :func:`encode`; or the chunks of
    :func:`encode_in_steps`): atomic, locked, and refused
    with :class:`ConflictError` if the file is not the ``expect``-ed one any more."""
    if expect is _UNSET:
        return write_atomic(path, data, backup=backup)
    return write_atomic(path, data, expect=expect, backup=backup)


def save(tree: Tree, path: str | os.PathLike[str], *, backup: bool = True,
         expect: FileStamp | object | None = _UNSET) -> FileStamp:
    """Write ``tree`` to ``path`` atomically; the previous file is kept as ``PATH.bak``.

    At every instant ``path`` holds either the old complete session or the new one. With
    ``expect`` (the stamp from :func:`load_stamped` or the last save; None for a file that did
    not exist), a file changed by another process meanwhile is not overwritten.
    """
    try:
        data = dumps(tree)
    except ValueError as exc:  # e.g. a lone surrogate, or an integer over 64 bits
        raise SessionError(path, f"cannot save: {exc}") from None
    return write_bytes(path, data, expect=expect, backup=backup)


def loads(text: str | bytes, source: object = "<string>") -> Tree:
    with _no_gc(freeze=True):
        return _loads(text, source)


def _loads(text: str | bytes, source: object) -> Tree:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        try:  # the standard parser says where, in words users know
            json.loads(text)
        except json.JSONDecodeError as std:
            raise SessionError(source, f"not valid JSON: {std.msg} at line {std.lineno} "
                                       f"column {std.colno}") from None
        except (UnicodeDecodeError, RecursionError, ValueError):
            pass
        raise SessionError(source, f"not valid JSON: {str(exc).split(':')[0]}") from None
    try:
        return tree_from_json(data)
    except Invalid as exc:
        raise SessionError(source, str(exc)) from None


def load_stamped(path: str | os.PathLike[str]) -> tuple[Tree, FileStamp]:
    """Read and validate a session file, with the stamp of the file that was read."""
    raw, stamp = read_regular(Path(path))
    return loads(raw, path), stamp


def load(path: str | os.PathLike[str]) -> Tree:
    """Read and validate a session file; any problem is a one-line :class:`SessionError`."""
    return load_stamped(path)[0]


@contextmanager
def _no_gc(freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic GC while a session is parsed or written.

    Parsing builds millions of acyclic lists and objects; with the collector running, its
    repeated full passes made loading superlinear. After a load (``freeze``), the first
    collection would still walk every new object (0.2 s at 10k nodes): ``gc.freeze`` moves
    them out of the collector's sight (they are still freed by reference counting). Saves
    do not freeze, which would keep any garbage cycles of the moment forever.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was:
            gc.enable()
