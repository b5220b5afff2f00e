"""socketteer/loom JSON: ``{root: {id, text, children, parent_id, meta, tags, generation,
...}, selected_node_id, chapters, model_responses, ...}``.

Fields kept from an imported socketteer/loom file are written back as they were where the
node still says the same (tags, note, ``meta.source``, creation time); ``chapters`` and
``selected_node_id`` are always written (Tapestry's importer requires them). A node scored
by a model gets a ``generation: {id, index}`` pointing into ``model_responses``, whose
completion's ``tokens`` hold ``generatedToken {token, logprob}``, ``position {start, end}``
and ``counterfactuals {token text: logprob}``, as socketteer/loom reads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loomtui.core.exporters.jsonout import dumps, nested, with_field
from loomtui.core.importers import pyloom as reader
from loomtui.core.importers.base import epoch_seconds
from loomtui.core.node import Node
from loomtui.core.tree import Tree

NAME = "pyloom"
SOURCES = {"sampled": "AI", "picked": "AI", "typed": "prompt", "prompt": "prompt",
           "edited": "mixed"}


def write(tree: Tree) -> bytes:
    top: dict[str, Any] = dict(tree.foreign.get(NAME, {}))
    kept = top.get("model_responses")
    responses: dict[str, Any] = dict(kept) if isinstance(kept, dict) else {}

    def fields(nid: str) -> dict[str, Any]:
        parent = tree.parent(nid)

        def prompt() -> str:
            return tree.context_text(parent) if parent is not None else ""

        return node_fields(tree.node(nid), parent, prompt, responses)

    root = nested(tree.root_id, fields, tree.children)
    top.setdefault("chapters", {})
    if responses or isinstance(kept, dict):
        top["model_responses"] = responses
    top["selected_node_id"] = tree.selected
    return with_field(top, "root", root)


def node_fields(node: Node, parent: str | None, prompt: Callable[[], str],
                responses: dict[str, Any]) -> dict[str, Any]:
    """A node's fields (children apart): those kept from the file, updated where the node
    changed."""
    raw: dict[str, Any] = dict(node.foreign.get(NAME, {}))
    new = NAME not in node.foreign
    was = reader.fields_of(raw)
    out: dict[str, Any] = {"id": node.id, "text": node.text}
    if was["tags"] != node.tags or was["bookmarked"] != node.bookmarked:
        raw["tags"] = [*node.tags, *(["bookmark"] if node.bookmarked else [])]
        if "bookmark" in raw:
            raw["bookmark"] = node.bookmarked
    if was["note"] != node.note:
        raw["note"] = node.note
    if parent is not None:
        if "parentId" in raw:
            raw["parentId"] = parent
        elif "parent_id" in raw or new:
            raw["parent_id"] = parent
    meta = None
    if reader.origin_of(was, parent is None) != node.origin and node.origin in SOURCES:
        meta = dict(reader.meta_of(raw))
        meta["source"] = SOURCES[node.origin]
    had = raw.get("created")
    old_t = epoch_seconds(had) if had is not None else \
        epoch_seconds(reader.meta_of(raw).get("creation_timestamp"))
    # an imported node keeps the time its file gave (or none); a new one gets its own
    if new and node.created > 1e6:
        meta = meta if meta is not None else dict(reader.meta_of(raw))
        meta["creation_timestamp"] = datetime.fromtimestamp(node.created, UTC).strftime(
            "%Y-%m-%d-%H.%M.%S")
    elif old_t is not None and abs(old_t - node.created) > 1.0 and "created" in raw:
        raw["created"] = node.created
    if meta is not None:
        raw["meta"] = meta
    gen = raw.get("generation")
    if not (isinstance(gen, dict) and isinstance(gen.get("id"), str)
            and gen["id"] in responses):
        response = response_of(node, prompt)
        if response is not None:
            rid = f"loomtui-{node.id}"
            while rid in responses:
                rid += "-"
            response["id"] = rid
            responses[rid] = response
            raw["generation"] = {"id": rid, "index": 0}
    out.update((k, v) for k, v in raw.items() if k not in reader.STRUCTURAL)
    return out


def response_of(node: Node, prompt: Callable[[], str]) -> dict[str, Any] | None:
    """A model response holding ``node``'s per-token scores as socketteer/loom stores them,
    or None if the node has no complete scores."""
    offs, lps = node.token_offsets, node.token_logprobs
    if not offs or lps is None or offs[0] != 0 or any(lp is None for lp in lps):
        return None
    pieces = node.pieces()
    alts = node.alternatives
    tokens = []
    for i, (start, piece) in enumerate(zip(offs, pieces, strict=True)):
        cf: dict[str, float] = {}  # never null: socketteer/loom copies it when changing a token
        if alts is not None and i < len(alts):
            for text, lp in zip(alts.texts[i], alts.logprobs[i], strict=True):
                cf.setdefault(text, lp)
        tokens.append({"generatedToken": {"token": piece, "logprob": lps[i]},
                       "position": {"start": start, "end": start + len(piece)},
                       "counterfactuals": cf})
    return {
        "id": "", "model": node.model or "unknown",
        "timestamp": time.strftime("%Y-%m-%d-%H.%M.%S", time.gmtime(node.created))
        if node.created > 1e6 else None,
        "prompt": {"text": prompt(), "tokens": None},
        "completions": [{"text": node.text, "finishReason": None, "tokens": tokens}],
    }


__all__ = ["dumps", "write"]
