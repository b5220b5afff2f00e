"""Search: text in segments or across them, every filter, pre-order, the CLI (exit as grep)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from loomtui.bench.synthetic import make_tree
from loomtui.cli import main
from loomtui.core import session
from loomtui.core.node import Choices, Distribution, Node
from loomtui.core.search import Query, SearchError, parse_time, search
from loomtui.core.tree import Tree

FULL = Distribution(Choices([1, 2], ["a", "b"], [-0.5, -1.0]), 2.5, 0.97, "bard")
LOW = Distribution(Choices([1, 2], ["a", "b"], [-0.1, -3.0]), 0.4, 0.99, "bard")
PARTIAL = Distribution.from_choices(Choices([1], ["a"], [-0.01]), "other")


def node(nid: str, text: str, origin: str = "sampled", *, created: float,
         lps: list[float | None] | None = None, **fields: object) -> Node:
    offs = None if lps is None else [min(i, len(text) - 1) for i in range(len(lps))]
    return Node(id=nid, text=text, origin=origin, created=created, token_logprobs=lps,
                token_offsets=offs, token_ids=None if lps is None else list(range(len(lps))),
                **fields)


@pytest.fixture
def tree() -> Tree:
    """0 "Once upon a time"
         b " a Dragon slept"   (created first, though its id sorts after a)
         a " the knight rode"
            c " out and died."
            d " home."
    """
    t = Tree(node("0", "Once upon a time", "prompt", created=1.0), model="bard")
    with t.transaction("build"):
        t.add_child("0", node("b", " a Dragon slept", "picked", created=10.0, lps=[-0.5, None],
                              bookmarked=True, note="nice one", tags=["keep", "autoloom:1"],
                              model="SmolLM2-135M-Instruct", distribution=PARTIAL))
        t.add_child("0", node("a", " the knight rode", created=20.0, lps=[-1.0, -2.0, -3.0],
                              model="bard", distribution=FULL, tags=["autoloom:12"]))
        t.add_child("a", node("c", " out and died.", "typed", created=30.0, lps=[-4.0, -8.0],
                              model="bard", distribution=LOW))
        t.add_child("a", node("d", " home.", "edited", created=40.0, note="fixed"))
    return t


def ids(t: Tree, **kw: object) -> list[str]:
    text = kw.pop("text", "")
    return [m.node_id for m in search(t, Query(text, **kw)).matches]  # type: ignore[arg-type]


# ---------------------------------------------------------------- text
def test_substring_is_case_insensitive_in_preorder_by_creation(tree):
    assert ids(tree, text="") == ["0", "b", "a", "c", "d"]
    found = search(tree, Query("KNIGHT")).matches
    assert [m.node_id for m in found] == ["a"]
    m = found[0]
    assert (m.start, m.end, m.node_start, m.depth) == (21, 27, 16, 1)
    assert tree.context_text("a")[m.start:m.end] == "knight"
    assert m.segment_span == (5, 11)
    assert ids(tree, text="o") == ["0", "b", "a", "c", "d"]


def test_case_sensitive_and_regex(tree):
    assert ids(tree, text="dragon") == ["b"]
    assert ids(tree, text="dragon", case_sensitive=True) == []
    assert ids(tree, text=r"d\w+d", regex=True) == ["c"]  # "died"
    m = search(tree, Query(r"\bh\w+", regex=True)).matches[0]
    assert (m.node_id, tree.node("d").text[slice(*m.segment_span)]) == ("d", "home")
    with pytest.raises(SearchError, match="bad regular expression"):
        search(tree, Query("(", regex=True))
    assert ids(tree, text="(") == []  # a plain query is literal text


def test_context_matches_across_segments_once_where_the_match_ends(tree):
    assert ids(tree, text="rode out") == []
    found = search(tree, Query("rode OUT", context=True)).matches
    assert [m.node_id for m in found] == ["c"]
    m = found[0]
    ctx = tree.context_text("c")
    assert ctx[m.start:m.end] == "rode out" and m.start < m.node_start < m.end
    assert m.segment_span[0] < 0
    # A match inside one segment is reported at that node only, not at its descendants.
    assert ids(tree, text="knight", context=True) == ["a"]
    assert ids(tree, text=r"time\s+the\s+\w+\s+rode", regex=True, context=True) == ["a"]
    assert ids(tree, text=r"knight.*died", regex=True, context=True) == ["c"]
    assert ids(tree, text=r"^ out", regex=True, context=True) == []  # ^ is the context's start


def test_context_search_in_a_deep_chain_is_iterative_and_exact():
    chain = make_tree(1200, chain=True, seed=3)
    q = "thou love"
    naive = [n for n, _ in chain.iter_preorder()
             if (lambda ctx, n=n: any(
                 i + len(q) > len(ctx) - len(chain.node(n).text)
                 for i in range(max(0, len(ctx) - len(chain.node(n).text) - len(q) + 1),
                                len(ctx) - len(q) + 1) if ctx[i:i + len(q)].lower() == q))(
                 chain.context_text(n))]
    found = search(chain, Query(q, context=True)).matches
    assert [m.node_id for m in found] == naive and naive
    for m in found[:20]:
        assert chain.context_text(m.node_id)[m.start:m.end].lower() == q


# ---------------------------------------------------------------- filters
def test_origin_filter(tree):
    assert ids(tree, origins=frozenset({"sampled", "typed"})) == ["a", "c"]
    assert ids(tree, text="o", origins=frozenset({"prompt"})) == ["0"]
    with pytest.raises(SearchError, match="unknown origin 'nope'"):
        search(tree, Query(origins=frozenset({"nope"})))


def test_bookmarked_note_tag_and_model_filters(tree):
    assert ids(tree, bookmarked=True) == ["b"]
    assert ids(tree, bookmarked=False) == ["0", "a", "c", "d"]
    assert ids(tree, has_note=True) == ["b", "d"]
    assert ids(tree, tags=("keep",)) == ["b"]
    assert ids(tree, tags=("autoloom:*",)) == ["b", "a"]
    assert ids(tree, tags=("autoloom:1",)) == ["b"]  # exact: not autoloom:12
    assert ids(tree, tags=("autoloom:*", "keep")) == ["b"]
    assert ids(tree, model="smollm2") == ["b"]
    assert ids(tree, model="BARD") == ["a", "c"]


def test_depth_range(tree):
    assert ids(tree, min_depth=1, max_depth=1) == ["b", "a"]
    assert ids(tree, min_depth=2) == ["c", "d"]
    assert ids(tree, max_depth=0) == ["0"]
    with pytest.raises(SearchError, match="depth range is empty"):
        search(tree, Query(min_depth=3, max_depth=1))


def test_created_since_and_until(tree):
    assert ids(tree, since=20.0) == ["a", "c", "d"]
    assert ids(tree, until=20.0) == ["0", "b"]
    assert ids(tree, since=10.0, until=31.0) == ["b", "a", "c"]
    now = time.time()
    assert parse_time("7d", now) == pytest.approx(now - 7 * 86400)
    assert parse_time("30m", now) == pytest.approx(now - 1800)
    assert parse_time("2026-11-23", now) == datetime(2026, 11, 23).timestamp()
    with pytest.raises(SearchError, match="not a time"):
        parse_time("last week", now)


def test_logprob_filters_and_unknown_values_never_match(tree):
    # a: -6 (mean -2); c: -12 (mean -6); b has an unknown token; 0 and d are not scored.
    assert ids(tree, max_logprob=-5.0) == ["a", "c"]
    assert ids(tree, max_logprob=-10.0) == ["c"]
    assert ids(tree, min_logprob=-7.0) == ["a"]
    assert ids(tree, min_logprob=-1e9) == ["a", "c"]
    assert ids(tree, max_mean_logprob=-3.0) == ["c"]
    assert ids(tree, min_mean_logprob=-2.0) == ["a"]
    assert ids(tree, min_mean_logprob=-2.5, max_mean_logprob=-1.5) == ["a"]


def test_entropy_filter_skips_partial_and_missing_distributions(tree):
    assert ids(tree, min_entropy=0.0) == ["a", "c"]  # b's is partial, 0 and d have none
    assert ids(tree, min_entropy=1.0) == ["a"]


def test_limit_subtree_and_edits_are_seen(tree):
    res = search(tree, Query("o"), limit=2)
    assert [m.node_id for m in res.matches] == ["0", "b"] and res.truncated
    assert [m.node_id for m in search(tree, Query(""), start="a").matches] == ["a", "c", "d"]
    m = search(tree, Query("died"), start="a").matches[0]
    assert tree.context_text("c")[m.start:m.end] == "died"
    fork = tree.edit("c", " out and lived.")
    assert ids(tree, text="lived") == [fork.id]
    tree.undo()
    assert ids(tree, text="lived") == []


# ---------------------------------------------------------------- CLI
def run(capsys, *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_exit_status_as_grep(tree, tmp_path, capsys):
    path = tmp_path / "s.json"
    session.save(tree, path)
    rc, out, _ = run(capsys, "search", path, "KNIGHT")
    assert rc == 0 and out.split()[0] == "a" and "«knight»" in out
    rc, out, _ = run(capsys, "search", path, "no such words")
    assert (rc, out) == (1, "")
    rc, out, err = run(capsys, "search", path, "(", "--regex")
    assert rc == 2 and out == "" and err.startswith("loomtui: error: bad regular expression")
    assert err.count("\n") == 1
    rc, _, err = run(capsys, "search", tmp_path / "missing.json", "x")
    assert rc == 2 and "missing.json" in err


def test_cli_filters_and_json(tree, tmp_path, capsys):
    path = tmp_path / "s.json"
    session.save(tree, path)
    rc, out, _ = run(capsys, "search", path, "", "--origin", "sampled", "--origin", "typed",
                     "--max-logprob", "-5", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [r["id"] for r in rows] == ["a", "c"]
    assert rows[1]["parent"] == "a" and rows[1]["logprob"] == -12.0
    rc, out, _ = run(capsys, "search", path, "rode out", "--context", "--json")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["id"], row["match"]) == ("c", "rode out")
    rc, out, _ = run(capsys, "search", path, "", "--bookmarked", "--has-note", "--tag",
                     "autoloom:*", "--model", "smollm2", "--min-depth", "1", "--json")
    assert rc == 0 and [json.loads(x)["id"] for x in out.splitlines()] == ["b"]
    rc, out, _ = run(capsys, "search", path, "", "--min-entropy", "1", "--max-depth", "1",
                     "--since", "1970-01-01", "--until", "1d", "--json")
    assert rc == 0 and [json.loads(x)["id"] for x in out.splitlines()] == ["a"]
    rc, _, err = run(capsys, "search", path, "", "--origin", "nope")
    assert rc == 2 and "unknown origin" in err


def test_cli_output_is_terminal_safe(tmp_path, capsys):
    t = Tree(node("0", "prompt ", "prompt", created=1.0))
    with t.transaction("add"):
        t.add_child("0", node("1", "evil \x1b[2J\x1b]52;c;aGk=\x07 king\n", created=2.0))
    path = tmp_path / "s.json"
    session.save(t, path)
    rc, out, _ = run(capsys, "search", path, "king")
    assert rc == 0 and "\x1b" not in out and "\x07" not in out
    assert "␛[2J" in out and out.count("\n") == 1


def test_search_and_autoloom_import_no_ui_or_ml_framework():
    import subprocess
    import sys

    script = ("import sys, loomtui.core.search, loomtui.core.autoloom; print(sorted(m for m in "
              "sys.modules if m.split('.')[0] in ('textual', 'rich', 'torch', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("text", ["thou love", "king,", "lord is", "é the"])
def test_a_sparse_search_places_matches_as_the_walk_does(text):
    """Without a cached walk, a selective query is answered from the matches' paths; with
    one, by the walk: same matches, same order, ties in creation time included."""
    from loomtui.core import search as search_module

    t = make_tree(600, seed=5, branching=3)
    for i, n in enumerate(t.nodes()):
        n.created = float(i // 7)  # many siblings created "at once", as in an imported file
    t.split("2", at_token=3)  # moves children: adjacency order is no longer creation order
    queries = [Query(text), Query(text, min_depth=2, max_depth=4),
               Query(text, max_logprob=-12.0), Query(origins=frozenset({"prompt"}))]
    for q in queries:
        search_module._ORDERS.clear()
        sparse = search(t, q)
        assert search_module._ORDERS.get(t) is None  # answered without a walk
        search(t, Query(""))  # walks and keeps the walk
        walked = search(t, q)
        assert sparse.matches == walked.matches
    search_module._ORDERS.clear()
    assert search(t, Query(text), start="2").matches == [
        m for m in search(t, Query(text)).matches if "2" in t.path(m.node_id)]


def test_a_stored_distribution_keeps_the_walk_and_updates_numeric_filters():
    """The app stores a distribution on every selection while the model runs: the search's
    walk of the tree (seconds at 100k nodes) is kept, only the numeric columns are redone.
    A text edit or a new node makes a new walk."""
    from loomtui.core import search as search_module

    def ids(found):
        return {m.node_id for m in found.matches}

    tree = make_tree(300)
    root = tree.root_id
    assert search(tree, Query(text="a")).searched == 300
    walk = search_module._cached(tree, root)
    assert walk is not None
    nid = next(n for n in tree.nodes() if n.id != root).id
    assert nid not in ids(search(tree, Query(min_entropy=9.0)))
    tree.set_distribution(nid, Distribution(Choices([1], ["x"], [-0.1]), 9.5, 0.9))
    assert search_module._cached(tree, root) is walk
    assert nid in ids(search(tree, Query(min_entropy=9.0)))
    tree.set_bookmark(nid, True)  # a mark is not text: the walk stays
    assert search_module._cached(tree, root) is walk
    edited = tree.edit(nid, "something else")  # a new node beside it
    assert search_module._cached(tree, root) is None
    assert ids(search(tree, Query(text="something else"))) == {edited.id}
