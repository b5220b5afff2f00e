"""Where the user is in the tree: selection history, the token cursor, bookmark cycling.

Plain objects over a :class:`~loomtui.core.tree.Tree` (no Textual), so they are tested
without a Pilot; the loom screen asks them where to go and then selects it.
"""

from __future__ import annotations

from loomtui.core.tree import Tree

HISTORY_LIMIT = 500


class History:
    """Back/forward through selected nodes, skipping nodes deleted meanwhile."""

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self.back: list[str] = []
        self.forward: list[str] = []
        self.limit = limit

    def clear(self) -> None:
        self.back.clear()
        self.forward.clear()

    def remember(self, node_id: str) -> None:
        """``node_id`` is being left for another node by a move (not by back/forward)."""
        self.back.append(node_id)
        del self.back[:-self.limit]
        self.forward.clear()

    def _travel(self, tree: Tree, source: list[str], dest: list[str]) -> str | None:
        while source and source[-1] not in tree:
            source.pop()
        if not source:
            return None
        dest.append(tree.selected)
        return source.pop()

    def go_back(self, tree: Tree) -> str | None:
        """The node to go back to (None: nothing left), recording where we were."""
        return self._travel(tree, self.back, self.forward)

    def go_forward(self, tree: Tree) -> str | None:
        return self._travel(tree, self.forward, self.back)


def next_bookmark(tree: Tree, here: str, step: int) -> str | None:
    """The next (``step`` > 0) or previous bookmarked node in preorder, wrapping around;
    None when there are no bookmarks."""
    order = [n for n, _ in tree.iter_preorder()]
    marks = [i for i, n in enumerate(order) if tree.node(n).bookmarked]
    if not marks:
        return None
    at = order.index(here)
    if step > 0:
        later = [i for i in marks if i > at]
        return order[later[0] if later else marks[0]]
    earlier = [i for i in marks if i < at]
    return order[earlier[-1] if earlier else marks[-1]]


class TokenCursor:
    """A position among the selected node's tokens (None: no cursor), with word and
    segment-end jumps."""

    def __init__(self) -> None:
        self.index: int | None = None

    def clear(self) -> bool:
        """Drop the cursor; returns whether there was one."""
        had = self.index is not None
        self.index = None
        return had

    def step(self, n_tokens: int, step: int) -> int | None:
        """Move by ``step`` tokens (entering from the end going left, the start going right)."""
        if not n_tokens:
            return None
        if self.index is None:
            self.index = n_tokens - 1 if step < 0 else 0
        else:
            self.index = max(0, min(n_tokens - 1, self.index + step))
        return self.index

    def word(self, pieces: list[str], step: int) -> int | None:
        """Jump to the start of the next (or previous) word: a token that starts with
        whitespace or follows one that ends with it."""
        n = len(pieces)
        if not n:
            return None
        if self.index is None:
            self.index = n - 1 if step < 0 else 0
            return self.index

        def starts_word(i: int) -> bool:
            return i == 0 or pieces[i][:1].isspace() or pieces[i - 1][-1:].isspace()

        i = self.index + step
        while 0 <= i < n and not starts_word(i):
            i += step
        self.index = max(0, min(n - 1, i))
        return self.index

    def end(self, n_tokens: int, last: bool) -> int | None:
        """Jump to the first or last token of the segment."""
        if not n_tokens:
            return None
        self.index = n_tokens - 1 if last else 0
        return self.index
