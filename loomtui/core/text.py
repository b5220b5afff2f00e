"""Text from files and models, made safe and readable for a terminal; escapes for options.

Every string that came from a session, an imported file or a model is untrusted: shown in a
terminal it must never carry raw control characters (ESC sequences clear the screen, OSC 52
writes the clipboard). :func:`terminal_safe` keeps newlines and tabs and shows every other
control character as a visible symbol; :func:`inline` and :func:`visible` also show newlines
and tabs (for one-line views and single tokens).
"""

from __future__ import annotations

import re

_C0 = {c: chr(0x2400 + c) for c in range(0x20)}  # ␀ ... ␟ (Unicode control pictures)
_C0[0x7F] = "␡"
_C1 = {c: f"<{c:02X}>" for c in range(0x80, 0xA0)}
_UNSAFE = {**_C0, **_C1}
for _c in ("\u2028", "\u2029", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
           "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c"):
    # line separators and bidirectional controls reorder or break what the terminal shows
    _UNSAFE[ord(_c)] = f"<U+{ord(_c):04X}>"

_SAFE = {k: v for k, v in _UNSAFE.items() if k not in (0x0A, 0x09)}
_SAFE_TABLE = str.maketrans(_SAFE)
_INLINE_TABLE = str.maketrans({**_UNSAFE, 0x0A: "⏎", 0x09: "⇥", 0x0D: "␍"})
_VISIBLE_TABLE = str.maketrans({**_UNSAFE, 0x0A: "⏎", 0x09: "⇥", 0x0D: "␍", 0x20: "␣"})
_ANY_UNSAFE = re.compile("[" + "".join(re.escape(chr(c)) for c in _UNSAFE) + "]")


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a character that a terminal would act on rather than show."""
    return _ANY_UNSAFE.search(text) is not None


def terminal_safe(text: str) -> str:
    """``text`` with every control character but newline and tab made visible."""
    return text.translate(_SAFE_TABLE)


def inline(text: str) -> str:
    """Text on one line: newlines, tabs and other controls shown as symbols, spaces kept."""
    return text.translate(_INLINE_TABLE)


def visible(text: str) -> str:
    """Every whitespace and control character made visible (for single tokens); ∅ if empty."""
    return text.translate(_VISIBLE_TABLE) if text else "∅"


def json_safe(json_text: str) -> str:
    """A JSON text with the characters a terminal acts on (C1, DEL, bidirectional controls,
    line separators; C0 is escaped by any JSON encoder) written as ``\\uXXXX`` escapes: the
    same JSON value, safe to print. Such characters only occur inside JSON strings."""
    return _ANY_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


def short(text: str, width: int) -> str:
    """:func:`inline`, cut to ``width`` characters with an ellipsis."""
    s = inline(text)
    return s if len(s) <= width else s[: max(width - 1, 0)] + "…"


_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[nrt0\\]|.|$)", re.DOTALL)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\"}


def unescape(text: str) -> str:
    """Interpret ``\\n \\t \\r \\0 \\\\ \\xNN \\uNNNN`` in ``text`` (an option such as
    ``--stop``). Other characters, accented ones included, are kept as they are; a backslash
    before anything else is a ValueError naming it."""

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e in _SIMPLE:
            return _SIMPLE[e]
        if len(e) > 1 and e[0] in "ux":
            return chr(int(e[1:], 16))
        shown = "the end" if not e else repr("\\" + e)
        raise ValueError(f"unknown escape {shown} in {text!r:.60} (use \\\\ for a backslash)")

    return _ESCAPE.sub(one, text)


def one_line(text: str, width: int = 200) -> str:
    """The first line of a message, made safe and cut to ``width``."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return short(first, width)

