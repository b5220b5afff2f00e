"""Models and untrusted sessions: token ids outside the vocabulary, devices that are not here,
missing model paths reported before torch is imported, and a session never choosing which
local path gets loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from loomtui.backends import load_predictor
from loomtui.backends.models import trusted_session_model
from loomtui.cli import main
from loomtui.core import grow, session
from loomtui.core.node import Sampler

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pred() -> Any:
    return load_predictor("bard", threads=1)


@pytest.fixture
def grown(pred: Any, tmp_path: Path) -> Path:
    tree = grow.new_tree(pred, "ROMEO:\nBut soft")
    grow.expand(tree, pred, tree.root_id, Sampler(n=1, max_tokens=3), seed=1)
    path = tmp_path / "s.json"
    session.save(tree, path)
    return path


def one_error(err: str, *needles: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("loomtui: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


def set_token_id(path: Path, value: int) -> str:
    """Put ``value`` as the first token id of the root's child; returns the child's id."""
    doc = orjson.loads(path.read_bytes())
    child = doc["nodes"][1]
    child["token_ids"][0] = value
    path.write_bytes(orjson.dumps(doc))
    return child["id"]


@pytest.mark.parametrize("value", [6144, 2**31 - 1])
@pytest.mark.parametrize("command", [
    ["expand", "-n", "1", "--max-tokens", "2"], ["pick", "--rank", "1"], ["type", "--text", "x"]])
def test_token_id_beyond_the_vocabulary_is_one_line_naming_the_node(
        grown: Path, pred: Any, capsys: pytest.CaptureFixture[str], value: int,
        command: list[str]) -> None:
    nid = set_token_id(grown, value)
    before = grown.read_bytes()
    rc = main([command[0], str(grown), *command[1:], "--node", nid, "--model", "bard"])
    one_error(capsys.readouterr().err, f"node '{nid}'", f"token id {value}",
              "outside the vocabulary of bard (6144 tokens)")
    assert rc == 2 and grown.read_bytes() == before


def test_device_that_is_not_here_is_one_line(grown: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only torch
    before = grown.read_bytes()
    assert main(["expand", str(grown), "--model", "bard", "--device", "cuda"]) == 2
    one_error(capsys.readouterr().err, "--device cuda", "not available")
    assert grown.read_bytes() == before


def test_missing_model_path_is_reported_before_torch_is_imported(grown: Path) -> None:
    code = ("import sys; from loomtui.cli import main; "
            f"rc = main(['expand', {str(grown)!r}, '--model', '/no/such/dir']); "
            "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], (done.stdout, done.stderr)
    one_error(done.stderr, "/no/such/dir: no such model file or directory")


def test_trusted_session_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOMTUI_MODEL", raising=False)
    monkeypatch.setenv("LOOMTUI_CONFIG", str(tmp_path / "no-config.json"))
    local = tmp_path / "model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    assert trusted_session_model("bard") == "bard"
    assert trusted_session_model(None) is None and trusted_session_model("") is None
    for name in (str(local), str(local / "config.json"), "./model", "~/model", "/etc",
                 "https://example.com/m", "someorg/not-cached-model", "\x1b]0;x\x07",
                 "../model", "a/b/c"):
        assert trusted_session_model(name) is None, name
    monkeypatch.chdir(tmp_path)  # a relative path that looks like a hub id
    assert trusted_session_model("tmp/model") is None
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").mkdir()
    assert trusted_session_model("org/model") is None
    # The user's own choice is trusted: the configured model, even a path.
    monkeypatch.setenv("LOOMTUI_MODEL", str(local))
    assert trusted_session_model(str(local)) == str(local)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": str(local)}))
    monkeypatch.delenv("LOOMTUI_MODEL")
    monkeypatch.setenv("LOOMTUI_CONFIG", str(config))
    assert trusted_session_model(str(local)) == str(local)


def test_a_session_naming_a_local_path_does_not_load_it(
        grown: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "evil-model"
    local.mkdir()
    (local / "config.json").write_text('{"model_type": "gpt2"}')  # would fail loudly if loaded
    tree = session.load(grown)
    tree.model = str(local)
    session.save(tree, grown)
    monkeypatch.setenv("LOOMTUI_MODEL", "bard")
    assert main(["expand", str(grown), "-n", "1", "--max-tokens", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("loomtui: note: the session names the model "
                                               f"'{local}'"), err
    assert err[0].endswith("using bard")
    # A name with control characters is shown made visible.
    tree = session.load(grown)
    tree.model = "\x1b]0;pwned\x07/x"
    session.save(tree, grown)
    assert main(["pick", str(grown), "--rank", "1"]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "␛]0;pwned␇/x" in err
