"""socketteer/loom (the Python/Tkinter Loom) JSON trees.

Accepted shapes: a full save (``{"root": {...}, "selected_node_id": ..., "model_responses":
..., "chapters": ...}``) and a bare node (``{"text": ..., "children": [...]}``). Children nest
inside their parents (the nesting decides, not ``parent_id``). Kept and modelled: ids, text,
order of children, the ``bookmark`` tag (or ``bookmark: true``) as our bookmark, other tags,
``note``, creation times (``created`` or ``meta.creation_timestamp``), ``meta.source`` as the
origin, and each generated node's per-token log-probabilities and top-k alternatives (keyed
by text, so ids are None) from ``model_responses[generation.id].completions[index]``, under
the model that made them. Everything else (chapters, memories, tag definitions, settings, the
responses themselves, each node's other fields) is kept under ``foreign["pyloom"]``.
"""

from __future__ import annotations

import ast
import os
from typing import Any

from loomtui.core.errors import SessionError
from loomtui.core.importers.base import (
    BadInput,
    Dropped,
    IdPool,
    Imported,
    epoch_seconds,
    finish,
    logprob,
    show,
    string_ids,
)
from loomtui.core.importers.jsonfile import read_json
from loomtui.core.node import Alternatives, Node
from loomtui.core.tree import Tree

NAME = "pyloom"
TITLE = "socketteer/loom"
STRUCTURAL = ("id", "text", "children")
"""Node fields written from the tree itself; every other field is kept in ``foreign``."""

SOURCES = {"AI": "sampled", "prompt": "typed", "mixed": "edited"}
ORIGIN_SOURCES = {"sampled": "AI", "typed": "prompt", "prompt": "prompt", "edited": "mixed"}


def fits(data: object) -> str | None:
    """None if ``data`` is a socketteer/loom tree, else why not."""
    if not isinstance(data, dict):
        return "the top level is not an object"
    root = data.get("root")
    if isinstance(root, dict):
        return None if ("text" in root or "children" in root) else \
            "'root' has no 'text' or 'children'"
    if isinstance(data.get("children"), list) or (
            "text" in data and not {"nodes", "loomTree", "state", "roots"} & data.keys()):
        return None
    return "no 'root' and no node with 'text'/'children'"


_NO_META: dict[str, Any] = {}


def meta_of(raw: dict[str, Any]) -> dict[str, Any]:
    """A node's ``meta``: an object, or the Python repr of one (as the demo file has it)."""
    meta = raw.get("meta")
    if type(meta) is dict:
        return meta
    if meta is None:
        return _NO_META
    if isinstance(meta, str) and len(meta) < 10_000 and meta.startswith("{"):
        try:
            parsed = ast.literal_eval(meta)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def fields_of(raw: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The modelled fields a node's raw fields give (the writer compares with these to tell
    whether a kept field still says what the node says)."""
    tags = raw.get("tags")
    if not tags:
        tags, bookmarked = [], False
    elif type(tags) is list:
        tags = [t if type(t) is str else str(t) for t in tags]
        bookmarked = "bookmark" in tags
        if bookmarked:
            tags = [t for t in tags if t != "bookmark"]
    else:
        tags, bookmarked = [], False
    note = raw.get("note", "")
    source = (meta if meta is not None else meta_of(raw)).get("source")
    return {
        "tags": tags, "bookmarked": bookmarked or raw.get("bookmark") is True,
        "note": note if type(note) is str else "",
        "origin": SOURCES.get(source, "imported") if type(source) is str else "imported",
    }


def origin_of(fields: dict[str, Any], is_root: bool) -> str:
    return "prompt" if is_root else fields["origin"]


def _all_ids(root: dict[str, Any]) -> set[str]:
    out: list[object] = []
    stack: list[object] = [root]
    while stack:
        raw = stack.pop()
        if isinstance(raw, dict):
            out.append(raw.get("id"))
            kids = raw.get("children")
            if isinstance(kids, list):
                stack.extend(kids)
    return string_ids(out)


def import_pyloom(data: object) -> Tree:
    """Build a tree from a parsed socketteer/loom document; ``ValueError`` if not one."""
    return read(data)[0].tree


def read(data: object, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a loom tree: {why}")
    assert isinstance(data, dict)
    root_raw = data["root"] if isinstance(data.get("root"), dict) else data
    pool = IdPool(_all_ids(root_raw))
    dropped = Dropped()
    responses = data.get("model_responses") if isinstance(data.get("model_responses"),
                                                          dict) else {}
    unscored = 0
    nodes: list[Node] = []
    times: list[bool] = []
    kids: dict[str, list[str]] = {}
    stack: list[tuple[object, str | None]] = [(root_raw, None)]
    while stack:
        raw, parent = stack.pop()
        if not isinstance(raw, dict):
            raise BadInput(f"a child of node {show(parent)} is not an object")
        nid = pool.claim(raw.get("id"))
        text = raw.get("text", "")
        if type(text) is not str:
            raise BadInput(f"node {show(nid)}: text is not a string")
        meta = meta_of(raw)
        f = fields_of(raw, meta)
        node = Node(id=nid, text=text, origin=origin_of(f, parent is None),
                    bookmarked=f["bookmarked"], note=f["note"], tags=f["tags"])
        kept = raw.copy()
        for k in STRUCTURAL:
            kept.pop(k, None)
        node.foreign[NAME] = kept
        created = raw.get("created")
        t = epoch_seconds(created if created is not None else meta.get("creation_timestamp"))
        if created is not None and t is None:
            dropped.add("creation times that are not a time", f"node {show(nid)}")
        if t is not None:
            node.created = t
        gen = raw.get("generation")
        if isinstance(gen, dict) and responses and not _scores(node, gen, responses, dropped):
            unscored += 1
        nodes.append(node)
        times.append(t is not None)
        if parent is not None:
            kids.setdefault(parent, []).append(nid)
        children = raw.get("children") or []
        if type(children) is not list:
            raise BadInput(f"node {show(nid)}: children is not a list")
        stack.extend((k, nid) for k in reversed(children))
    tree = finish(nodes, kids, nodes[0].id, times)
    tree.foreign[NAME] = {} if root_raw is data else {
        k: v for k, v in data.items() if k not in ("root", "selected_node_id")}
    selected = data.get("selected_node_id")
    if isinstance(selected, str) and selected in tree:
        tree.selected = selected
    notes = pool.notes() + dropped.notes()
    if unscored:
        notes.append(f"{unscored} generated node(s) keep no token scores: their text no "
                     "longer matches the model's tokens (edited), or the response is missing")
    return [Imported(tree, NAME, notes=notes)]


def _scores(node: Node, gen: dict[str, Any], responses: dict[str, Any],
            dropped: Dropped) -> bool:
    """Put the per-token scores of ``node``'s generation on it; whether there were any."""
    rid = gen.get("id")
    resp = responses.get(rid) if isinstance(rid, str) else None
    index = gen.get("index", 0)
    if not isinstance(resp, dict) or isinstance(index, bool) or not isinstance(index, int):
        return False
    completions = resp.get("completions")
    if not isinstance(completions, list) or not 0 <= index < len(completions):
        return False
    completion = completions[index]
    tokens = completion.get("tokens") if isinstance(completion, dict) else None
    if not isinstance(tokens, list) or not tokens:
        return False
    where = f"node {show(node.id)}"
    texts: list[str] = []
    lps: list[float | None] = []
    alts = Alternatives()
    for tok in tokens:
        gt = tok.get("generatedToken") if isinstance(tok, dict) else None
        if not isinstance(gt, dict) or not isinstance(gt.get("token"), str):
            return False
        texts.append(gt["token"])
        lp = logprob(gt.get("logprob"))
        if lp is None and gt.get("logprob") is not None:
            dropped.add("log-probabilities out of range", where)
        lps.append(lp)
        cf = tok.get("counterfactuals")
        row: list[tuple[str, float]] = []
        if isinstance(cf, dict):
            for t, v in cf.items():
                clp = logprob(v)
                if clp is None:
                    dropped.add("alternatives with a log-probability out of range", where)
                else:
                    row.append((t, clp))
            row.sort(key=lambda item: -item[1])
        alts.ids.append([None] * len(row))
        alts.texts.append([t for t, _ in row])
        alts.logprobs.append([v for _, v in row])
    if "".join(texts) != node.text:
        return False
    offsets = []
    pos = 0
    for t in texts:
        offsets.append(pos)
        pos += len(t)
    node.token_offsets = offsets
    node.token_logprobs = lps
    node.alternatives = alts if any(alts.texts) else None
    model = resp.get("model")
    node.model = model if isinstance(model, str) and model else "unknown"
    return True


def load_pyloom(path: str | os.PathLike[str]) -> Tree:
    """Read a socketteer/loom JSON file; problems are a one-line :class:`SessionError`."""
    data = read_json(path)
    try:
        return import_pyloom(data)
    except ValueError as exc:
        raise SessionError(path, str(exc)) from None
