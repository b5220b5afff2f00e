"""Copy the key map and the main-screen snapshot into the README and docs/ (run after changing
keys or the main screen, and after `pytest tests/test_ui_snapshots.py --snapshot-update`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from loomtui.ui.keys import markdown_table

TOP = Path(__file__).resolve().parent.parent


def main() -> None:
    table = markdown_table()
    (TOP / "docs" / "keys.md").write_text(table)
    readme = TOP / "README.md"
    text = readme.read_text()
    new, n = re.subn(r"\| Keys \| Action \| What it does \|\n(?:\|.*\|\n)+",
                     lambda _: table, text, count=1)
    if n != 1:
        raise SystemExit("README.md: no key table found (a line '| Keys | Action | ...')")
    readme.write_text(new)
    shutil.copyfile(TOP / "tests" / "__snapshots__" / "test_ui_snapshots" / "test_main_screen.svg",
                    TOP / "docs" / "screenshot.svg")


if __name__ == "__main__":
    main()
