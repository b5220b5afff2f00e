"""The records the tree is made of: nodes, next-token distributions, sampler settings.

A 100k-node session holds millions of token choices, so they are stored as columns (ids, texts,
log-probabilities) that load, validate and save as plain lists; iterating them yields
``(token_id, text, logprob)`` tuples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, overload

ORIGINS = ("prompt", "sampled", "picked", "typed", "edited", "imported")

TokenChoice = tuple[int | None, str, float]
"""One candidate token: (token id or None where unknown, its text, its log-probability)."""


@dataclass(slots=True)
class Choices:
    """A ranked list of token choices, stored as columns (fast to load, save and validate)."""

    ids: list[int | None] = field(default_factory=list)
    """Token ids; None where only the text is known (an engine that cannot tokenise, another
    loom's alternatives keyed by text)."""
    texts: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> TokenChoice: ...
    @overload
    def __getitem__(self, i: slice) -> Choices: ...
    def __getitem__(self, i: int | slice) -> TokenChoice | Choices:
        if isinstance(i, slice):
            return Choices(self.ids[i], self.texts[i], self.logprobs[i])
        return (self.ids[i], self.texts[i], self.logprobs[i])

    def __iter__(self) -> Iterator[TokenChoice]:
        return zip(self.ids, self.texts, self.logprobs, strict=True)

    def head(self, k: int) -> Choices:
        return Choices(self.ids[:k], self.texts[:k], self.logprobs[:k])

    @staticmethod
    def of(choices: Iterable[TokenChoice]) -> Choices:
        out = Choices()
        for tid, text, lp in choices:
            out.ids.append(tid)
            out.texts.append(text)
            out.logprobs.append(lp)
        return out


@dataclass(slots=True)
class Alternatives:
    """Per-token alternatives of a segment: ``alts[i]`` is the top few tokens at position i."""

    ids: list[list[int | None]] = field(default_factory=list)
    texts: list[list[str]] = field(default_factory=list)
    logprobs: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Choices:
        return Choices(self.ids[i], self.texts[i], self.logprobs[i])

    def __iter__(self) -> Iterator[Choices]:
        return (self[i] for i in range(len(self)))

    def slice(self, start: int, stop: int | None = None) -> Alternatives:
        return Alternatives(self.ids[start:stop], self.texts[start:stop],
                            self.logprobs[start:stop])

    def extend(self, other: Alternatives) -> None:
        self.ids.extend(other.ids)
        self.texts.extend(other.texts)
        self.logprobs.extend(other.logprobs)

    def append(self, choices: Choices) -> None:
        self.ids.append(choices.ids)
        self.texts.append(choices.texts)
        self.logprobs.append(choices.logprobs)

    @staticmethod
    def of(positions: Iterable[Iterable[TokenChoice]]) -> Alternatives:
        out = Alternatives()
        for pos in positions:
            out.append(Choices.of(pos))
        return out


@dataclass(slots=True)
class Distribution:
    """The predictor's next-token distribution after a context, truncated to its top entries.

    ``entropy`` (nats) and ``mass`` describe the *full* distribution, so the user can see how
    much the stored top-k leaves out. A *partial* distribution is one of which only the top
    entries are known (an engine's top-k logprobs, another loom's counterfactuals, a split's
    stored alternatives): its ``entropy`` is None and ``mass`` is the sum of the known
    probabilities. Nothing recomputes a partial distribution for the model that made it.
    """

    top: Choices
    entropy: float | None
    mass: float
    model: str | None = None
    partial: bool = False

    def logprob_of(self, token_id: int) -> float | None:
        """The stored log-probability of ``token_id``, or None if it is not in the top-k."""
        try:
            return self.top.logprobs[self.top.ids.index(token_id)]
        except ValueError:
            return None

    def rank_of(self, token_id: int) -> int | None:
        """1-based rank of ``token_id`` among the stored entries, or None."""
        try:
            return self.top.ids.index(token_id) + 1
        except ValueError:
            return None

    @staticmethod
    def from_choices(top: Choices, model: str | None = None) -> Distribution:
        """A partial distribution built from a few choices: entropy unknown."""
        return Distribution(
            top=top, entropy=None, mass=min(1.0, sum(math.exp(lp) for lp in top.logprobs)),
            model=model, partial=True,
        )

    def complete_for(self, model: str | None, top_k: int = 20) -> bool:
        """Whether this distribution needs no recomputing for ``model``: it is that model's,
        and either full (entropy known, ``top_k`` entries or all there are) or partial (all
        that model can give)."""
        if self.model != model:
            return False
        return self.partial or (self.entropy is not None and len(self.top) >= min(top_k, 20))


@dataclass(slots=True, frozen=True)
class Sampler:
    """Settings for sampling rollouts. ``temperature`` 0 means greedy; 0/1.0 disable filters."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    max_tokens: int = 32
    stop: tuple[str, ...] = ()
    n: int = 4

    def to_json(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
            "min_p": self.min_p, "max_tokens": self.max_tokens, "stop": list(self.stop),
            "n": self.n,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Sampler:
        return Sampler(
            temperature=float(data.get("temperature", 1.0)), top_k=int(data.get("top_k", 0)),
            top_p=float(data.get("top_p", 1.0)), min_p=float(data.get("min_p", 0.0)),
            max_tokens=int(data.get("max_tokens", 32)), stop=tuple(data.get("stop", ())),
            n=int(data.get("n", 4)),
        )

    def validated(self, window: int | None = None) -> Sampler:
        """Return self, or raise ValueError naming the first setting out of range (the limits
        of :mod:`loomtui.core.limits`; max tokens up to ``window`` when it is given)."""
        from loomtui.core import limits

        limits.TEMPERATURE.check(self.temperature)
        limits.TOP_K.check(self.top_k)
        limits.TOP_P.check(self.top_p)
        limits.MIN_P.check(self.min_p)
        (limits.MAX_TOKENS if window is None else limits.max_tokens_bound(window)).check(
            self.max_tokens)
        limits.N.check(self.n)
        limits.check_stops(self.stop)
        return self

    def with_(self, **changes: Any) -> Sampler:
        return replace(self, **changes)


@dataclass(slots=True)
class TokenScores:
    """What one model said about a node, kept when another model scores it: its tokens
    (offsets into the node's text, ids where known), their log-probabilities and alternatives,
    and the next-token distribution after the node."""

    token_offsets: list[int] | None = None
    token_logprobs: list[float | None] | None = None
    token_ids: list[int | None] | None = None
    alternatives: Alternatives | None = None
    distribution: Distribution | None = None


@dataclass(slots=True)
class Node:
    """One segment of text in the tree; its context is the concatenation of its path.

    ``token_ids`` are exact ids, never re-tokenised; ``token_offsets[i]`` is where token i starts
    in ``text``. Both are None for text that no model has tokenised (imported, typed offline);
    ``token_offsets`` without ``token_ids`` are tokens known by their text only (a hosted API).
    ``alternatives[i]`` are the top few tokens the model offered at token i's position.
    ``token_bytes`` keeps each token's raw bytes where ``text`` is not their exact decoding (a
    token that ends inside a UTF-8 character), so a branch's text is decoded from its bytes.
    ``scores`` keeps the scores this node had under other models (an imported file's, an
    engine's) when ``model`` scored it. ``foreign`` keeps other looms' fields as they were.
    ``tags`` hold the user's tags and machine marks (``autoloom:RUN``).
    """

    id: str
    text: str
    origin: str
    token_ids: list[int] | None = None
    token_offsets: list[int] | None = None
    token_logprobs: list[float | None] | None = None
    alternatives: Alternatives | None = None
    distribution: Distribution | None = None
    sampler: Sampler | None = None
    seed: int | None = None
    model: str | None = None
    created: float = 0.0
    bookmarked: bool = False
    note: str = ""
    tags: list[str] = field(default_factory=list)
    token_bytes: list[bytes] | None = None
    scores: dict[str, TokenScores] = field(default_factory=dict)
    foreign: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        if self.token_ids is not None:
            return len(self.token_ids)
        return len(self.token_offsets) if self.token_offsets is not None else 0

    def logprob(self) -> float | None:
        """Sum of this segment's token log-probabilities; None if any is unknown."""
        if not self.token_logprobs or any(lp is None for lp in self.token_logprobs):
            return None
        return float(sum(self.token_logprobs))  # type: ignore[arg-type]

    def pieces(self) -> list[str]:
        """The text of each token (one piece for the whole text if tokens are unknown)."""
        offs = self.token_offsets
        if not offs:
            return [self.text] if self.text else []
        ends = [*offs[1:], len(self.text)]
        return [self.text[a:b] for a, b in zip(offs, ends, strict=True)]

    def scores_kept(self, model: str | None, *, distribution: bool = False
                    ) -> dict[str, TokenScores]:
        """``scores`` with this node's current token scores (or, with ``distribution``, its
        distribution) filed under the model that made them, before ``model``'s replace them;
        ``scores`` itself when there is nothing of another model's to keep."""
        if distribution:
            d = self.distribution
            if d is None or d.model is None or d.model == model:
                return self.scores
            old = self.scores.get(d.model) or TokenScores()
            return {**self.scores, d.model: replace(old, distribution=d)}
        if (self.model is None or self.model == model or self.token_offsets is None
                or self.token_logprobs is None):
            return self.scores
        old = self.scores.get(self.model) or TokenScores()
        return {**self.scores, self.model: replace(
            old, token_offsets=self.token_offsets, token_logprobs=self.token_logprobs,
            token_ids=list(self.token_ids) if self.token_ids is not None else None,
            alternatives=self.alternatives)}

    def raw(self) -> bytes:
        """This segment's exact bytes: its tokens' raw bytes where kept, else its text's."""
        if self.token_bytes is not None:
            return b"".join(self.token_bytes)
        return self.text.encode("utf-8", "surrogatepass")
