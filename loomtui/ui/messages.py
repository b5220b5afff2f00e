"""Messages that thread workers post to the app (results, progress, failures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from loomtui.core.node import Distribution, Sampler
from loomtui.core.predictor import Segment


class ModelLoaded(Message):
    def __init__(self, predictor: Any) -> None:
        super().__init__()
        self.predictor = predictor


class ModelFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class DistributionReady(Message):
    """The next-token distribution of ``node_id`` was computed (None: skipped or failed)."""

    def __init__(self, node_id: str, distribution: Distribution | None,
                 stamp: Any = None) -> None:
        super().__init__()
        self.node_id = node_id
        self.distribution = distribution
        self.stamp = stamp


@dataclass
class StreamState:
    """What the rollouts of one expansion look like so far."""

    texts: list[str]
    tokens: list[int]


class ExpandProgress(Message):
    """Rollouts streamed so far (throttled)."""

    def __init__(self, job: int, state: StreamState) -> None:
        super().__init__()
        self.job = job
        self.state = state


class ExpandDone(Message):
    """Sampling finished (or was cancelled): the segments to add under ``node_id``."""

    def __init__(self, job: int, node_id: str, segments: list[Segment], sampler: Sampler,
                 cancelled: bool) -> None:
        super().__init__()
        self.job = job
        self.node_id = node_id
        self.segments = segments
        self.sampler = sampler
        self.cancelled = cancelled
        self.stamp: Any = None


class Scored(Message):
    """A picked token or typed text was scored: add it as a child of ``node_id``."""

    def __init__(self, node_id: str, segment: Segment, origin: str, stamp: Any = None) -> None:
        super().__init__()
        self.node_id = node_id
        self.segment = segment
        self.origin = origin
        self.stamp = stamp


class TaskFailed(Message):
    """A worker failed; ``error`` is one line meant for the user."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__()
        self.what = what
        self.error = error
