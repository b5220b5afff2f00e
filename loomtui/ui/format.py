"""Pure helpers that turn domain values into short, readable, styled text."""

from __future__ import annotations

import math

from rich.style import Style

from loomtui.core.errors import LoomError
from loomtui.core.node import Choices, Node
from loomtui.core.text import one_line as safe_line

ORIGIN_MARK = {"prompt": "»", "sampled": "s", "picked": "p", "typed": "t", "edited": "e",
               "imported": "i"}
COLOUR_MODES = ("probability", "entropy", "surprise", "off")

# Five buckets from "the model expected this" (green) to "a surprise" (red).
_SCALE = ("#ff5f5f", "#ff9f43", "#e5c07b", "#98c379", "#56b6c2")
SCALE_STYLES = tuple(Style(color=c) for c in _SCALE)
UNKNOWN_STYLE = Style(color="#8a8a8a", italic=True)


def percent(lp: float | None) -> str:
    if lp is None:
        return "  ?  "
    p = 100 * math.exp(lp)
    return f"{p:4.1f}%" if p < 99.95 else " 100%"


def mean_prob(node: Node) -> float | None:
    """Geometric-mean token probability of a node (its one token's probability if single)."""
    lps = node.token_logprobs
    if not lps or any(lp is None for lp in lps):
        return None
    return math.exp(sum(lps) / len(lps))  # type: ignore[arg-type]


def entropy_of(choices: Choices) -> float | None:
    """Entropy (nats) of the stored top choices, renormalised; None if there are none."""
    if not len(choices):
        return None
    ps = [math.exp(lp) for lp in choices.logprobs]
    total = sum(ps)
    if total <= 0:
        return None
    return -sum(p / total * math.log(p / total) for p in ps if p > 0)


def token_style(mode: str, logprob: float | None, alts: Choices | None) -> Style | None:
    """The colour of one token in the branch view for a colouring mode."""
    if mode == "off":
        return None
    if mode == "entropy":
        h = entropy_of(alts) if alts is not None else None
        if h is None:
            return UNKNOWN_STYLE
        # low entropy (confident) is green; high is red. Top-5 entropy is at most ln 5 = 1.61.
        return SCALE_STYLES[4 - min(4, int(h / 0.35))]
    if logprob is None:
        return UNKNOWN_STYLE
    if mode == "surprise":
        bits = -logprob / math.log(2)
        return SCALE_STYLES[4 - min(4, int(bits / 2.5))]
    p = math.exp(logprob)
    return SCALE_STYLES[0 if p < 0.05 else 1 if p < 0.2 else 2 if p < 0.5 else 3 if p < 0.8 else 4]


def bar(fraction: float, width: int) -> str:
    """A horizontal bar with eighth-block resolution."""
    eighths = max(0, round(fraction * width * 8))
    full, rest = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")).ljust(width)


def sampler_summary(node: Node) -> str:
    s = node.sampler
    if s is None:
        return ""
    bits = [f"T={s.temperature:g}"]
    if s.top_p < 1:
        bits.append(f"top-p={s.top_p:g}")
    if s.top_k:
        bits.append(f"top-k={s.top_k}")
    if s.min_p:
        bits.append(f"min-p={s.min_p:g}")
    return " ".join(bits)


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 node``, ``2 nodes``, ``1 child``, ``3 children``."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def file_size(n: float) -> str:
    """A file's size in a few characters: 512B, 15.0K, 59.0M."""
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return ""


def one_line(exc: BaseException) -> str:
    """A user-facing one-line message for any exception (controls made visible)."""
    if isinstance(exc, LoomError | ValueError) and str(exc):
        return safe_line(str(exc))
    text = safe_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
