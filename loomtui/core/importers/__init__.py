"""Importers: trees written by other looms, turned into loomtui trees.

One module per format, each with ``NAME``, ``TITLE``, ``fits(data)`` (None if the parsed
document is of that format, else why not) and ``read(data, **options)`` (a list of
:class:`Imported`, one per tree or note). :func:`import_file` detects the format from the
content (``fmt`` forces one) and turns every problem into a one-line :class:`SessionError`.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from types import ModuleType

from loomtui.core.errors import SessionError
from loomtui.core.importers import (
    basemode,
    bonsai,
    exoloom,
    helm,
    logitloom,
    loomsidian,
    miniloom,
    pyloom,
    wool,
)
from loomtui.core.importers.base import BadInput, Imported
from loomtui.core.importers.jsonfile import loads, read_bytes
from loomtui.core.importers.pyloom import import_pyloom, load_pyloom

READERS: dict[str, ModuleType] = {m.NAME: m for m in (
    logitloom, exoloom, miniloom, loomsidian, basemode, helm, wool, bonsai, pyloom)}
"""Every format, in the order detection tries them (the most specific marks first)."""

FORMATS = tuple(sorted(READERS))

__all__ = ["FORMATS", "READERS", "BadInput", "Imported", "detect", "import_file",
           "import_pyloom", "load_pyloom", "safe_name", "session_paths"]


def safe_name(name: str) -> str:
    """A tree's or note's name from a file, as a file name (no directories, no controls)."""
    import re

    base = re.sub(r"[^\w.\- ]+", "_", name).strip(" .") or "tree"
    return base[:100]


def session_paths(src: Path, results: list[Imported], directory: Path | None = None
                  ) -> list[Path]:
    """Where the sessions of an import go: ``NAME.loomtui.json`` in ``directory`` (default:
    beside the original), NAME being the tree's or note's name where the file holds several
    (or one was picked), else the original's name."""
    where = directory if directory is not None else src.parent
    named = len(results) > 1 or any(r.name for r in results)
    names = [r.name if named and r.name else src.name.split(".")[0] or "imported"
             for r in results]
    return [where / f"{safe_name(n)}.loomtui.json" for n in names]


def detect(data: object) -> tuple[str | None, dict[str, str]]:
    """(the first format ``data`` fits, or None; why each format tried does not fit)."""
    why: dict[str, str] = {}
    for name, mod in READERS.items():
        reason = mod.fits(data)
        if reason is None:
            return name, why
        why[name] = reason
    return None, why


def import_file(path: str | os.PathLike[str], fmt: str | None = None, *,
                tree: str | None = None, note: str | None = None) -> list[Imported]:
    """Read another loom's file (never writing it). ``fmt`` forces a format; ``tree`` picks
    one basemode-loom tree, ``note`` one loomsidian note. Any problem: SessionError.

    The cyclic garbage collector is paused meanwhile: importing builds millions of acyclic
    objects next to the parsed file, and its repeated passes over them made imports
    superlinear (as :mod:`loomtui.core.session` does for loading)."""
    was = gc.isenabled()
    gc.disable()
    try:
        return _import_file(Path(path), fmt, tree, note)
    finally:
        if was:
            gc.enable()


def _import_file(path: Path, fmt: str | None, tree: str | None, note: str | None
                 ) -> list[Imported]:
    if fmt is not None and fmt not in READERS:
        raise SessionError(path, f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    if path.suffix == ".tapestry":
        raise SessionError(path, "Tapestry-Loom .tapestry files (rkyv binary archives) are "
                                 "out of scope; loomtui cannot read them")
    raw = read_bytes(path)
    if basemode.is_sqlite(raw[:16]):
        if fmt not in (None, basemode.NAME):
            raise SessionError(path, f"an SQLite database, not a {fmt} file")
        return basemode.read_sqlite(path, tree=tree)
    data = loads(raw, path)
    if fmt is None:
        fmt, why = detect(data)
        graph = data.get("graph") if isinstance(data, dict) else None
        if fmt is None and isinstance(graph, dict) and graph.get("format") == "loomtui-session":
            raise SessionError(path, "is a loomtui session already: open it, no import needed")
        if fmt is None:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in why.items())
            raise SessionError(path, f"no known loom format ({reasons})")
    else:
        reason = READERS[fmt].fits(data)
        if reason is not None:
            raise SessionError(path, f"not a {READERS[fmt].TITLE} file: {reason}")
    try:
        return READERS[fmt].read(data, tree=tree, note=note)
    except ValueError as exc:  # BadInput included
        raise SessionError(path, str(exc).splitlines()[0] if str(exc) else "bad input") from None
    except RecursionError:
        raise SessionError(path, "nested too deeply") from None
