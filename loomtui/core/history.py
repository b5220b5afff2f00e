"""Structural undo/redo: every edit of the tree is a patch of small invertible operations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from loomtui.core.node import Node

OpKind = Literal["add", "remove", "set", "move"]


@dataclass(slots=True)
class Op:
    """One invertible step.

    add/remove: ``node`` under ``parent``. set: ``before``/``after`` field values of ``node_id``.
    move: ``node_id`` from ``parent`` to ``new_parent``.
    """

    kind: OpKind
    node_id: str
    parent: str | None = None
    node: Node | None = None
    new_parent: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def inverse(self) -> Op:
        if self.kind == "add":
            return Op("remove", self.node_id, self.parent, self.node)
        if self.kind == "remove":
            return Op("add", self.node_id, self.parent, self.node)
        if self.kind == "set":
            return Op("set", self.node_id, before=self.after, after=self.before)
        return Op("move", self.node_id, parent=self.new_parent, new_parent=self.parent)


@dataclass(slots=True)
class Patch:
    """A user-level edit (one undo step): its operations and the selection around it."""

    label: str
    ops: list[Op] = field(default_factory=list)
    selected_before: str | None = None
    selected_after: str | None = None

    def touched(self) -> set[str]:
        """Ids of nodes whose children or fields this patch changes (for redrawing)."""
        out: set[str] = set()
        for op in self.ops:
            out.add(op.node_id)
            if op.parent is not None:
                out.add(op.parent)
            if op.new_parent is not None:
                out.add(op.new_parent)
        return out


class History:
    """Undo and redo stacks of patches, bounded to ``limit`` undo steps."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.undo_stack: list[Patch] = []
        self.redo_stack: list[Patch] = []

    def push(self, patch: Patch) -> None:
        if not patch.ops:
            return
        self.undo_stack.append(patch)
        if len(self.undo_stack) > self.limit:
            del self.undo_stack[0]
        self.redo_stack.clear()

    def clear(self) -> None:
        self.undo_stack.clear()
        self.redo_stack.clear()
