"""One table of limits for every number that comes from a file, an option or a dialog.

The session loader, the CLI's options, the app's dialogs and ``--help`` all read these, so a
value is refused the same way wherever it comes from: out of range in a file, one line naming
the node and field; in an option or a dialog, one line naming it and its bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_LOGPROB = 1e-6
"""A log-probability is finite and at most this (a little over 0 for rounding)."""
MAX_MASS = 1 + 1e-6
MAX_TOKEN_ID = 2**31
"""Token ids in a file are in [0, 2**31); before a model runs, below its vocabulary size."""
MAX_SEED = 2**63
MAX_N = 256
MAX_TEMPERATURE = 100.0
MAX_STOPS = 16
MAX_STOP_CHARS = 256
MAX_SESSION_BYTES = 2 * 2**30
"""Sessions are regular files of at most 2 GiB (``--max-size`` or LOOMTUI_MAX_SESSION_MB)."""
MAX_TOP_K = 2**31
MAX_FOREIGN_DEPTH = 128
"""Other looms' fields (``foreign``) nest at most this deep: the JSON writer stops at 254
levels, and a session that loads must also save."""


@dataclass(frozen=True, slots=True)
class Bound:
    """An inclusive or exclusive numeric range with a name for messages."""

    name: str
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return f"{lo}{_fmt(self.low)}, {_fmt(self.high)}{hi}"

    def contains(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def check(self, value: object, what: str | None = None) -> None:
        """Raise ValueError naming ``what`` (default: the bound's name) and the bounds."""
        if not self.contains(value):
            kind = "an integer" if self.integer else "a number"
            raise ValueError(f"{what or self.name} must be {kind} in {self.describe()}, "
                             f"got {value!r:.40}")


def _fmt(x: float) -> str:
    if x == MAX_SEED:
        return "2**63"
    if x == MAX_TOKEN_ID:
        return "2**31"
    return str(int(x)) if float(x).is_integer() else repr(x)


LOGPROB = Bound("log-probability", -math.inf, MAX_LOGPROB)
ENTROPY = Bound("entropy", 0.0, math.inf)
MASS = Bound("mass", 0.0, MAX_MASS)
TOKEN_ID = Bound("token id", 0, MAX_TOKEN_ID, high_open=True, integer=True)
SEED = Bound("seed", 0, MAX_SEED, high_open=True, integer=True)
N = Bound("n", 1, MAX_N, integer=True)
TEMPERATURE = Bound("temperature", 0.0, MAX_TEMPERATURE)
TOP_P = Bound("top-p", 0.0, 1.0, low_open=True)
MIN_P = Bound("min-p", 0.0, 1.0, high_open=True)
TOP_K = Bound("top-k", 0, MAX_TOP_K, high_open=True, integer=True)
MAX_TOKENS = Bound("max tokens", 1, 2**31, high_open=True, integer=True)
"""The upper bound that applies is the model's window (:func:`max_tokens_bound`)."""


def max_tokens_bound(window: int) -> Bound:
    return Bound("max tokens", 1, window, integer=True)


def logprob_ok(x: object) -> bool:
    """A finite number <= MAX_LOGPROB (the hot check of loading: no Bound object)."""
    return (type(x) is float or type(x) is int) and -math.inf < x <= MAX_LOGPROB


def check_stops(stops: tuple[str, ...] | list[str], what: str = "stop") -> None:
    if len(stops) > MAX_STOPS:
        raise ValueError(f"{what}: at most {MAX_STOPS} stop strings, got {len(stops)}")
    for s in stops:
        if not isinstance(s, str):
            raise ValueError(f"{what}: stop strings must be strings")
        if len(s) > MAX_STOP_CHARS:
            raise ValueError(f"{what}: a stop string has {len(s)} characters "
                             f"(at most {MAX_STOP_CHARS})")


def session_max_bytes() -> int:
    """The largest session file loomtui reads: LOOMTUI_MAX_SESSION_MB or 2 GiB."""
    import os

    raw = os.environ.get("LOOMTUI_MAX_SESSION_MB")
    if raw:
        try:
            mb = float(raw)
        except ValueError:
            return MAX_SESSION_BYTES
        if math.isfinite(mb) and mb > 0:
            return int(mb * 2**20)
    return MAX_SESSION_BYTES
