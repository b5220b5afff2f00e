"""The app's search bar: one line of text and the CLI's ``loomtui search`` flags.

``knight dies --context --origin sampled --max-logprob -5`` is the query ``knight dies`` with
those filters. Words are split as a shell does (quotes keep spaces: ``"my  lord"``), but a
backslash is kept as typed, so regexes need no doubling (``thou\\s+love --regex``); in plain
text ``\\n``, ``\\t`` and ``\\\\`` are a newline, a tab and a backslash (``light\\nthe
--context`` finds text across a segment boundary). A flag's value follows it (``--tag x``) or
is joined with ``=`` (``--tag=x``); ``--`` ends the flags (the words after it are text, even
``--regex``). Bad input raises :class:`~loomtui.core.search.SearchError` with one line naming
the flag and the problem.
"""

from __future__ import annotations

import difflib
import math
import shlex
from collections.abc import Callable
from typing import Any

from loomtui.core.search import Query, SearchError, parse_time
from loomtui.core.text import unescape

_SWITCHES = {"--regex": "regex", "--case-sensitive": "case_sensitive", "--context": "context",
             "--bookmarked": "bookmarked", "--has-note": "has_note"}
_REPEATED = {"--origin": "origins", "--tag": "tags"}
_INTS = {"--min-depth": "min_depth", "--max-depth": "max_depth"}
_FLOATS = {"--min-logprob": "min_logprob", "--max-logprob": "max_logprob",
           "--min-mean-logprob": "min_mean_logprob", "--max-mean-logprob": "max_mean_logprob",
           "--min-entropy": "min_entropy"}
_TIMES = {"--since": "since", "--until": "until"}
_STRINGS = {"--model": "model"}
FLAGS = (*_SWITCHES, *_REPEATED, "--model", *_INTS, *_TIMES, *_FLOATS)
"""Every flag the search bar takes, as ``loomtui search`` spells it."""

SYNTAX = ("text [--regex] [--context] [--case-sensitive] [--origin O] [--bookmarked] "
          "[--has-note] [--tag T] [--model M] [--min-depth D] [--max-depth D] [--since 7d] "
          "[--until WHEN] [--min-logprob X] [--max-logprob X] [--min-mean-logprob X] "
          "[--max-mean-logprob X] [--min-entropy X]")


def split_words(line: str) -> list[str]:
    """Shell-like words, backslashes kept; SearchError on an unclosed quote."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        raise SearchError("the query has an unclosed quote") from None


def _number(flag: str, raw: str, kind: Callable[[str], Any]) -> Any:
    what = "an integer" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise SearchError(f"{flag} must be {what}, got {raw!r:.40}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SearchError(f"{flag} must be a finite number, got {raw!r:.40}")
    return value


def parse_line(line: str, now: float) -> Query:
    """The validated :class:`Query` of a search-bar line (``now`` for ``--since 7d``)."""
    words = split_words(line)
    text: list[str] = []
    fields: dict[str, Any] = {}
    origins: list[str] = []
    tags: list[str] = []
    i = 0
    flags_done = False
    while i < len(words):
        word = words[i]
        i += 1
        if flags_done or not word.startswith("--") or word == "--":
            if word == "--" and not flags_done:
                flags_done = True
            else:
                text.append(word)
            continue
        flag, eq, value = word.partition("=")
        if flag in _SWITCHES:
            if eq:
                raise SearchError(f"{flag} takes no value")
            fields[_SWITCHES[flag]] = True
            continue
        if flag not in FLAGS:
            near = difflib.get_close_matches(flag, FLAGS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise SearchError(f"unknown option {flag!r:.40}{hint}; end the options with -- "
                              "to search for it")
        if not eq:
            if i >= len(words):
                raise SearchError(f"{flag} needs a value")
            value = words[i]
            i += 1
        if flag in _REPEATED:
            (origins if flag == "--origin" else tags).append(value)
        elif flag in _INTS:
            fields[_INTS[flag]] = _number(flag, value, int)
        elif flag in _FLOATS:
            fields[_FLOATS[flag]] = _number(flag, value, float)
        elif flag in _TIMES:
            fields[_TIMES[flag]] = parse_time(value, now)
        else:
            fields[_STRINGS[flag]] = value
    joined = " ".join(text)
    if not fields.get("regex"):
        try:
            joined = unescape(joined)
        except ValueError as exc:
            raise SearchError(f"{exc} (with --regex a backslash is the regex's)") from None
    return Query(joined, origins=frozenset(origins), tags=tuple(tags), **fields).validated()


def toggle_flag(line: str, flag: str) -> str:
    """``line`` with the switch ``flag`` added at its end, or removed where it stands alone."""
    words = line.split(" ")
    if flag in words:
        return " ".join(w for w in words if w != flag).strip()
    return f"{line.rstrip()} {flag}".lstrip()
