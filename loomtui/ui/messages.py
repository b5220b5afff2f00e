"""Messages between threads and screens. Worker results and failures arrive through
``Worker.StateChanged`` (one handler per screen); these carry what a worker reports meanwhile,
and what the App tells the loom screen."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from loomtui.core.grow import Stamp


@dataclass(eq=False)
class StreamState:
    """What the rollouts of one expansion look like so far."""

    texts: list[str]
    tokens: list[int]


@dataclass(eq=False)
class ExpandProgress(Message):
    """Rollouts streamed so far (throttled), for the expansion stamped ``stamp``."""

    stamp: Stamp
    state: StreamState

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ExpandProgress) and message.stamp == self.stamp


@dataclass(eq=False)
class ModelReady(Message):
    """The App loaded the model (or failed: ``error``); the loom screen runs what it queued."""

    error: str | None = None

