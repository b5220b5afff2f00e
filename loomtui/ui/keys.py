"""The key map: one table feeds the bindings, the footer, the help screen, the command palette
and ``docs/keys.md``."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class Key:
    """One action with its keys (first key is the one shown), a short and a long description."""

    group: str
    keys: str
    action: str
    label: str
    help: str
    show: bool = False

    @property
    def display(self) -> str:
        return " ".join(_pretty(k) for k in self.keys.split(","))


_NAMES = {
    "left_square_bracket": "[", "right_square_bracket": "]", "less_than_sign": "<",
    "greater_than_sign": ">", "question_mark": "?", "space": "space", "escape": "esc",
    "delete": "del", "left_curly_bracket": "{", "right_curly_bracket": "}",
    "left_parenthesis": "(", "right_parenthesis": ")", "plus": "+", "equals_sign": "=",
    "slash": "/",
}


def _pretty(key: str) -> str:
    return _NAMES.get(key, key)


KEYS: list[Key] = [
    # navigation
    Key("Navigate", "h,left", "parent", "Parent", "Select the parent node", True),
    Key("Navigate", "l,right", "first_child", "Child", "Select the first child", True),
    Key("Navigate", "j", "next_sibling", "Sibling", "Select the next sibling", True),
    Key("Navigate", "k", "previous_sibling", "Prev sibling", "Select the previous sibling"),
    Key("Navigate", "g", "root", "Root", "Select the root (the prompt)"),
    Key("Navigate", "G", "branch_end", "Branch end", "Follow first children down to a leaf"),
    Key("Navigate", "n", "next_bookmark", "Next bookmark",
        "Select the next bookmarked node (while a search is active: the next match)"),
    Key("Navigate", "N", "previous_bookmark", "Prev bookmark",
        "Select the previous bookmarked node (while a search is active: the previous match)"),
    Key("Navigate", "slash", "search", "Search", "Search the tree: text and the filters of "
        "`loomtui search` (--regex, --context, --origin, --tag, --max-logprob …); enter "
        "selects, esc ends the search"),
    Key("Navigate", "less_than_sign,alt+left", "back", "Back", "Back in selection history"),
    Key("Navigate", "greater_than_sign,alt+right", "forward", "Forward",
        "Forward in selection history"),
    # growing
    Key("Grow", "e,space", "expand", "Expand", "Sample n children (streams; esc cancels)", True),
    Key("Grow", "escape", "cancel", "Cancel", "Stop generating (keeps what was generated) "
        "or leave the token cursor", True),
    Key("Grow", "1,2,3,4,5,6,7,8,9", "pick_rank", "Pick 1-9",
        "Add the token of that rank as a child (at the token cursor: branch there)"),
    Key("Grow", "plus,equals_sign", "more_alternatives", "More",
        "More alternatives: at the token cursor, the model's whole list there (enter picks "
        "any row); else the next token's top 100"),
    Key("Grow", "i", "type_text", "Type", "Type text to add as a child, scored by the model",
        True),
    Key("Grow", "s", "sampler", "Sampler", "Simulator settings: n, max tokens, temperature, "
        "top-p, top-k, min-p, seed, stop", True),
    Key("Grow", "A", "autoloom", "Autoloom", "Let the model grow the tree from the node: "
        "best-first, beam or sample search by score (esc stops it; one undo step)"),
    Key("Grow", "right_square_bracket,shift+right", "token_right", "Token →",
        "Move the token cursor right (shows that position's alternatives)"),
    Key("Grow", "left_square_bracket,shift+left", "token_left", "Token ←",
        "Move the token cursor left"),
    Key("Grow", "right_curly_bracket", "word_right", "Word →",
        "Move the token cursor to the next word"),
    Key("Grow", "left_curly_bracket", "word_left", "Word ←",
        "Move the token cursor to the previous word"),
    Key("Grow", "right_parenthesis", "segment_end", "Segment end",
        "Move the token cursor to the node's last token"),
    Key("Grow", "left_parenthesis", "segment_start", "Segment start",
        "Move the token cursor to the node's first token"),
    # editing
    Key("Edit", "c", "edit", "Edit", "Edit the node's text (makes an edited fork; the prompt "
        "is edited in place)"),
    Key("Edit", "x", "split", "Split", "Split the node at the token cursor"),
    Key("Edit", "m", "merge", "Merge", "Merge the node with its chain of only children"),
    Key("Edit", "d,delete", "delete", "Delete", "Delete the node and its subtree"),
    Key("Edit", "b", "bookmark", "Bookmark", "Toggle the bookmark on the node"),
    Key("Edit", "a", "note", "Note", "Write a note on the node"),
    Key("Edit", "u,ctrl+z", "undo", "Undo", "Undo the last change", True),
    Key("Edit", "U,ctrl+y", "redo", "Redo", "Redo the last undone change"),
    # view
    Key("View", "o", "toggle_order", "Order", "Sort children by probability or by creation"),
    Key("View", "v", "cycle_colour", "Colour", "Colour tokens by probability, entropy, "
        "surprise, or not at all"),
    Key("View", "shift+up", "branch_up", "Scroll ↑", "Scroll the branch text up"),
    Key("View", "shift+down", "branch_down", "Scroll ↓", "Scroll the branch text down"),
    Key("View", "f1,question_mark", "help", "Help", "Show all keys, row marks and colours",
        True),
    # predictors
    Key("Predictors", "P", "predictors", "Predictors", "Switch the active predictor or load "
        "another (loaded ones, engine profiles, bard, smollm2, an engine URL or model name)"),
    Key("Predictors", "C", "compare", "Compare", "Toggle the compare panel: the next-token "
        "distributions of the active and another loaded predictor, KL and total variation"),
    # files
    Key("File", "ctrl+s", "save", "Save", "Save the session", True),
    Key("File", "W", "save_as", "Save as", "Save the session under a new name"),
    Key("File", "ctrl+o,O", "open", "Open", "Open another session file"),
    Key("File", "ctrl+r", "reload", "Reload", "Load the session again from its file"),
    Key("File", "q", "quit", "Quit", "Quit (asks first if there are unsaved changes)", True),
]
"""Every action of the app. ``ctrl+p`` (command palette) and ``ctrl+q`` (quit) come from Textual."""

APP_ACTIONS = frozenset({"help", "save", "save_as", "open", "reload", "quit", "predictors"})
"""Actions of the App (lifecycle, files); every other action belongs to the loom screen."""


def bindings(app: bool | None = None) -> list[Binding]:
    """Bindings of the key table: the App's (``app=True``), the loom screen's (False), or all."""
    out: list[Binding] = []
    for k in KEYS:
        if app is not None and (k.action in APP_ACTIONS) != app:
            continue
        if k.action == "pick_rank":
            out.extend(Binding(str(r), f"pick_rank({r})", f"Pick {r}", show=False,
                               id=f"pick-{r}", tooltip=k.help) for r in range(1, 10))
            continue
        out.append(Binding(k.keys, k.action, k.label, show=k.show, id=k.action,
                           tooltip=k.help, key_display=_pretty(k.keys.split(",")[0])))
    return out


def markdown_table() -> str:
    """The key map as a Markdown table (for ``docs/keys.md``)."""
    rows = ["| Keys | Action | What it does |", "| --- | --- | --- |"]
    for k in KEYS:
        keys = " / ".join(f"`{_pretty(x)}`" for x in k.keys.split(","))
        if k.action == "pick_rank":
            keys = "`1` … `9`"
        rows.append(f"| {keys} | {k.label} | {k.help} |")
    rows.append("| `ctrl+p` | Command palette | Search and run every action |")
    rows.append("| `ctrl+q` | Quit | Quit (asks first if there are unsaved changes) |")
    rows.append("| `enter` | Pick | In the distribution panel: pick the highlighted token |")
    rows.append("| `tab` / `shift+tab` | Focus | Move between the tree and distribution panels |")
    return "\n".join(rows) + "\n"
