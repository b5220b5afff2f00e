"""Decoding a growing token sequence in linear time.

Decoding the whole sequence after every new token costs O(n) per token, O(n^2) for a rollout
or for token offsets. Here each token is decoded with a few tokens of left context (so that a
tokenizer's word-boundary rules see what they need), and text is released only once it no
longer ends in an incomplete UTF-8 character (U+FFFD), the scheme vLLM and transformers'
streamers use.
"""

from __future__ import annotations

import re
from collections.abc import Callable

REPLACEMENT = "\ufffd"


class IncrementalText:
    """The text of ``ids`` as tokens are pushed, and where each token starts in it."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self.ids: list[int] = []
        self.text = ""
        self.starts: list[int] = []
        self._prefix = 0  # window start: decoded again for context, never released twice
        self._read = 0  # tokens up to here are in ``text``
        self._prefix_text = ""

    def push(self, token_id: int) -> str:
        """Add a token; returns the text it released (empty while a character is split)."""
        self.starts.append(len(self.text))
        self.ids.append(token_id)
        new = self.decode(self.ids[self._prefix :])
        if len(new) <= len(self._prefix_text) or new.endswith(REPLACEMENT):
            return ""
        added = new[len(self._prefix_text) :]
        self.text += added
        self._prefix, self._read = self._read, len(self.ids)
        self._prefix_text = self.decode(self.ids[self._prefix : self._read])
        return added


def token_starts(decode: Callable[[list[int]], str], ids: list[int], text: str) -> list[int]:
    """Where each token of ``ids`` starts in ``text`` (= ``decode(ids)``): monotone, in range.

    Linear when incremental decoding reproduces ``text`` (byte-level BPE always does);
    otherwise each prefix is decoded, which is exact for any tokenizer but quadratic.
    """
    inc = IncrementalText(decode)
    for t in ids:
        inc.push(t)
    if inc.text == text:
        return inc.starts
    out, last = [], 0
    for i in range(len(ids)):
        pos = len(decode(ids[:i])) if i else 0
        pos = min(max(pos, last), len(text))
        out.append(pos)
        last = pos
    return out


def _byte_decoder() -> dict[str, int]:
    """The inverse of byte-level BPE's byte-to-character table (GPT-2's ``bytes_to_unicode``):
    printable bytes stand for themselves, the others for characters from U+0100 on."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars = list(keep)
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


_BYTES = _byte_decoder()
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def token_bytes(pieces: list[str]) -> list[bytes] | None:
    """The raw bytes of each vocabulary piece (``convert_ids_to_tokens``): byte-level BPE
    pieces map back through the byte table, SentencePiece's byte fallback ``<0xNN>`` to its
    byte. None when some piece is neither (the bytes are unknown)."""
    out = []
    for piece in pieces:
        m = _BYTE_FALLBACK.fullmatch(piece)
        if m is not None:
            out.append(bytes([int(m.group(1), 16)]))
        elif all(ch in _BYTES for ch in piece):
            out.append(bytes(_BYTES[ch] for ch in piece))
        else:
            return None
    return out
