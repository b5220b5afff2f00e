"""The simulator settings: n, max tokens, temperature, top-p, top-k, min-p, seed, stop.

Every field is bounded by :mod:`loomtui.core.limits` (max tokens by the model's window when it
is loaded), and the dialog shows the bounds next to each field.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from loomtui.core import limits
from loomtui.core.node import Sampler
from loomtui.core.text import unescape

FIELDS = (
    ("n", "rollouts (n)", limits.N),
    ("max_tokens", "max tokens", limits.MAX_TOKENS),
    ("temperature", "temperature", limits.TEMPERATURE),
    ("top_p", "top-p", limits.TOP_P),
    ("top_k", "top-k", limits.TOP_K),
    ("min_p", "min-p", limits.MIN_P),
    ("seed", "seed", limits.SEED),
    ("stop", "stop", None),
)
HINTS = {
    "n": "children per expand", "temperature": "0 = greedy", "top_p": "1 = off",
    "top_k": "0 = off", "min_p": "0 = off", "seed": "blank = random; child i: seed+i",
    "stop": f"comma-separated, at most {limits.MAX_STOPS}; \\n \\t \\\\ \\x2c (comma)",
}


def _escape(s: str) -> str:
    return (s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
            .replace(",", "\\x2c"))


def bound_for(key: str, window: int | None) -> limits.Bound | None:
    if key == "max_tokens" and window:
        return limits.max_tokens_bound(window)
    return next(b for k, _, b in FIELDS if k == key)


def hint(key: str, window: int | None) -> str:
    bound = bound_for(key, window)
    bits = [bound.describe()] if bound is not None else []
    if key == "max_tokens" and window:
        bits.append(f"over {window // 2} runs as {window // 2}")
    if key in HINTS:
        bits.append(HINTS[key])
    return " · ".join(bits)


def parse_settings(values: dict[str, str], base: Sampler, window: int | None = None
                   ) -> tuple[Sampler, int | None]:
    """Sampler and seed from the form's strings; ValueError names the field and its bounds."""
    def num(key: str) -> float | int:
        bound = bound_for(key, window)
        assert bound is not None
        raw = values[key].strip()
        label = next(lbl for k, lbl, _ in FIELDS if k == key)
        try:
            value: float | int = int(raw) if bound.integer else float(raw)
        except ValueError:
            what = "an integer" if bound.integer else "a number"
            raise ValueError(f"{label} must be {what} in {bound.describe()}, "
                             f"got {raw!r:.40}") from None
        bound.check(value, label)
        return value

    stop_raw = values["stop"].strip()
    stops = tuple(unescape(s) for s in stop_raw.split(",") if s) if stop_raw else ()
    limits.check_stops(stops)
    sampler = base.with_(
        n=num("n"), max_tokens=num("max_tokens"), temperature=num("temperature"),
        top_p=num("top_p"), top_k=num("top_k"), min_p=num("min_p"), stop=stops,
    ).validated(window)
    seed = None if not values["seed"].strip() else int(num("seed"))
    return sampler, seed


class SamplerScreen(ModalScreen[tuple[Sampler, int | None] | None]):
    """Edit the tree's sampler; invalid values show a message and keep the form open."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s,f2", "apply", "Apply", priority=True),
    ]

    def __init__(self, sampler: Sampler, seed: int | None, window: int | None = None) -> None:
        super().__init__()
        self.sampler = sampler
        self.seed = seed
        self.window = window

    def _value(self, key: str) -> str:
        if key == "seed":
            return "" if self.seed is None else str(self.seed)
        if key == "stop":
            return ",".join(_escape(s) for s in self.sampler.stop)
        value = getattr(self.sampler, key)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="sampler-box") as box:
            box.border_title = "Sampler (saved in the session)"
            box.border_subtitle = "enter / ctrl+s: apply · esc: cancel"
            with VerticalScroll(id="sampler-scroll"), Grid(id="sampler-grid"):
                for key, label, _ in FIELDS:
                    yield Label(label)
                    yield Input(self._value(key), id=f"f-{key}", tooltip=hint(key, self.window))
                    yield Label(Content(hint(key, self.window)), classes="bounds")
            yield Static("", id="sampler-error")
            with Horizontal(classes="buttons"):
                yield Button("Apply", id="apply", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#f-n", Input).focus()

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#f-{key}", Input).value for key, _, _ in FIELDS}

    def action_apply(self) -> None:
        try:
            result = parse_settings(self.values(), self.sampler, self.window)
        except ValueError as exc:
            self.query_one("#sampler-error", Static).update(Content(f"⚠ {exc}"))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.action_apply()
        else:
            self.dismiss(None)
