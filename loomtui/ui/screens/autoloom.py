"""The autoloom dialog: strategy, budget, width, depth, score, question and seed of a run.

Every number is bounded as ``loomtui grow`` bounds it (:mod:`loomtui.core.autoloom`, which
reads :mod:`loomtui.core.limits`), the bounds are shown beside each field, and a bad value is
one line under the form (which stays open). Tokens per node are the sampler's max tokens.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from loomtui.core import autoloom, limits
from loomtui.core.autoloom import AutoloomError, Plan
from loomtui.core.text import one_line

NUMBERS = (
    ("budget", "budget", autoloom.BUDGET, "nodes the run creates"),
    ("width", "width", autoloom.WIDTH, "children per expansion; beam keeps this many"),
    ("depth", "depth", autoloom.DEPTH,
     f"blank: beam/sample {autoloom.DEFAULT_DEPTH}, best-first no limit"),
    ("seed", "seed", limits.SEED, "blank: random; the run replays from it"),
)
DEFAULT = Plan("best-first", 16)


def parse_plan(values: dict[str, str]) -> Plan:
    """A validated Plan from the form's strings; AutoloomError names the field and bounds."""
    def num(key: str) -> int | None:
        raw = values[key].strip()
        if not raw and key in ("depth", "seed"):
            return None
        bound = next(b for k, _, b, _ in NUMBERS if k == key)
        try:
            return int(raw)
        except ValueError:
            raise AutoloomError(f"{key} must be an integer in {bound.describe()}, "
                                f"got {raw!r:.40}") from None

    budget, width = num("budget"), num("width")
    question = values["question"].strip() or None
    score = values["score"]
    return Plan(values["strategy"], budget if budget is not None else 0,
                width=width if width is not None else 0, depth=num("depth"),
                weights=((score, 1.0),), question=question if score == "judge" else None,
                seed=num("seed")).validated()


class AutoloomScreen(ModalScreen[Plan | None]):
    """Set up a run; ``ctrl+s``/enter starts it, esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s,f2", "start", "Start", priority=True),
    ]

    def __init__(self, plan: Plan | None = None, max_tokens: int | None = None) -> None:
        super().__init__()
        self.plan = plan or DEFAULT
        self.max_tokens = max_tokens

    def _value(self, key: str) -> str:
        value = getattr(self.plan, key)
        return "" if value is None else str(value)

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(classes="dialog wide", id="autoloom-box") as box:
            box.border_title = "Autoloom: let the model grow the tree"
            box.border_subtitle = "enter / ctrl+s: start · esc: cancel"
            with Grid(id="autoloom-grid"):
                yield Label("strategy")
                yield Select([(s, s) for s in autoloom.STRATEGIES], value=plan.strategy,
                             allow_blank=False, id="f-strategy")
                yield Label(Content("best-first · beam · sample"), classes="bounds")
                for key, label, bound, hint in NUMBERS:
                    yield Label(label)
                    yield Input(self._value(key), id=f"f-{key}", tooltip=hint)
                    yield Label(Content(f"{bound.describe()} · {hint}"), classes="bounds")
                yield Label("score")
                yield Select([(s, s) for s in autoloom.SCORES],
                             value=plan.weights[0][0], allow_blank=False, id="f-score")
                yield Label(Content("logprob · mean-logprob · judge"), classes="bounds")
                yield Label("question")
                yield Input(plan.question or "", id="f-question",
                            placeholder="judge only: Is this vivid? Answer yes or no. {text}")
                yield Label(Content("judge: {text} once; yes/no"), classes="bounds")
            tokens = "" if self.max_tokens is None else f"{self.max_tokens} tokens a node "
            yield Static(Content(f"{tokens}(the sampler's max tokens: s changes them) · "
                                 "esc stops a run and keeps what it grew · one undo step"),
                         id="autoloom-note")
            yield Static("", id="autoloom-error")
            with Horizontal(classes="buttons"):
                yield Button("Start", id="start", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#f-budget", Input).focus()

    def values(self) -> dict[str, str]:
        out = {key: self.query_one(f"#f-{key}", Input).value for key, _, _, _ in NUMBERS}
        out["question"] = self.query_one("#f-question", Input).value
        for key in ("strategy", "score"):
            out[key] = str(self.query_one(f"#f-{key}", Select).value)
        return out

    def action_start(self) -> None:
        try:
            plan = parse_plan(self.values())
        except AutoloomError as exc:
            self.query_one("#autoloom-error", Static).update(Content(f"⚠ {one_line(str(exc))}"))
            return
        self.dismiss(plan)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.dismiss(None)
