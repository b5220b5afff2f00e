"""JSON output for the writers: fast, and iterative where trees nest (socketteer/loom keeps
each child inside its parent, deeper than recursive encoders go)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; values orjson refuses (integers over 64 bits, lone surrogates)
    fall back to the standard encoder."""
    try:
        return orjson.dumps(obj)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()


def nested(root: str, fields: Callable[[str], dict[str, Any]],
           children: Callable[[str], list[str]], key: str = "children") -> bytes:
    """A tree as nested objects, each node's ``fields(id)`` followed by ``key``: its
    children's objects; built with an explicit stack, so any depth is fine."""
    parts: list[bytes] = []
    stack: list[tuple[int, str]] = [(0, root)]  # 0: open a node, 1: a comma, 2: close
    while stack:
        kind, nid = stack.pop()
        if kind == 1:
            parts.append(b",")
            continue
        if kind == 2:
            parts.append(b"]}")
            continue
        head = dumps(fields(nid))
        parts.append(head[:-1] + (b"," if len(head) > 2 else b"") + dumps(key) + b":[")
        stack.append((2, ""))
        kids = children(nid)
        for i in range(len(kids) - 1, -1, -1):
            stack.append((0, kids[i]))
            if i:
                stack.append((1, ""))
    return b"".join(parts)


def with_field(obj: dict[str, Any], key: str, value_json: bytes) -> bytes:
    """``obj`` as JSON with one more field whose value is already JSON."""
    head = dumps(obj)
    return head[:-1] + (b"," if len(head) > 2 else b"") + dumps(key) + b":" + value_json + b"}"
