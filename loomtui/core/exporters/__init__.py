"""Writers of other looms' tree files: the whole tree, with what came from the other loom
(``foreign``) given back as it was.

``export_tree(tree, fmt)`` returns the file's bytes for ``fmt`` in :data:`TREE_FORMATS`.
"""

from __future__ import annotations

from loomtui.core.exporters import loomsidian, miniloom, pyloom
from loomtui.core.tree import Tree

WRITERS = {m.NAME: m for m in (pyloom, loomsidian, miniloom)}
TREE_FORMATS = tuple(WRITERS)


def export_tree(tree: Tree, fmt: str) -> bytes:
    """The whole tree as a ``fmt`` file (consistent: holds the tree's lock)."""
    with tree.lock:
        return WRITERS[fmt].write(tree)
