"""KV cache across the whole tree: each node keeps the KV slice of its own tokens.

A context's cache is the concatenation of its path's slices, so growing a deep branch only
runs its new tokens through the model. A byte budget is enforced by evicting least recently
used slices, leaves first (a slice is useless once its parent's is gone, so parents outlive
children), never touching the protected path (the selected branch).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from loomtui.backends.cache_adapter import KV, kv_bytes


@dataclass(slots=True)
class Slice:
    kv: KV
    start: int
    """Absolute position of the slice's first token in its context."""
    parent: str | None
    nbytes: int
    ids: tuple[int, ...]
    """The tokens the slice was computed for (a split or merge changes them)."""
    last_logits: torch.Tensor | None = None
    """Logits after the slice's last token (float32, [vocab]), when known."""
    serial: int = 0
    """Unique per stored slice: a recomputed slice gets a new one."""
    base: int | None = None
    """The serial of the parent's slice this one was computed after (None at the root)."""


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    tokens_run: int = 0
    """Token positions run through the model (prefill + decode), deterministic."""

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class KVStore:
    def __init__(self, budget_bytes: int = 256 * 2**20) -> None:
        self.budget = budget_bytes
        self.slices: OrderedDict[str, Slice] = OrderedDict()
        self.kids: dict[str, int] = {}
        self.bytes = 0
        self.stats = CacheStats()
        self.protected: set[str] = set()
        self._serial = 0

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.slices

    def get(self, node_id: str) -> Slice | None:
        s = self.slices.get(node_id)
        if s is not None:
            self.slices.move_to_end(node_id)
        return s

    def valid(self, node_id: str, parent: str | None, start: int, ids: list[int]) -> Slice | None:
        """The node's slice if it still matches the node's place and tokens, else None."""
        s = self.slices.get(node_id)
        if s is None:
            return None
        if (s.parent != parent or s.start != start or s.ids != tuple(ids)
                or s.base != self._serial_of(parent)):
            # moved, retokenised, or computed after a parent slice that was since recomputed
            # (its context changed: the prompt was edited in place)
            self.drop(node_id)
            return None
        self.slices.move_to_end(node_id)
        return s

    def put(self, node_id: str, parent: str | None, kv: KV, start: int, ids: list[int],
            last_logits: torch.Tensor | None = None) -> None:
        if kv and kv[0][0].shape[2] != len(ids):
            return  # a slice must cover exactly the node's tokens
        if node_id in self.slices:
            self.drop(node_id)
        nbytes = kv_bytes(kv) + (last_logits.numel() * 4 if last_logits is not None else 0)
        self._serial += 1
        base = self._serial_of(parent)
        self.slices[node_id] = Slice(kv, start, parent, nbytes, tuple(ids), last_logits,
                                     self._serial, -1 if parent is not None and base is None
                                     else base)
        self.bytes += nbytes
        if parent is not None:
            self.kids[parent] = self.kids.get(parent, 0) + 1
        self.evict()

    def _serial_of(self, parent: str | None) -> int | None:
        if parent is None:
            return None
        s = self.slices.get(parent)
        return None if s is None else s.serial

    def drop(self, node_id: str) -> None:
        s = self.slices.pop(node_id, None)
        if s is None:
            return
        self.bytes -= s.nbytes
        if s.parent is not None and s.parent in self.kids:
            self.kids[s.parent] -= 1
            if self.kids[s.parent] <= 0:
                del self.kids[s.parent]

    def clear(self) -> None:
        self.slices.clear()
        self.kids.clear()
        self.bytes = 0

    def evict(self) -> None:
        """Drop LRU leaf slices (no cached children, not protected) until under budget."""
        # Dropping a leaf may turn its parent into a leaf: pass again while that frees bytes.
        while self.bytes > self.budget:
            freed = False
            for node_id in list(self.slices):
                if self.bytes <= self.budget:
                    break
                if node_id in self.protected or self.kids.get(node_id):
                    continue
                self.drop(node_id)
                self.stats.evictions += 1
                freed = True
            if not freed:
                break
