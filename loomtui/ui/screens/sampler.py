"""The simulator settings: n, max tokens, temperature, top-p, top-k, min-p, seed, stop."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from loomtui.core.node import Sampler

FIELDS = (
    ("n", "rollouts (n)", "children sampled per expand"),
    ("max_tokens", "max tokens", "tokens per rollout"),
    ("temperature", "temperature", "0 = greedy"),
    ("top_p", "top-p", "1 = off"),
    ("top_k", "top-k", "0 = off"),
    ("min_p", "min-p", "0 = off"),
    ("seed", "seed", "blank = random; child i gets seed+i"),
    ("stop", "stop", "comma-separated; \\n for newline"),
)


def _escape(s: str) -> str:
    return s.encode("unicode_escape").decode("ascii").replace(",", "\\x2c")


def parse_settings(values: dict[str, str], base: Sampler) -> tuple[Sampler, int | None]:
    """Sampler and seed from the form's strings; ValueError names the bad field."""
    def num(key: str, kind: type) -> float | int:
        raw = values[key].strip()
        try:
            return kind(raw)
        except ValueError:
            label = next(lbl for k, lbl, _ in FIELDS if k == key)
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"{label} must be {what}, got {raw!r}") from None

    stop_raw = values["stop"].strip()
    stops = tuple(s.encode("latin-1", "backslashreplace").decode("unicode_escape")
                  for s in stop_raw.split(",") if s) if stop_raw else ()
    sampler = base.with_(
        n=num("n", int), max_tokens=num("max_tokens", int),
        temperature=num("temperature", float), top_p=num("top_p", float),
        top_k=num("top_k", int), min_p=num("min_p", float), stop=stops,
    ).validated()
    seed = None if not values["seed"].strip() else int(num("seed", int))
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    return sampler, seed


class SamplerScreen(ModalScreen[tuple[Sampler, int | None] | None]):
    """Edit the tree's sampler; invalid values show a message and keep the form open."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s,f2", "apply", "Apply", priority=True),
    ]

    def __init__(self, sampler: Sampler, seed: int | None) -> None:
        super().__init__()
        self.sampler = sampler
        self.seed = seed

    def _value(self, key: str) -> str:
        if key == "seed":
            return "" if self.seed is None else str(self.seed)
        if key == "stop":
            return ",".join(_escape(s) for s in self.sampler.stop)
        return f"{getattr(self.sampler, key):g}" if isinstance(
            getattr(self.sampler, key), float) else str(getattr(self.sampler, key))

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide") as box:
            box.border_title = "Sampler (saved in the session)"
            box.border_subtitle = "enter / ctrl+s: apply · esc: cancel"
            with Grid(id="sampler-grid"):
                for key, label, hint in FIELDS:
                    yield Label(label)
                    yield Input(self._value(key), id=f"f-{key}", tooltip=hint,
                                placeholder=hint)
            yield Static("", id="sampler-error")
            with Horizontal(classes="buttons"):
                yield Button("Apply", id="apply", variant="primary")
                yield Button("Cancel", id="cancel")

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#f-{key}", Input).value for key, _, _ in FIELDS}

    def action_apply(self) -> None:
        try:
            result = parse_settings(self.values(), self.sampler)
        except ValueError as exc:
            self.query_one("#sampler-error", Static).update(f"⚠ {exc}")
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
