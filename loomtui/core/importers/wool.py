"""wool ``tree_state.json``: ``{nodes: {id: {parent_id, text, model, temperature, ...}},
focused_node_id}``.

Modelled: text, structure (children in file order), the model, sampler settings
(temperature, max_tokens, top_p where stored and in range), creation times, the focused node.
Every other field is kept under ``foreign["wool"]``.
"""

from __future__ import annotations

from typing import Any

from loomtui.core.importers.base import (
    Dropped,
    FlatSpec,
    Imported,
    created_from,
    key_of,
    model_and_sampler,
    read_flat,
)
from loomtui.core.node import Node

NAME = "wool"
TITLE = "wool"
SPEC = FlatSpec(NAME, "text", "parent_id", None, ("text", "parent_id"))
SAMPLER = {"temperature": "temperature", "max_tokens": "max_tokens", "top_p": "top_p"}


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    if isinstance(data.get("nodes"), dict) and "focused_node_id" in data:
        return None
    return "no 'nodes' object with a 'focused_node_id'"


def fill(node: Node, raw: dict[str, Any], dropped: Dropped) -> bool:
    model_and_sampler(node, raw, SAMPLER)
    node.bookmarked = raw.get("bookmarked") is True
    return created_from(node, raw.get("created_at", raw.get("timestamp")), dropped)


def read(data: object, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a wool tree: {why}")
    assert isinstance(data, dict)
    tree, notes = read_flat(list(data["nodes"].items()), SPEC, fill, synthetic_root=True)
    tree.foreign[NAME] = {k: v for k, v in data.items() if k not in ("nodes", "focused_node_id")}
    focused = key_of(data.get("focused_node_id"))
    if focused is not None and focused in tree:
        tree.selected = focused
    return [Imported(tree, NAME, notes=notes)]
