"""The domain core must import without any UI or ML framework (it runs headless and loads fast)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("textual", "rich", "torch", "transformers")

SCRIPT = f"""
import json, sys
import loomtui.core, loomtui.core.session, loomtui.core.importers, loomtui.core.export
import loomtui.core.predictor
forbidden = {FORBIDDEN!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in forbidden)))
"""


def test_core_imports_no_ui_or_ml_framework() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the core pulled in {loaded}"


def test_the_launcher_imports_nothing_of_loomtui_before_it_starts_the_model_process() -> None:
    """``loomtui.launch`` decides whether to start the model process first: it and what it
    imports must be light (the standard library), or that start comes later."""
    script = ("import json, sys; import loomtui.launch, loomtui.backends.host_spawn; "
              "print(json.dumps(sorted(m for m in sys.modules if m.startswith('loomtui'))))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == ["loomtui", "loomtui.backends", "loomtui.backends.host_spawn",
                      "loomtui.command_line", "loomtui.launch"]
