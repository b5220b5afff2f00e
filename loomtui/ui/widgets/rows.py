"""Repainting only the rows of a line-API view that changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from textual.geometry import Region
from textual.widget import Widget

T = TypeVar("T")


def changed_rows(old: Sequence[T], new: Sequence[T], top: int, height: int,
                 same: Callable[[T, T], bool]) -> list[int]:
    """The rows (0 at the view's top) of a view scrolled to ``top`` whose line differs
    between ``old`` and ``new`` (a line past either end is blank)."""
    out = []
    for y in range(height):
        i = top + y
        a = old[i] if i < len(old) else None
        b = new[i] if i < len(new) else None
        if (a is None) != (b is None) or (a is not None and b is not None and not same(a, b)):
            out.append(y)
    return out


def refresh_rows(widget: Widget, rows: Iterable[int]) -> None:
    """Repaint these rows of the widget's content (each run of rows as one region)."""
    width = widget.size.width
    regions: list[Region] = []
    for y in sorted(set(rows)):
        last = regions[-1] if regions else None
        if last is not None and last.bottom == y:
            regions[-1] = Region(0, last.y, width, last.height + 1)
        else:
            regions.append(Region(0, y, width, 1))
    if regions:
        widget.refresh(*regions)
