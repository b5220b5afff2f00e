"""MiniLoom (minihf's loom): ``{loomTree: {root, nodeStore: {id: {id, parent, children, type,
patch, timestamp, summary, rating, read, ...}}}, focus: {id, ...}}``.

Text is not stored: each ``patch`` is a diff-match-patch patch (as JavaScript serialises it:
``[{diffs: [{"0": op, "1": text}], start1, start2, length1, length2}]``; the patch-text form
is read too) from the parent's full text to the node's. Patches are applied from the root
with the ``diff-match-patch`` package. A patch that edits earlier text makes a node that is
not a continuation of its parent: it is imported as an ``edited`` child of the closest
ancestor whose text is a prefix of its own (its MiniLoom parent stays in ``foreign``).
Modelled: text, structure (``children`` gives the order), ``type`` as the origin,
``timestamp``, ``bookmarked`` (which our writer adds), the focus. Every other field
(``summary``, ``rating``, ``read``, the patch itself, ...) is kept under
``foreign["miniloom"]``.
"""

from __future__ import annotations

from typing import Any

from diff_match_patch import diff_match_patch, patch_obj

from loomtui.core.importers.base import (
    BadInput,
    Dropped,
    Flat,
    Imported,
    assign_ids,
    created_from,
    finish,
    link,
    ref,
    refs,
    show,
)
from loomtui.core.node import Node

NAME = "miniloom"
TITLE = "MiniLoom (minihf loom)"
STRUCTURAL = ("id",)
TYPES = {"root": "prompt", "user": "typed", "gen": "sampled", "rewrite": "edited"}

_dmp = diff_match_patch()


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    lt = data.get("loomTree")
    if isinstance(lt, dict) and isinstance(lt.get("nodeStore"), dict):
        return None
    return "no 'loomTree' with a 'nodeStore'"


def patches_of(value: object, where: str) -> list[Any]:
    """A node's patch as diff-match-patch patch objects (``[]`` for none)."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        try:
            return _dmp.patch_fromText(value)
        except ValueError:
            raise BadInput(f"{where}: patch is not a diff-match-patch patch") from None
    if not isinstance(value, list):
        raise BadInput(f"{where}: patch is not a list of patches")
    out = []
    for p in value:
        if not isinstance(p, dict) or not isinstance(p.get("diffs"), list):
            raise BadInput(f"{where}: a patch has no diffs")
        obj = patch_obj()
        for d in p["diffs"]:
            op, text = (d.get("0"), d.get("1")) if isinstance(d, dict) else (
                (d[0], d[1]) if isinstance(d, list) and len(d) == 2 else (None, None))
            if op not in (-1, 0, 1) or isinstance(op, bool) or not isinstance(text, str):
                raise BadInput(f"{where}: a patch holds a diff that is not [op, text]")
            obj.diffs.append((op, text))
        for k in ("start1", "start2", "length1", "length2"):
            v = p.get(k, 0)
            if v is None:
                v = 0
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadInput(f"{where}: a patch's {k} is not a non-negative integer")
            setattr(obj, k, v)
        out.append(obj)
    return out


def apply(patches: list[Any], text: str, where: str) -> str:
    """``text`` with ``patches`` applied by diff-match-patch's ``patch_apply``.

    The usual patch was made from this very text, so its context sits exactly at its
    ``start2``; for those, patch_apply's result is the text with the patch's new text
    (``diff_text2``) in place of its old (``diff_text1``), which is computed directly (the
    padding and fuzzy search that patch_apply does first cost more than the rest of an
    import). A patch whose context is anywhere else goes to patch_apply itself.
    """
    if not patches:
        return text
    out = text
    for p in patches:
        old = _dmp.diff_text1(p.diffs)
        at = p.start2
        if out[at:at + len(old)] != old:
            break
        out = out[:at] + _dmp.diff_text2(p.diffs) + out[at + len(old):]
    else:
        return out
    try:
        new, ok = _dmp.patch_apply(patches, text)
    except (ValueError, IndexError, TypeError):
        ok = [False]
    if not all(ok):
        raise BadInput(f"{where}: its patch does not apply to its parent's text")
    return new


def read(data: object, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a MiniLoom file: {why}")
    assert isinstance(data, dict)
    store = data["loomTree"]["nodeStore"]
    items = list(store.items())
    ids, keys, pool = assign_ids([k for k, _ in items])
    dropped = Dropped()
    entries: list[Flat] = []
    raws: dict[str, dict[str, Any]] = {}
    for (_, raw), nid, key in zip(items, ids, keys, strict=True):
        where = f"node {show(nid)}"
        if not isinstance(raw, dict):
            raise BadInput(f"{where} is not an object")
        node = Node(id=nid, text="", origin="imported")
        node.foreign[NAME] = {k: v for k, v in raw.items() if k not in STRUCTURAL}
        kind = raw.get("type")
        node.origin = TYPES.get(kind, "imported") if isinstance(kind, str) else "imported"
        node.bookmarked = raw.get("bookmarked") is True
        model = raw.get("model")
        if isinstance(model, str) and model:
            node.model = model
        known = created_from(node, raw.get("timestamp"), dropped)
        entries.append(Flat(key, node, ref(raw, "parent", where), refs(raw, "children", where),
                            known))
        raws[nid] = raw
    if not entries:
        raise BadInput("the nodeStore holds no nodes")
    root = "1" if "1" in store else None
    nodes, kids, root_id, times = link(entries, root=root)
    edited = _texts(nodes, kids, root_id, raws)
    top = kids.get(root_id, [])
    root_text = next(n.text for n in nodes if n.id == root_id)
    if len(top) == 1 and not root_text and raws[top[0]].get("loomtuiRoot") is True:
        # our own writer's empty MiniLoom root above a root that holds a prompt
        i = next(i for i, n in enumerate(nodes) if n.id == root_id)
        del nodes[i], times[i]
        del kids[root_id]
        root_id = top[0]
    tree = finish(nodes, kids, root_id, times)
    tree.root.origin = "prompt"
    _reparent_edits(tree, edited)
    tree.foreign[NAME] = {
        **{k: v for k, v in data.items() if k not in ("loomTree", "focus")},
        "loomTree": {k: v for k, v in data["loomTree"].items() if k not in ("nodeStore", "root")},
    }
    focus = data.get("focus")
    fid = focus.get("id") if isinstance(focus, dict) else None
    if isinstance(fid, str | int) and str(fid) in tree:
        tree.selected = str(fid)
    notes = pool.notes() + dropped.notes()
    if edited:
        notes.append(f"{len(edited)} node(s) edit their parent's text: imported as edited "
                     "forks of the closest ancestor whose text they continue")
    return [Imported(tree, NAME, notes=notes)]


MAX_TEXT_CHARS = 2**30
"""The most characters of full texts an import builds (patches hold each node's full text:
a deep chain costs the square of its depth, so a hostile file could otherwise hang it)."""


def _texts(nodes: list[Node], kids: dict[str, list[str]], root_id: str,
           raws: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Apply patches from the root, setting each node's text to what follows its parent's;
    (node, ancestor) for each node that does not continue its parent's text, the ancestor
    being the closest whose text it continues (its text is set to what follows that one).

    Only the texts of the current path are held, and as few strings as possible: a node
    that continues its parent's text replaces it in ``segs`` (the parent's text is a prefix
    of it), so a path holds one string plus one for each edit along it.
    """
    by_id = {n.id: n for n in nodes}
    edited: list[tuple[str, str]] = []
    segs: list[str] = []
    path: list[tuple[str, int, int]] = []  # (id, length of its full text, index into segs)
    budget = MAX_TEXT_CHARS
    stack: list[tuple[str, int]] = [(root_id, 0)]
    while stack:
        nid, depth = stack.pop()
        del path[depth:]
        if path:
            _, plen, pseg = path[-1]
            del segs[pseg + 1:]
            parent_text = segs[pseg][:plen]
        else:
            segs.clear()
            pseg, parent_text = -1, ""
        raw = raws.get(nid)
        where = f"node {show(nid)}"
        text = parent_text if raw is None else apply(patches_of(raw.get("patch"), where),
                                                     parent_text, where)
        budget -= len(text)
        if budget < 0:
            raise BadInput(f"{where}: the tree's full texts add up to more than "
                           f"{MAX_TEXT_CHARS} characters (too deep or too long to import)")
        node = by_id[nid]
        if text.startswith(parent_text):
            node.text = text[len(parent_text):]
            if pseg >= 0:
                segs[pseg] = text
                seg = pseg
            else:
                segs.append(text)
                seg = 0
        else:
            for anc, alen, aseg in reversed(path[:-1]):  # noqa: B007 (used below)
                if text.startswith(segs[aseg][:alen]):
                    break
            else:
                raise BadInput(f"{where}: its text continues no ancestor's text, not even "
                               "the root's")
            node.text = text[alen:]
            edited.append((nid, anc))
            segs.append(text)
            seg = len(segs) - 1
        path.append((nid, len(text), seg))
        stack.extend((k, depth + 1) for k in reversed(kids.get(nid, ())))
    return edited


def _reparent_edits(tree: Any, edited: list[tuple[str, str]]) -> None:
    """Move each edited node under the ancestor whose text it continues."""
    for nid, anc in edited:
        node = tree.node(nid)
        node.origin = "edited"
        old = tree.parent(nid)
        tree.graph.remove_edge(old, nid)
        tree.graph.add_edge(anc, nid)
        taken = {tree.node(k).created for k in tree.children(anc) if k != nid}
        while node.created in taken:  # among its new siblings, by its own time
            node.created += max(1e-6, abs(node.created) * 4e-16)
