"""The search bar's query line (core, no UI) and the joined-text index of plain searches."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loomtui.core import search as search_module
from loomtui.core.node import Node
from loomtui.core.search import Query, SearchError, prepare, search
from loomtui.core.search_line import parse_line, split_words, toggle_flag
from loomtui.core.tree import Tree

NOW = 1_800_000_000.0


def test_text_and_the_clis_flags():
    q = parse_line("my lord --context --origin sampled --origin typed --tag 'autoloom:*' "
                   "--max-logprob -5 --min-depth=2 --since 7d --bookmarked", NOW)
    assert q == Query("my lord", context=True, origins=frozenset({"sampled", "typed"}),
                      tags=("autoloom:*",), max_logprob=-5.0, min_depth=2,
                      since=NOW - 7 * 86400, bookmarked=True)
    assert parse_line('"my  lord" --case-sensitive', NOW) == Query("my  lord",
                                                                  case_sensitive=True)
    assert parse_line("", NOW) == Query()
    assert parse_line("--has-note --min-entropy 2.5 --model smol", NOW) == Query(
        has_note=True, min_entropy=2.5, model="smol")


def test_backslashes_are_the_regexs_and_escapes_in_plain_text():
    assert parse_line(r"thou\s+love --regex", NOW).text == r"thou\s+love"
    assert parse_line(r"light\nthe", NOW).text == "light\nthe"
    assert parse_line(r"a\\b", NOW).text == "a\\b"
    assert split_words(r"a\b 'c d'") == [r"a\b", "c d"]


def test_double_dash_ends_the_flags():
    assert parse_line("-- --regex is text", NOW) == Query("--regex is text")


@pytest.mark.parametrize("line, says", [
    ("x --max-logprob lots", "--max-logprob must be a number, got 'lots'"),
    ("x --max-logprob nan", "--max-logprob must be a finite number"),
    ("x --min-depth 1.5", "--min-depth must be an integer"),
    ("x --min-depth -1", "min depth must be 0 or more"),
    ("x --tag", "--tag needs a value"),
    ("x --regex=yes", "--regex takes no value"),
    ("x --contxt", "unknown option '--contxt' (did you mean --context?)"),
    ("x --origin dreamt", "unknown origin 'dreamt'"),
    ("x --since yesterday", "not a time: 'yesterday'"),
    ("(x --regex", "bad regular expression"),
    ("'open", "unclosed quote"),
    (r"a\q", "unknown escape"),
])
def test_bad_input_is_one_line(line, says):
    with pytest.raises(SearchError) as info:
        parse_line(line, NOW)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_toggle_flag():
    assert toggle_flag("knight", "--regex") == "knight --regex"
    assert toggle_flag("knight --regex --context", "--regex") == "knight --context"
    assert toggle_flag("", "--context") == "--context"


def _tree(texts: list[str], seed: int) -> Tree:
    rng = random.Random(seed)
    tree = Tree(Node(id="0", text=texts[0], origin="prompt", created=0.0))
    ids = ["0"]
    with tree.transaction("build"):
        for i, text in enumerate(texts[1:], 1):
            nid = format(i, "x")
            tree.add_child(rng.choice(ids), Node(id=nid, text=text, origin="typed",
                                                 created=rng.random()))
            ids.append(nid)
    return tree


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text("abAB \x00é", max_size=6), min_size=1, max_size=25),
       st.text("abAB é", min_size=1, max_size=3), st.booleans(), st.integers(0, 3))
def test_the_joined_index_finds_what_a_walk_finds(texts, needle, case, seed):
    """A plain search in segments answered from the joined text (after ``prepare``) gives the
    same matches, spans included, as testing each node's own text in pre-order."""
    tree = _tree(texts, seed)
    query = Query(needle, case_sensitive=case)
    pattern = search_module.compile_query(query)
    assert pattern is not None
    expected = []
    for nid, _ in tree.iter_preorder():
        m = pattern.search(tree.node(nid).text)
        if m is not None:
            start = len(tree.context_text(nid)) - len(tree.node(nid).text)
            expected.append((nid, start + m.start(), start + m.end()))
    search_module._ORDERS.clear()
    prepare(tree)
    assert search_module._ORDERS[tree].joined is not None
    found = search(tree, query)
    assert [(m.node_id, m.start, m.end) for m in found.matches] == expected
    limited = search(tree, query, limit=1)
    assert [m.node_id for m in limited.matches] == [e[0] for e in expected[:1]]
    assert limited.truncated == (limited.searched < len(tree))


@pytest.mark.parametrize("query", [
    Query(origins=frozenset({"sampled"}), max_logprob=-20.0),
    Query("king", min_mean_logprob=-1.5, max_mean_logprob=-0.5),
    Query(min_entropy=5.0, min_depth=3, max_depth=6),
    Query("lord", context=True, max_logprob=-10.0),
])
def test_numeric_filters_from_the_walks_columns_match_each_node(query):
    """After ``prepare`` the numeric filters read columns kept with the walk; they give what
    testing each node's own values gives."""
    from loomtui.bench.synthetic import make_tree

    tree = make_tree(400, seed=3)
    tree.update("5", token_logprobs=None)  # unknown values never match
    tree.update("6", distribution=None)
    search_module._ORDERS.clear()
    cold = search(tree, query)
    prepare(tree)
    warm = search(tree, query)
    assert search_module._ORDERS[tree].columns  # the columns were used
    assert [m.node_id for m in warm.matches] == [m.node_id for m in cold.matches]
    for m in warm.matches:
        node = tree.node(m.node_id)
        lp = node.logprob()
        if query.max_logprob is not None:
            assert lp is not None and lp <= query.max_logprob
        if query.min_entropy is not None:
            assert node.distribution is not None and node.distribution.entropy >= 5.0
    assert "5" not in [m.node_id for m in warm.matches] or query.max_logprob is None
