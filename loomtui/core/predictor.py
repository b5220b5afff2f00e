"""The predictor protocol: what the tree needs from a language model (no torch here).

A predictor maps a node's context (the path from the root) to a next-token distribution, and
samples rollouts from it. Backends live in ``loomtui.backends``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from loomtui.core.node import Alternatives, Distribution, Sampler
from loomtui.core.tree import Tree


@dataclass(slots=True)
class Segment:
    """Tokens a model produced or scored, with everything a node stores about them."""

    text: str
    token_ids: list[int]
    token_offsets: list[int]
    token_logprobs: list[float]
    alternatives: Alternatives | None
    distribution: Distribution | None = None
    finish: str = "length"
    """Why sampling stopped: ``length``, ``stop``, ``eos``, ``cancelled`` or ``scored``."""
    seed: int | None = None
    truncated_context: int = 0
    """How many of the oldest context tokens did not fit the model's window."""
    token_bytes: list[bytes] | None = None
    """Each token's raw bytes, where ``text`` is not their exact decoding."""
    handle: object | None = None
    """Opaque backend state (its KV cache); hand it back with ``Predictor.adopt``."""


OnToken = Callable[[int, Segment], None]
"""Streaming callback: (rollout index, the rollout so far)."""


@runtime_checkable
class Predictor(Protocol):
    """A causal language model seen from the tree."""

    model_id: str
    context_window: int

    def distribution(self, tree: Tree, node_id: str, top_k: int = 20) -> Distribution:
        """The next-token distribution after ``node_id``'s context."""
        ...

    def sample(
        self, tree: Tree, node_id: str, n: int, sampler: Sampler, seed: int,
        on_token: OnToken | None = None, cancel: threading.Event | None = None,
    ) -> list[Segment]:
        """``n`` rollouts after ``node_id``; stops promptly once ``cancel`` is set."""
        ...

    def score(self, tree: Tree, node_id: str, text: str) -> Segment:
        """Tokenise ``text`` as a continuation of ``node_id`` and score each token."""
        ...

    def score_tokens(self, tree: Tree, node_id: str, token_ids: list[int]) -> Segment:
        """Score given token ids as a continuation of ``node_id``."""
        ...

    def tokenize(self, text: str) -> list[int]:
        ...

    def decode(self, token_ids: list[int]) -> str:
        ...

    def token_text(self, token_id: int) -> str:
        ...


@runtime_checkable
class CachingPredictor(Predictor, Protocol):
    """A predictor that keeps computed state (a KV cache) per node of the tree.

    Engines behind HTTP do not: their own prefix caches do the work.
    """

    def adopt(self, tree: Tree, node_id: str, segment: Segment) -> None:
        """Keep the state computed for ``segment`` (KV cache) under the node now holding it."""
        ...

    def protect(self, tree: Tree, node_id: str) -> None:
        """Keep ``node_id``'s path cached (it is the selected branch)."""
        ...
