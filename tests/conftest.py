"""Every test gets its own recent-files list (never the user's), and loading a model writes no
lean weight cache unless a test asks (each write is a process of its own)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOOMTUI_STATE", str(tmp_path_factory.mktemp("state")))
    monkeypatch.setenv("LOOMTUI_LEAN_CACHE", "0")


@pytest.fixture(scope="session")
def hf_model():
    """transformers' own model for a shipped model name: the independent reference the lean
    forward and the fast loader are held to (they never build it)."""
    from loomtui.backends import load_predictor

    return lambda name: load_predictor(name, fast=False).model


@pytest.fixture(scope="session")
def pred():
    """The bundled model (one thread): what most app tests grow with."""
    from loomtui.backends import load_predictor

    return load_predictor("bard", threads=1)
