"""The rollout tree: an arborescence of :class:`Node` backed by a ``networkx.DiGraph``.

Every walk is iterative (a 50,000-deep chain is an ordinary tree here), and every structural
edit goes through :meth:`Tree._apply`, which records it for undo/redo.

Threads. The main thread (the app's event loop, or the CLI) is the only writer of structure:
adding, deleting, splitting, merging, editing, undo and redo. Worker threads (the model, the
saver) read under :attr:`Tree.lock` and write node fields only through :meth:`Tree.update_if`
or :meth:`Tree.set_distribution`, which compare and set atomically, so an edit made while a
worker computed is never overwritten. Locks are taken in one order: the predictor's lock before
the tree's. A transaction holds the tree's lock, so no model call may run inside one
(``grow`` refuses); to make many model-driven steps one undo step, use :meth:`Tree.undo_group`,
which holds no lock.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from loomtui.core.errors import TreeError
from loomtui.core.history import History, Op, Patch
from loomtui.core.node import Alternatives, Choices, Distribution, Node, Sampler

ChildOrder = Literal["created", "probability"]
_T = TypeVar("_T", bound="Tree")
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _ID_ALPHABET[r] + out
        if n == 0:
            return out


F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """Run a tree edit under :attr:`Tree.lock`, reads included (see ``Tree.transaction``)."""

    @functools.wraps(method)
    def run(self: Tree, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class Tree:
    """A rollout tree with one root, a selected node, default sampler settings and history."""

    def __init__(
        self,
        root: Node,
        *,
        model: str | None = None,
        sampler: Sampler | None = None,
        created: float | None = None,
    ) -> None:
        import networkx  # here: importing it takes 0.25 s, and the app's first frame waits for
        # every import at module level (it needs no tree)

        self.graph = networkx.DiGraph()
        self._nodes: dict[str, Node] = {}
        self._insert(root, None)
        self.root_id = root.id
        self.selected = root.id
        self.model = model
        self.sampler = sampler or Sampler()
        self.seed: int | None = None
        """Base seed for the next expansion (None: a fresh random seed each time)."""
        self.foreign: dict[str, Any] = {}
        """Session-level fields of other looms' files, kept as they were."""
        self.created = created if created is not None else time.time()
        self.modified = self.created
        self.history = History()
        self.revision = 0
        self.shape_revision = 0
        """Changes with the structure and any node's text only (not with scores, marks or
        distributions): what an index of the tree's texts depends on."""
        self.lock = threading.RLock()
        """Held while fields change (:meth:`update`) and while a session is serialised."""
        self._next_id = 0
        self._last_created = 0.0
        self._pending: Patch | None = None
        self._depth_pending = 0
        self._group: Patch | None = None

    # ----------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    @property
    def root(self) -> Node:
        return self._nodes[self.root_id]

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise TreeError(f"no node with id {node_id!r}") from None

    def nodes(self) -> Iterator[Node]:
        return iter(self._nodes.values())

    def parent(self, node_id: str) -> str | None:
        self.node(node_id)
        for p in self.graph.pred[node_id]:
            return p
        return None

    def children(self, node_id: str, order: ChildOrder = "created") -> list[str]:
        kids = list(self.graph.succ[self.node(node_id).id])
        if order == "probability":
            def key(c: str) -> float:
                lp = self._nodes[c].logprob()
                return -lp if lp is not None else float("inf")
            kids.sort(key=key)
        else:
            kids.sort(key=lambda c: self._nodes[c].created)
        return kids

    def n_children(self, node_id: str) -> int:
        return len(self.graph.succ[node_id])

    def siblings(self, node_id: str, order: ChildOrder = "created") -> list[str]:
        """All children of this node's parent, itself included, in ``order``."""
        parent = self.parent(node_id)
        return [node_id] if parent is None else self.children(parent, order)

    def path(self, node_id: str) -> list[str]:
        """Ids from the root down to ``node_id``."""
        self.node(node_id)
        out = [node_id]
        pred = self.graph.pred
        while True:
            ps = pred[out[-1]]
            if not ps:
                break
            out.append(next(iter(ps)))
        out.reverse()
        return out

    def depth(self, node_id: str) -> int:
        return len(self.path(node_id)) - 1

    def context_text(self, node_id: str, path: list[str] | None = None) -> str:
        """The text of the path from the root to ``node_id`` (``path``: its ids, where the
        caller knows them). Where nodes keep their tokens' raw bytes (a character split
        between two picked tokens), the path's bytes are decoded together, so the character
        is whole again."""
        if not path or path[-1] != node_id:
            path = self.path(node_id)
        nodes = [self._nodes[n] for n in path]
        if all(n.token_bytes is None for n in nodes):
            return "".join(n.text for n in nodes)
        return b"".join(n.raw() for n in nodes).decode("utf-8", "replace")

    def context_ids(self, node_id: str) -> list[int] | None:
        """Token ids of the whole context, or None if some node on the path has none."""
        ids: list[int] = []
        for n in self.path(node_id):
            tok = self._nodes[n].token_ids
            if tok is None:
                return None
            ids.extend(tok)
        return ids

    def cumulative_logprob(self, node_id: str, *, include_root: bool = False) -> float | None:
        """Sum of token log-probabilities from the root (prompt excluded by default) to here.

        None when a token on the path has no known log-probability.
        """
        path = self.path(node_id)
        total = 0.0
        for n in path if include_root else path[1:]:
            lp = self._nodes[n].logprob()
            if lp is None:
                if self._nodes[n].n_tokens == 0 and not self._nodes[n].text:
                    continue
                return None
            total += lp
        return total

    def subtree(self, node_id: str) -> list[str]:
        """Ids of ``node_id`` and all its descendants, in pre-order (parents first)."""
        out: list[str] = []
        stack = [self.node(node_id).id]
        succ = self.graph.succ
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(reversed(self.children(n)) if len(succ[n]) > 1 else succ[n])
        return out

    def iter_preorder(self) -> Iterator[tuple[str, int]]:
        """(id, depth) for every node, parents before children, children by creation."""
        stack = [(self.root_id, 0)]
        succ = self.graph.succ
        while stack:
            n, d = stack.pop()
            yield n, d
            kids = self.children(n) if len(succ[n]) > 1 else list(succ[n])
            stack.extend((k, d + 1) for k in reversed(kids))

    def bookmarks(self) -> list[str]:
        return [n for n, _ in self.iter_preorder() if self._nodes[n].bookmarked]

    def leaves(self) -> list[str]:
        return [n for n in self._nodes if not self.graph.succ[n]]

    # ----------------------------------------------------------------- ids
    def new_id(self) -> str:
        while True:
            self._next_id += 1
            nid = _base36(self._next_id)
            if nid not in self._nodes:
                return nid

    def new_node(self, text: str, origin: str, **fields: Any) -> Node:
        """A fresh node (not yet in the tree) with a new id and the current time.

        Creation times strictly increase within a tree, so "children by creation" is a total
        order that undo/redo cannot shuffle.
        """
        now = max(time.time(), self._last_created + 1e-6)
        self._last_created = now
        return Node(id=self.new_id(), text=text, origin=origin, created=now, **fields)

    # ----------------------------------------------------------------- editing
    @contextmanager
    def transaction(self, label: str) -> Iterator[Patch]:
        """Group every edit inside into one undo step. Holds :attr:`lock` throughout, so a
        worker thread never sees an edit half done (a split with its tail both in the node
        and in its new child); do not wait on another thread inside one."""
        with self.lock:
            outer = self._pending is None
            if outer:
                self._pending = Patch(label, selected_before=self.selected)
            self._depth_pending += 1
            try:
                yield self._pending  # type: ignore[misc]
            except BaseException:
                if outer:  # an edit that fails half way is undone, not kept
                    patch, self._pending = self._pending, None
                    assert patch is not None
                    for op in reversed(patch.ops):
                        self._do(op.inverse())
                    if patch.selected_before in self._nodes:
                        self.selected = patch.selected_before
                    elif self.selected not in self._nodes:
                        self.selected = self.root_id
                raise
            else:
                if outer:
                    patch, self._pending = self._pending, None
                    assert patch is not None
                    patch.selected_after = self.selected
                    if self._group is not None:
                        self._group.ops.extend(patch.ops)
                        self._group.selected_after = self.selected
                    else:
                        self.history.push(patch)
            finally:
                self._depth_pending -= 1

    @contextmanager
    def undo_group(self, label: str) -> Iterator[Patch]:
        """Make every transaction inside one undo step, across model calls (an autoloom run
        grows dozens of nodes). Unlike a transaction it holds no lock, so the model may run
        inside; undo and redo are refused until it ends. What was done stays when it ends by
        an exception (a cancelled run keeps what it grew)."""
        with self.lock:
            if self._group is not None:
                raise TreeError("an undo group is already open")
            group = self._group = Patch(label, selected_before=self.selected)
        try:
            yield group
        finally:
            with self.lock:
                self._group = None
                self.history.push(group)

    @property
    def in_group(self) -> bool:
        return self._group is not None

    @property
    def in_transaction(self) -> bool:
        return self._pending is not None

    @_locked
    def add_child(self, parent_id: str, node: Node) -> Node:
        """Add ``node`` (which must have a fresh id) under ``parent_id``."""
        self.node(parent_id)
        if node.id in self._nodes:
            raise TreeError(f"a node with id {node.id!r} already exists")
        with self.transaction("add"):
            self._apply(Op("add", node.id, parent_id, node))
        return node

    def update(self, node_id: str, **fields: Any) -> Node:
        """Change fields that are not structure (distribution, scores): not an undo step.

        Holds :attr:`lock`, so a save running in another thread never sees half an update.
        """
        node = self.node(node_id)
        with self.lock:
            for key, value in fields.items():
                setattr(node, key, value)
            self._touch(reshaped="text" in fields)
        return node

    def set_distribution(self, node_id: str, dist: Distribution,
                         same: dict[str, Any] | None = None) -> bool:
        """Store a computed next-token distribution (not an undo step); another model's
        distribution is kept under ``node.scores``. With ``same``, only if those fields are
        unchanged (see :meth:`update_if`). Returns whether it stored it."""
        with self.lock:
            node = self._nodes.get(node_id)
            if node is None:
                return False
            return self.update_if(node_id, same or {}, distribution=dist,
                                  scores=node.scores_kept(dist.model, distribution=True))

    def update_if(self, node_id: str, same: dict[str, Any], **fields: Any) -> bool:
        """Like :meth:`update`, only if the node is still in the tree with the ``same`` field
        values (compared and set atomically): how a worker thread stores what it computed from
        a node without overwriting an edit made meanwhile. Returns whether it did."""
        with self.lock:
            node = self._nodes.get(node_id)
            if node is None or any(getattr(node, k) != v for k, v in same.items()):
                return False
            for key, value in fields.items():
                setattr(node, key, value)
            self._touch(reshaped="text" in fields)
        return True

    def set_bookmark(self, node_id: str, on: bool) -> None:
        self._set(node_id, "bookmark" if on else "unbookmark", bookmarked=on)

    def set_note(self, node_id: str, note: str) -> None:
        self._set(node_id, "note", note=note)

    def set_tags(self, node_id: str, tags: list[str]) -> None:
        self._set(node_id, "tags", tags=list(tags))

    @_locked
    def delete(self, node_id: str) -> list[str]:
        """Delete ``node_id`` and its subtree; returns the deleted ids."""
        if node_id == self.root_id:
            raise TreeError("the root cannot be deleted")
        doomed = self.subtree(node_id)
        parent = self.parent(node_id)
        pred = self.graph.pred
        with self.transaction("delete"):
            if self.selected in set(doomed):
                self.selected = parent  # type: ignore[assignment]
            for n in reversed(doomed):
                self._apply(Op("remove", n, next(iter(pred[n])), self._nodes[n]))
        return doomed

    @_locked
    def edit(self, node_id: str, text: str) -> Node:
        """Fork ``node_id`` as an ``edited`` sibling holding ``text``; the original stays."""
        parent = self.parent(node_id)
        if parent is None:
            raise TreeError("the root (prompt) cannot be forked; start a new session from it")
        original = self.node(node_id)
        fork = self.new_node(text, "edited", note=f"edited from {original.id}")
        with self.transaction("edit"):
            self._apply(Op("add", fork.id, parent, fork))
            self.selected = fork.id
        return fork

    @_locked
    def edit_prompt(self, text: str) -> Node:
        """Change the root's text in place (one undo step). Every score in the tree was
        computed after the old prompt, so all go stale: the root's tokens and every node's
        log-probabilities, alternatives and distribution are cleared (undo restores them) and
        are recomputed when a model next looks at them."""
        root = self.root
        if not text:
            raise TreeError("the prompt is empty")
        if text == root.text:
            raise TreeError("the prompt is unchanged")
        with self.transaction("edit prompt"):
            self._set_op(self.root_id, dict(
                text=text, token_ids=None, token_offsets=None, token_bytes=None,
                token_logprobs=None, alternatives=None, distribution=None, scores={}))
            stale: dict[str, Any] = dict(token_logprobs=None, alternatives=None,
                                         distribution=None, scores={})
            for nid in self.subtree(self.root_id)[1:]:
                n = self._nodes[nid]
                if n.token_logprobs is not None or n.alternatives is not None or (
                        n.distribution is not None or n.scores):
                    self._set_op(nid, stale)
        return root

    @_locked
    def split(self, node_id: str, at_token: int | None = None, at_char: int | None = None) -> Node:
        """Split a node in two at a token index (or a character offset for untokenised text).

        The node keeps the head; a new child takes the tail and the node's children.
        Returns the tail node.
        """
        node = self.node(node_id)
        if at_token is not None:
            # tokens are known by their offsets (ids too, unless an engine gave text only)
            offs = node.token_offsets
            if offs is None:
                raise TreeError(f"node {node_id} has no tokens to split at; split at a character")
            if not 0 < at_token < len(offs):
                raise TreeError(
                    f"split point {at_token} is outside 1..{len(offs) - 1} for node {node_id}")
            k = at_token
            c = offs[k]
            ids = node.token_ids
            tail_fields: dict[str, Any] = dict(
                token_ids=ids[k:] if ids is not None else None,
                token_offsets=[o - c for o in offs[k:]],
                token_logprobs=node.token_logprobs[k:] if node.token_logprobs else None,
                alternatives=node.alternatives.slice(k) if node.alternatives else None,
                token_bytes=node.token_bytes[k:] if node.token_bytes is not None else None,
            )
            # what the model offered at token k: the head's next-token distribution, as far as
            # it is known (not partial: entropy unknown, so a model recomputes it in full)
            head_dist = (
                Distribution(node.alternatives[k], None, min(1.0, sum(
                    math.exp(lp) for lp in node.alternatives[k].logprobs)), node.model)
                if node.alternatives and len(node.alternatives[k]) else None
            )
            head_fields: dict[str, Any] = dict(
                text=node.text[:c], token_ids=ids[:k] if ids is not None else None,
                token_offsets=offs[:k],
                token_logprobs=node.token_logprobs[:k] if node.token_logprobs else None,
                alternatives=node.alternatives.slice(0, k) if node.alternatives else None,
                token_bytes=node.token_bytes[:k] if node.token_bytes is not None else None,
                distribution=head_dist, scores={},
            )
        elif at_char is not None:
            if node.token_offsets:
                raise TreeError(f"node {node_id} is tokenised; split it at a token index")
            if not 0 < at_char < len(node.text):
                raise TreeError(f"split point {at_char} is outside 1..{len(node.text) - 1}")
            c = at_char
            tail_fields = {}
            head_fields = dict(text=node.text[:c], distribution=None, token_ids=None,
                               token_offsets=None, token_logprobs=None, alternatives=None,
                               token_bytes=None, scores={})
        else:
            raise TreeError("split needs a token index or a character offset")
        tail = Node(
            id=self.new_id(), text=node.text[c:], origin=node.origin,
            distribution=node.distribution, sampler=node.sampler, seed=node.seed,
            model=node.model, created=node.created, **tail_fields,
        )
        with self.transaction("split"):
            kids = self.children(node_id)
            self._apply(Op("add", tail.id, node_id, tail))
            for kid in kids:
                self._apply(Op("move", kid, node_id, new_parent=tail.id))
            self._set_op(node_id, head_fields)
        return tail

    @_locked
    def merge(self, node_id: str) -> Node:
        """Merge ``node_id`` with its descendants down a chain of only children."""
        chain = [self.node(node_id).id]
        succ = self.graph.succ
        while len(succ[chain[-1]]) == 1:
            chain.append(next(iter(succ[chain[-1]])))
        if len(chain) == 1:
            raise TreeError(f"node {node_id} does not have exactly one child; nothing to merge")
        nodes = [self._nodes[n] for n in chain]
        text = "".join(n.text for n in nodes)
        # Token ids only concatenate within one tokenizer: mixed models are retokenised later.
        tokenised = len({n.model for n in nodes} - {None}) <= 1 and all(
            n.token_ids is not None and n.token_offsets is not None for n in nodes)
        fields: dict[str, Any] = dict(
            text=text, token_ids=None, token_offsets=None, token_logprobs=None, alternatives=None,
            token_bytes=None,
            distribution=nodes[-1].distribution, bookmarked=any(n.bookmarked for n in nodes),
            note="\n".join(n.note for n in nodes if n.note),
            tags=list(dict.fromkeys(t for n in nodes for t in n.tags)),
        )
        if not tokenised and any(n.token_bytes is not None for n in nodes):
            # retokenised later from text: decode the bytes together (split characters whole)
            fields["text"] = b"".join(n.raw() for n in nodes).decode("utf-8", "replace")
        if tokenised:
            ids: list[int] = []
            offs: list[int] = []
            lps: list[float | None] = []
            alts = Alternatives()
            base = 0
            for n in nodes:
                ids.extend(n.token_ids)  # type: ignore[arg-type]
                offs.extend(base + o for o in n.token_offsets)  # type: ignore[union-attr]
                lps.extend(n.token_logprobs or [None] * n.n_tokens)
                if n.alternatives is not None:
                    alts.extend(n.alternatives)
                else:
                    for _ in range(n.n_tokens):
                        alts.append(Choices())
                base += len(n.text)
            fields.update(token_ids=ids, token_offsets=offs, token_logprobs=lps,
                          alternatives=alts if any(alts.ids) else None)
            if any(n.token_bytes is not None for n in nodes):
                fields["token_bytes"] = [
                    b for n in nodes for b in (n.token_bytes if n.token_bytes is not None
                                               else [p.encode() for p in n.pieces()])]
        with self.transaction("merge"):
            last = chain[-1]
            for kid in self.children(last):
                self._apply(Op("move", kid, last, new_parent=node_id))
            if self.selected in chain[1:]:
                self.selected = node_id
            for i in range(len(chain) - 1, 0, -1):
                self._apply(Op("remove", chain[i], chain[i - 1], self._nodes[chain[i]]))
            self._set_op(node_id, fields)
        return self._nodes[node_id]

    def set_sampler(self, sampler: Sampler, seed: int | None) -> None:
        """Change the session's default sampler settings and base seed (saved, not undone)."""
        with self.lock:
            self.sampler = sampler.validated()
            self.seed = seed
            self._touch()

    def select(self, node_id: str) -> None:
        self.node(node_id)
        self.selected = node_id

    # ----------------------------------------------------------------- undo/redo
    @property
    def can_undo(self) -> bool:
        return bool(self.history.undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self.history.redo_stack)

    @_locked
    def undo(self) -> Patch | None:
        """Revert the last edit; returns it (for redrawing) or None if there is none."""
        self._no_group("undo")
        if not self.history.undo_stack:
            return None
        patch = self.history.undo_stack.pop()
        with self.lock:
            for op in reversed(patch.ops):
                self._do(op.inverse())
        self.history.redo_stack.append(patch)
        if patch.selected_before in self._nodes:
            self.selected = patch.selected_before
        elif self.selected not in self._nodes:
            self.selected = self.root_id
        self._touch()
        return patch

    @_locked
    def redo(self) -> Patch | None:
        self._no_group("redo")
        if not self.history.redo_stack:
            return None
        patch = self.history.redo_stack.pop()
        with self.lock:
            for op in patch.ops:
                self._do(op)
        self.history.undo_stack.append(patch)
        if patch.selected_after in self._nodes:
            self.selected = patch.selected_after
        elif self.selected not in self._nodes:
            self.selected = self.root_id
        self._touch()
        return patch

    def _no_group(self, what: str) -> None:
        if self._group is not None:
            raise TreeError(f"cannot {what} while {self._group.label!r} is running")

    # ----------------------------------------------------------------- internals
    @_locked
    def _set(self, node_id: str, label: str, **fields: Any) -> None:
        self.node(node_id)
        with self.transaction(label):
            self._set_op(node_id, fields)

    def _set_op(self, node_id: str, fields: dict[str, Any]) -> None:
        if "token_ids" in fields and "model" not in fields:
            # Token ids mean nothing without the tokenizer's model: undo must restore both (a
            # worker may have retokenised the node for its own model in between).
            fields = {**fields, "model": self._nodes[node_id].model}
        with self.lock:
            node = self._nodes[node_id]
            before = {k: getattr(node, k) for k in fields}
            self._apply(Op("set", node_id, before=before, after=dict(fields)))

    def _apply(self, op: Op) -> None:
        assert self._pending is not None, "edits must run inside a transaction"
        with self.lock:  # atomic with respect to update_if and saves in other threads
            self._do(op)
        self._pending.ops.append(op)

    def _do(self, op: Op) -> None:
        if op.kind == "add":
            assert op.node is not None
            self._insert(op.node, op.parent)
        elif op.kind == "remove":
            if self.graph.succ[op.node_id]:
                raise TreeError(f"node {op.node_id} still has children")
            self.graph.remove_node(op.node_id)
            del self._nodes[op.node_id]
        elif op.kind == "set":
            node = self._nodes[op.node_id]
            for key, value in (op.after or {}).items():
                setattr(node, key, value)
        else:
            self.graph.remove_edge(op.parent, op.node_id)
            self.graph.add_edge(op.new_parent, op.node_id)
        self._touch(reshaped=op.kind != "set" or "text" in (op.after or {}))

    def _insert(self, node: Node, parent: str | None) -> None:
        self._nodes[node.id] = node
        self.graph.add_node(node.id)
        if parent is not None:
            self.graph.add_edge(parent, node.id)

    def touch(self) -> None:
        """Mark the tree changed (a new selection to save, say): no undo step."""
        with self.lock:
            self._touch()

    def _touch(self, reshaped: bool = False) -> None:
        self.revision += 1
        if reshaped:
            self.shape_revision += 1
        self.modified = time.time()

    @classmethod
    def from_parts(
        cls: type[_T], nodes: list[Node], edges: list[tuple[str, str]], root_id: str,
        **kwargs: Any
    ) -> _T:
        """Build a tree from already-validated nodes and (parent, child) edges, in bulk."""
        by_id = {n.id: n for n in nodes}
        tree = cls(by_id[root_id], **kwargs)
        tree._nodes = by_id
        tree.graph.add_nodes_from(by_id)
        tree.graph.add_edges_from(edges)
        tree._next_id = len(by_id)
        tree._last_created = max((n.created for n in nodes), default=0.0)
        return tree
