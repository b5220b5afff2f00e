"""Reading other looms' JSON files, however deeply they nest.

Nested formats (socketteer/loom keeps every child inside its parent) give legal JSON deeper
than the recursive parsers accept (``json.loads`` raises RecursionError near 1,000 levels,
orjson refuses past 1,024). Those are parsed again with ijson's event stream, building the
objects with an explicit stack: no recursion, whatever the depth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson

from loomtui.core import limits
from loomtui.core.errors import SessionError


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A regular file's bytes (up to the session size limit), or a one-line SessionError."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SessionError(path, "no such file") from None
    except OSError as exc:
        raise SessionError(path, f"cannot read: {exc.strerror or exc}") from None
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise SessionError(path, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise SessionError(path, "is not a regular file")
    if st.st_size > limits.session_max_bytes():
        raise SessionError(path, f"is {st.st_size} bytes, more than the "
                                 f"{limits.session_max_bytes()} loomtui reads")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SessionError(path, f"cannot read: {exc.strerror or exc}") from None


def loads(raw: bytes, source: object = "<string>") -> Any:
    """Parse JSON of any nesting depth; NaN and Infinity (as Python's json writes them) are
    accepted here and refused or dropped by the importers. Errors are one-line SessionErrors."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        first = str(exc)
    try:
        return json.loads(raw)
    except RecursionError:
        return _loads_iteratively(raw, source)
    except UnicodeDecodeError:
        raise SessionError(source, "not valid JSON: not UTF-8 text") from None
    except json.JSONDecodeError as std:
        if "recursion" in first.lower():
            return _loads_iteratively(raw, source)
        raise SessionError(source, f"not valid JSON: {std.msg} at line {std.lineno} "
                                   f"column {std.colno}") from None


def _loads_iteratively(raw: bytes, source: object) -> Any:
    import ijson

    stack: list[Any] = []
    keys: list[str | None] = []
    root: list[Any] = []
    key: str | None = None

    def put(value: Any) -> None:
        if not stack:
            root.append(value)
        elif type(stack[-1]) is dict:
            stack[-1][key] = value
        else:
            stack[-1].append(value)

    try:
        for event, value in ijson.basic_parse(raw, use_float=True):
            if event == "map_key":
                key = value
            elif event == "start_map" or event == "start_array":
                container: Any = {} if event == "start_map" else []
                put(container)
                stack.append(container)
                keys.append(key)
            elif event == "end_map" or event == "end_array":
                stack.pop()
                key = keys.pop()
            else:
                put(value)
    except ijson.JSONError as exc:
        raise SessionError(source, f"not valid JSON: {str(exc).splitlines()[0]:.120}") from None
    if len(root) != 1:
        raise SessionError(source, "not valid JSON: no single top-level value")
    return root[0]


def read_json(path: str | os.PathLike[str]) -> Any:
    return loads(read_bytes(path), path)
