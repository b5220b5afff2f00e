"""loomsidian (the Obsidian plugin ``loom``): ``.obsidian/plugins/loom/data.json``.

``{settings, state: {NOTE_PATH: {current, hoisted, nodes: {uuid: {text, parentId,
bookmarked, collapsed, unread, lastVisited}}}}}``: one tree per note. There is no children
array: a node's children are the nodes whose ``parentId`` names it, in insertion order. Also
read: one NoteState on its own (the single-note export) and the older variant whose
``nodes`` is a list of ``{id, value, parentId, ...}``. ``settings`` holds API keys: it is
never read and never copied. Modelled: text, structure, ``bookmarked``, ``current`` (the
selection); kept under ``foreign["loomsidian"]``: every other field (``hoisted``,
``collapsed``, ``unread``, ``lastVisited``, ...).
"""

from __future__ import annotations

from typing import Any

from loomtui.core.importers.base import BadInput, FlatSpec, Imported, read_flat, show
from loomtui.core.node import Node

NAME = "loomsidian"
TITLE = "loomsidian (Obsidian loom)"
SPEC = FlatSpec(NAME, "text", "parentId", None, ("text", "value", "parentId", "id"))


def _is_note(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), dict | list) and (
        "current" in data or "hoisted" in data)


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    state = data.get("state")
    if isinstance(state, dict) and state and all(_is_note(v) for v in state.values()):
        return None
    if _is_note(data):
        return None
    return "no 'state' of notes and no note with 'nodes' and 'current'"


def fill(node: Node, raw: dict[str, Any], dropped: Any) -> bool:
    if "text" not in raw and isinstance(raw.get("value"), str):
        node.text = raw["value"]
    node.bookmarked = raw.get("bookmarked") is True
    return False


def read_note(note: dict[str, Any], name: str | None) -> Imported:
    nodes = note.get("nodes")
    if isinstance(nodes, dict):
        items: list[tuple[object, object]] = list(nodes.items())
    elif isinstance(nodes, list):
        items = [(n.get("id") if isinstance(n, dict) else None, n) for n in nodes]
    else:
        raise BadInput(f"note {show(name)}: nodes is not an object or a list")
    tree, notes = read_flat(items, SPEC, fill, synthetic_root=True)
    tree.foreign[NAME] = {k: v for k, v in note.items() if k not in ("nodes", "current")}
    if isinstance(nodes, list):
        tree.foreign[NAME]["loomtui_list_variant"] = True
    current = note.get("current")
    if isinstance(current, str) and current in tree:
        tree.selected = current
    return Imported(tree, NAME, name=name, notes=notes)


def read(data: object, *, note: str | None = None, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a loomsidian file: {why}")
    assert isinstance(data, dict)
    state = data.get("state")
    if not isinstance(state, dict) or _is_note(data):
        return [read_note(data, None)]
    if note is not None:
        if note not in state:
            shown = ", ".join(show(k, 30) for k in list(state)[:5])
            raise BadInput(f"no note {show(note)} in this file (notes: {shown})")
        return [read_note(state[note], note)]
    return [read_note(v, k) for k, v in state.items()]
