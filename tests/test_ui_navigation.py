"""Selection history, bookmark cycling and the token cursor, without a Pilot."""

from __future__ import annotations

from loomtui.ui.demo import demo_tree
from loomtui.ui.navigation import History, TokenCursor, next_bookmark


def test_history_back_forward_and_deleted_nodes():
    tree = demo_tree()
    hist = History(limit=3)
    for nid in ("0", "1", "2", "4"):
        hist.remember(nid)
    assert hist.back == ["1", "2", "4"]  # the limit keeps the latest
    tree.select("3")
    assert hist.go_back(tree) == "4"
    tree.select("4")
    assert hist.forward == ["3"]
    assert hist.go_forward(tree) == "3"
    tree.select("3")
    tree.delete("2")
    assert hist.back == ["1", "2", "4"]
    assert hist.go_back(tree) == "4"
    tree.select("4")
    assert hist.go_back(tree) == "1"  # "2" was deleted: skipped
    tree.select("1")
    assert hist.go_back(tree) is None
    hist.remember("1")
    assert hist.forward == []  # a new move drops the forward history


def test_bookmarks_cycle_in_preorder_and_wrap():
    tree = demo_tree()
    order = [n for n, _ in tree.iter_preorder()]
    marks = [n for n in order if tree.node(n).bookmarked]
    assert marks  # the demo has one
    tree.set_bookmark(order[-1], True)
    marks = [n for n in order if tree.node(n).bookmarked]
    assert next_bookmark(tree, tree.root_id, 1) == marks[0]
    assert next_bookmark(tree, marks[-1], 1) == marks[0]  # wraps around
    assert next_bookmark(tree, tree.root_id, -1) == marks[-1]
    assert next_bookmark(tree, marks[-1], -1) == marks[-2]
    for n in marks:
        tree.set_bookmark(n, False)
    assert next_bookmark(tree, tree.root_id, 1) is None


def test_token_cursor_steps_words_and_ends():
    cur = TokenCursor()
    assert cur.step(0, 1) is None and cur.index is None
    assert cur.step(5, -1) == 4  # entering from the right starts at the last token
    assert cur.step(5, 1) == 4  # clamped
    assert cur.step(5, -10) == 0
    pieces = ["Once", " upon", " a", " ti", "me", ",", " there"]
    cur.clear()
    assert cur.word(pieces, 1) == 0
    assert cur.word(pieces, 1) == 1
    cur.index = 3
    assert cur.word(pieces, 1) == 6  # "me" and "," are inside words
    assert cur.word(pieces, -1) == 3
    assert cur.end(7, last=True) == 6 and cur.end(7, last=False) == 0
    assert cur.clear() and not cur.clear()


def test_docs_keys_table_is_the_key_map():
    from pathlib import Path

    from loomtui.ui.keys import markdown_table

    docs = Path(__file__).resolve().parent.parent / "docs" / "keys.md"
    assert docs.read_text() == markdown_table()


def test_readme_key_table_and_screenshot_match_the_app():
    """The README shows the key map as it is and the main screen as the snapshot test draws it
    (`python scripts/sync_docs.py` copies both after a change)."""
    from pathlib import Path

    from loomtui.ui.keys import markdown_table

    top = Path(__file__).resolve().parent.parent
    assert markdown_table() in (top / "README.md").read_text()
    snapshot = top / "tests" / "__snapshots__" / "test_ui_snapshots" / "test_main_screen.svg"
    assert (top / "docs" / "screenshot.svg").read_bytes() == snapshot.read_bytes()
