"""Every test gets its own recent-files list (never the user's)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOOMTUI_STATE", str(tmp_path_factory.mktemp("state")))
