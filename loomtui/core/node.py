"""The records the tree is made of: nodes, next-token distributions, sampler settings.

A 100k-node session holds millions of token choices, so they are stored as columns (ids, texts,
log-probabilities) that load, validate and save as plain lists; iterating them yields
``(token_id, text, logprob)`` tuples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, overload

ORIGINS = ("prompt", "sampled", "picked", "typed", "edited", "imported")

TokenChoice = tuple[int, str, float]
"""One candidate token: (token id, its text, its log-probability in nats)."""


@dataclass(slots=True)
class Choices:
    """A ranked list of token choices, stored as columns (fast to load, save and validate)."""

    ids: list[int] = field(default_factory=list)
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

    ids: list[list[int]] = field(default_factory=list)
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
    much the stored top-k leaves out. ``entropy`` is None when only the top entries are known
    (for instance after a split, from stored per-token alternatives).
    """

    top: Choices
    entropy: float | None
    mass: float
    model: str | None = None

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
            top=top, entropy=None, mass=sum(math.exp(lp) for lp in top.logprobs), model=model
        )


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

    def validated(self) -> Sampler:
        """Return self, or raise ValueError naming the first setting out of range."""
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p < 1:
            raise ValueError(f"min-p must be in [0, 1), got {self.min_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        return self

    def with_(self, **changes: Any) -> Sampler:
        return replace(self, **changes)


@dataclass(slots=True)
class Node:
    """One segment of text in the tree; its context is the concatenation of its path.

    ``token_ids`` are exact ids, never re-tokenised; ``token_offsets[i]`` is where token i starts
    in ``text``. Both are None for text that no model has tokenised (imported, typed offline).
    ``alternatives[i]`` are the top few tokens the model offered at token i's position.
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

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids) if self.token_ids is not None else 0

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

    def copy(self, **changes: Any) -> Node:
        """A shallow copy with lists copied, so edits to one never leak into the other."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("token_ids", "token_offsets", "token_logprobs", "tags"):
            if data[key] is not None:
                data[key] = list(data[key])
        if self.alternatives is not None:
            data["alternatives"] = self.alternatives.slice(0)
        data.update(changes)
        return Node(**data)


NODE_FIELDS = tuple(f.name for f in fields(Node))
