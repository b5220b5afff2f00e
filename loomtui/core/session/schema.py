"""The node schema of a session file: one table that the writer and the validator both read.

Each :class:`Field` names a :class:`~loomtui.core.node.Node` attribute (also its JSON key), the
codec that writes and checks it, its default, the format version that introduced it, and
whether the writer leaves it out when it holds its default (the fields of version 2 are written
only where a node uses them, so files stay small and version-1 readers of old files are not
affected). Cross-field rules (one entry per token, offsets inside the text) are in
:mod:`loomtui.core.session.reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FORMAT = "loomtui-session"
VERSION = 2
"""The version this loomtui writes; it reads 1 and 2."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str
    """The codec: see ``reader.DECODERS`` and ``writer.ENCODERS``."""
    default: Callable[[], Any] | None = None
    """None: the field is required."""
    since: int = 1
    omit_default: bool = False


def _none() -> None:
    return None


NODE_FIELDS: tuple[Field, ...] = (
    Field("id", "id"),
    Field("text", "str"),
    Field("origin", "origin"),
    Field("token_ids", "token_ids", _none),
    Field("token_offsets", "token_offsets", _none),
    Field("token_logprobs", "token_logprobs", _none),
    Field("alternatives", "alternatives", _none),
    Field("distribution", "distribution", _none),
    Field("sampler", "sampler", _none),
    Field("seed", "seed", _none),
    Field("model", "model", _none),
    Field("created", "time", lambda: 0.0),
    Field("bookmarked", "bool", lambda: False),
    Field("note", "str", lambda: ""),
    Field("tags", "tags", list),
    Field("token_bytes", "token_bytes", _none, since=2, omit_default=True),
    Field("scores", "scores", dict, since=2, omit_default=True),
    Field("foreign", "foreign", dict, since=2, omit_default=True),
)
"""Every node field, in the order it is written."""

FIELD_NAMES = frozenset(f.name for f in NODE_FIELDS)
