"""The open dialog: a path with tab completion, the files it could mean, and the sessions
opened lately. Other looms' files open too (the App imports them)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from loomtui.core import completion, recent
from loomtui.core.text import inline, short
from loomtui.ui.format import file_size

ROWS = 200
"""At most this many files are listed (typing narrows them)."""


def _when(mtime: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))


def _row(label: str, detail: str, style: str = "") -> Content:
    """One list row: a file name (untrusted: never markup, controls made visible)."""
    name = Content.styled(short(inline(label), 40).ljust(41), style)
    return Content.assemble(name, Content.styled(detail, "dim"))


class OpenFile(ModalScreen["Path | None"]):
    """Pick a file: type a path (tab completes it, as in a shell) or choose from the list
    (recent sessions when nothing is typed, else the files of the typed directory)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "complete", "Complete", priority=True, show=False),
        Binding("down", "to_list", "List", show=False),
    ]

    def __init__(self, start: str = "", *, sessions_dir: Path | None = None,
                 title: str = "Open a session (or another loom's file)") -> None:
        super().__init__()
        self.start = start
        self.sessions_dir = sessions_dir
        self.title_text = title
        self._paths: list[Path] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="open-box") as box:
            box.border_title = self.title_text
            box.border_subtitle = "tab: complete · ↓: list · enter: open · esc: cancel"
            yield Input(self.start, placeholder="path to a session file", id="open-path",
                        select_on_focus=False)  # typing goes on after the directory
            yield Static("", id="open-what")
            yield OptionList(id="open-list")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_position = len(field.value)
        field.focus()
        self._fill(self.start)

    # ------------------------------------------------------------------ listing
    def _fill(self, text: str) -> None:
        """The rows for what is typed: recent sessions and the sessions directory when
        nothing is, else the typed directory's entries that match."""
        rows: list[tuple[Path, Content]] = []
        if not text.strip():
            what = "recent sessions"
            for p in recent.read_recent():
                st = completion.stat(p)
                if st is not None and completion.S_ISREG(st.st_mode):
                    where = inline(str(p.parent))
                    where = where if len(where) <= 40 else "…" + where[-39:]
                    rows.append((p, _row(p.name, f"{_when(st.st_mtime)}  {file_size(st.st_size):>6}"
                                                 f"  {where}")))
            if self.sessions_dir is not None and completion.is_dir(self.sessions_dir):
                what += f" · {short(inline(str(self.sessions_dir)), 30)}/"
                for e in completion.entries(self.sessions_dir):
                    if e.path not in (r[0] for r in rows):
                        rows.append((e.path, self._entry_row(e)))
        else:
            directory, prefix = completion.split(text)
            what = f"in {short(inline(str(directory)), 50)}/"
            rows = [(e.path, self._entry_row(e)) for e in completion.entries(directory, prefix)]
        more = len(rows) - ROWS
        rows = rows[:ROWS]
        self._paths = [p for p, _ in rows]
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(c) for _, c in rows])
        note = f"{len(rows)} shown, {more} more: type to narrow" if more > 0 else (
            "nothing matches" if not rows else "")
        self.query_one("#open-what", Static).update(
            Content.styled(what + (f" · {note}" if note else ""), "dim"))

    def _entry_row(self, e: completion.Entry) -> Content:
        if e.is_dir:
            return _row(e.path.name + "/", "directory", "bold")
        return _row(e.path.name, f"{_when(e.mtime)}  {file_size(e.size):>6}")

    @on(Input.Changed, "#open-path")
    def _typed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    # ------------------------------------------------------------------ actions
    def action_complete(self) -> None:
        field = self.query_one(Input)
        if not field.has_focus:
            field.focus()
            return
        text, found = completion.complete(field.value)
        if text != field.value:
            field.value = text
            field.cursor_position = len(text)
        elif not found:
            self.app.bell()

    def action_to_list(self) -> None:
        options = self.query_one(OptionList)
        if self._paths and not options.has_focus:
            options.focus()
            if options.highlighted is None:
                options.highlighted = 0

    @on(Input.Submitted, "#open-path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            if self._paths:
                self._choose(self._paths[0])
            return
        self._choose(Path(os.path.expanduser(text)))

    @on(OptionList.OptionSelected, "#open-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._choose(self._paths[event.option_index])

    def _choose(self, path: Path) -> None:
        if completion.is_dir(path):  # go into it, as a shell's completion does
            field = self.query_one(Input)
            field.value = str(path).rstrip(os.sep) + os.sep
            field.cursor_position = len(field.value)
            field.focus()
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
