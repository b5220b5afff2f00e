"""MiniLoom (minihf's loom): ``{loomTree: {root, nodeStore}, focus}``, each node's text as a
diff-match-patch patch from its parent's full text, made with the ``diff-match-patch``
package and serialised as MiniLoom's JavaScript does (``{diffs: [{"0": op, "1": text}],
start1, start2, length1, length2}``).

MiniLoom's root (id ``"1"``) has no text of its own: a tree whose root holds a prompt is
written under an empty MiniLoom root, its root marked ``loomtuiRoot`` so that importing the
file gives the same tree back. Ids are MiniLoom's own numbering (``"1"``..``"N"``, so its
next node id is free) unless the tree already uses it. Bookmarks are written as
``bookmarked: true``. Fields kept from an imported MiniLoom file are written back as they were
where the node still says the same (its patch, when it still gives the node's text).
"""

from __future__ import annotations

from typing import Any

from diff_match_patch import diff_match_patch

from loomtui.core.exporters.jsonout import dumps
from loomtui.core.importers import miniloom as reader
from loomtui.core.importers.base import BadInput, epoch_seconds
from loomtui.core.tree import Tree

NAME = "miniloom"
TYPES = {"prompt": "user", "typed": "user", "imported": "user", "sampled": "gen",
         "picked": "gen", "edited": "rewrite"}

_dmp = diff_match_patch()


def patch_json(before: str, after: str) -> list[dict[str, Any]] | str:
    """The patch from ``before`` to ``after`` as MiniLoom stores it ("" for no change)."""
    if before == after:
        return ""
    return [{"diffs": [{"0": op, "1": text} for op, text in p.diffs],
             "start1": p.start1, "start2": p.start2,
             "length1": p.length1, "length2": p.length2}
            for p in _dmp.patch_make(before, after)]


def _gives(patch: object, before: str, after: str) -> bool:
    try:
        return reader.apply(reader.patches_of(patch, ""), before, "") == after
    except BadInput:
        return False


def _numbering(tree: Tree, wrap: bool) -> dict[str, str]:
    order = [nid for nid, _ in tree.iter_preorder()]
    if not wrap and tree.root_id == "1" and set(order) == {str(i) for i in
                                                          range(1, len(order) + 1)}:
        return {n: n for n in order}
    first = 2 if wrap else 1
    return {n: str(i) for i, n in enumerate(order, first)}


def _miniloom_parent(tree: Tree, nid: str, parent: str, raw: dict[str, Any]) -> str:
    """The parent a node had in MiniLoom: its kept ``parent`` (the importer keeps MiniLoom's
    ids) where that is a descendant of its parent here (an edited node was moved up to the
    ancestor it continues)."""
    orig = raw.get("parent")
    orig_id = str(orig) if isinstance(orig, str | int) and not isinstance(orig, bool) else None
    if orig_id is None or orig_id in (parent, nid) or orig_id not in tree:
        return parent
    anc: str | None = orig_id
    while anc is not None and anc != parent:
        if anc == nid:
            return parent
        anc = tree.parent(anc)
    return orig_id if anc == parent else parent


def write(tree: Tree) -> bytes:
    root = tree.root
    wrap = bool(root.text) or bool(root.foreign.get(NAME, {}).get("loomtuiRoot"))
    ids = _numbering(tree, wrap)
    store: dict[str, dict[str, Any]] = {}
    kids: dict[str, list[str]] = {}
    if wrap:
        store["1"] = {"id": "1", "timestamp": 0, "type": "root",
                      "patch": "", "summary": "Root Node", "rating": None, "read": True,
                      "parent": None, "children": []}
    # Full texts are held for the current path only: ``cur`` is the last node's, and every
    # node on the path has a prefix of it (a deep chain would need the square of its depth).
    cur = ""
    lens: list[int] = []
    for nid, depth in tree.iter_preorder():
        node = tree.node(nid)
        parent = tree.parent(nid)
        del lens[depth:]
        parent_text = cur[:lens[-1]] if lens else ""
        cur = parent_text + node.text
        lens.append(len(cur))
        raw: dict[str, Any] = dict(node.foreign.get(NAME, {}))
        if parent is None:
            mparent_id = "1" if wrap else None
            before = ""
        else:
            mp = _miniloom_parent(tree, nid, parent, raw)
            mparent_id = ids[mp]
            before = parent_text if mp == parent else tree.context_text(mp)
        out: dict[str, Any] = {"id": ids[nid]}
        out.update(raw)
        if not (("patch" in raw) and _gives(raw["patch"], before, cur)):
            out["patch"] = patch_json(before, cur)
        kind = raw.get("type")
        was = reader.TYPES.get(kind, "imported") if isinstance(kind, str) else "imported"
        if parent is None and not wrap:
            out["type"] = "root"
        elif was != node.origin or "type" not in raw:
            out["type"] = TYPES.get(node.origin, "user")
        ts = epoch_seconds(raw.get("timestamp"))
        if "timestamp" not in raw or (
                node.created > 1e6 and (ts is None or abs(ts - node.created) > 0.01)):
            out["timestamp"] = int((node.created if node.created > 1e6 else tree.created) * 1000)
        if (raw.get("bookmarked") is True) != node.bookmarked:
            out["bookmarked"] = node.bookmarked
        if node.model and "model" not in raw:
            out["model"] = node.model
        out.setdefault("summary", node.text.strip()[:40] or "New Node")
        out.setdefault("rating", None)
        out.setdefault("read", True)
        if parent is None and wrap:
            out["loomtuiRoot"] = True
        out["parent"] = mparent_id
        store[ids[nid]] = out
        if mparent_id is not None:
            kids.setdefault(mparent_id, []).append(ids[nid])
    if wrap:
        store["1"]["timestamp"] = store["2"]["timestamp"]
    for mid, node_out in store.items():
        mine = kids.get(mid, [])
        kept = node_out.get("children")
        node_out["children"] = kept if isinstance(kept, list) and sorted(
            map(str, kept)) == sorted(mine) else mine
    top: dict[str, Any] = dict(tree.foreign.get(NAME, {}))
    lt = dict(top.pop("loomTree", {}) or {})
    lt["root"] = store["1"]
    lt["nodeStore"] = store
    top["loomTree"] = lt
    top["focus"] = store[ids[tree.selected]]
    return dumps(top)


__all__ = ["patch_json", "write"]
