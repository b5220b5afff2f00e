"""The path to the selected node, kept between keypresses.

``Tree.path`` walks to the root every time (15 ms at depth 5,000); moving one step changes the
path by one node, so this cache extends or trims the last path instead, with running totals
(characters, tokens, cumulative log-probability) and the positions of branch points.
"""

from __future__ import annotations

from bisect import bisect_right

from loomtui.core.tree import Tree


class PathCache:
    """Path root→node plus prefix sums: the path is walked again when the tree's shape
    changes (``Tree.shape_revision``), the sums whenever anything changes."""

    def __init__(self) -> None:
        self.tree: Tree | None = None
        self.revision = -1
        self.shape = -1
        self.path: list[str] = []
        self.index: dict[str, int] = {}
        self.chars: list[int] = []  # chars[i] = characters in path[: i + 1]
        self.tokens: list[int] = []
        self.cum: list[float | None] = []  # cumulative logprob, prompt excluded (core rules)
        self.heads: list[int] = []  # indices of nodes that start an outline line

    def get(self, tree: Tree, node_id: str) -> list[str]:
        if tree is not self.tree or tree.shape_revision != self.shape or not self.path:
            self._reset(tree)
            self._extend(tree.path(node_id))
            return self.path
        if tree.revision != self.revision:  # only contents changed (scores, tokens): the
            path = self.path  # same ids, their sums again (no walk to the root: 15 ms)
            self._reset(tree)
            self._extend(path)
        up: list[str] = []
        cur: str | None = node_id
        while cur is not None and cur not in self.index:
            up.append(cur)
            cur = tree.parent(cur)
        if cur is None:
            self._reset(tree)
            self._extend(tree.path(node_id))
            return self.path
        self._truncate(self.index[cur] + 1)
        up.reverse()
        self._extend(up)
        return self.path

    def _reset(self, tree: Tree) -> None:
        self.tree = tree
        self.revision = tree.revision
        self.shape = tree.shape_revision
        self.path, self.index, self.chars, self.tokens, self.cum, self.heads = (
            [], {}, [], [], [], [])

    def _truncate(self, n: int) -> None:
        for nid in self.path[n:]:
            del self.index[nid]
        del self.path[n:], self.chars[n:], self.tokens[n:], self.cum[n:]
        del self.heads[bisect_right(self.heads, n - 1):]

    def _extend(self, ids: list[str]) -> None:
        tree = self.tree
        assert tree is not None
        for nid in ids:
            i = len(self.path)
            node = tree.node(nid)
            prev_c = self.chars[-1] if i else 0
            prev_t = self.tokens[-1] if i else 0
            if i == 0:
                cum: float | None = 0.0
            else:
                prev = self.cum[-1]
                lp = node.logprob()
                if prev is None:
                    cum = None
                elif lp is None:
                    cum = prev if node.n_tokens == 0 and not node.text else None
                else:
                    cum = prev + lp
            if i <= 1 or tree.n_children(self.path[-1]) > 1:
                self.heads.append(i)
            self.path.append(nid)
            self.index[nid] = i
            self.chars.append(prev_c + len(node.text))
            self.tokens.append(prev_t + node.n_tokens)
            self.cum.append(cum)

    def head_ids(self) -> list[str]:
        return [self.path[i] for i in self.heads]
