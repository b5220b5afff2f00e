"""Model resolution and loading errors, and the model commands of the CLI on the bundled model."""

from __future__ import annotations

import json

import pytest

from loomtui.backends import load_predictor
from loomtui.backends.models import BUNDLED, default_model, resolve
from loomtui.cli import main
from loomtui.core import session
from loomtui.core.errors import ModelError


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("loomtui: error: ")
    return err[0]


@pytest.mark.parametrize("name, fragment", [
    ("/nonexistent/model-dir", "no such model file or directory"),
    ("./relative/missing", "no such model file or directory"),
    ("nonsense-model-name", "unknown model"),
    ("someorg/not-cached-model", "not in the local Hugging Face cache"),
])
def test_bad_model_names_are_one_line_errors(name, fragment):
    with pytest.raises(ModelError, match=fragment) as exc:
        load_predictor(name)
    assert "\n" not in str(exc.value)


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve(str(tmp_path))


def test_broken_model_directory(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}')
    (tmp_path / "model.safetensors").write_bytes(b"not really safetensors")
    with pytest.raises(ModelError, match="cannot load model") as exc:
        load_predictor(str(tmp_path))
    assert "\n" not in str(exc.value)


def test_not_a_model_file(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match=r"not a model directory or a \.gguf file"):
        resolve(str(f))


def test_choice_order(monkeypatch, tmp_path):
    monkeypatch.setenv("LOOMTUI_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.delenv("LOOMTUI_MODEL", raising=False)
    (tmp_path / "config.json").write_text(json.dumps({"model": "bard"}))
    assert default_model() == BUNDLED
    monkeypatch.setenv("LOOMTUI_MODEL", "somewhere")
    assert default_model() == "somewhere"
    assert resolve("bard").model_id == BUNDLED  # --model beats everything


def test_cli_model_commands(tmp_path, capsys):
    path = str(tmp_path / "s.json")
    assert main(["new", path, "--prompt", "ROMEO. ", "--model", "bard", "--threads", "1"]) == 0
    root = capsys.readouterr().out.strip()
    assert main(["expand", path, "--node", root, "-n", "3", "--max-tokens", "8", "--seed", "7",
                 "--temperature", "0.8", "--top-p", "0.9", "--stop", "\\n"]) == 0
    ids = capsys.readouterr().out.split()
    assert len(ids) == 3  # ids only, one a line, nothing else on stdout
    tree = session.load(path)
    assert tree.children(root) == ids
    kid = tree.node(ids[0])
    assert kid.seed == 7 and kid.sampler.top_p == 0.9 and kid.sampler.stop == ("\n",)
    assert main(["pick", path, "--node", ids[0], "--rank", "1"]) == 0
    picked = capsys.readouterr().out.strip()
    assert main(["type", path, "--node", picked, "--text", " my lord"]) == 0
    typed = capsys.readouterr().out.strip()
    assert main(["show", path, "--node", typed, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["origin"] == "typed" and info["text"] == " my lord"
    assert info["context"].startswith("ROMEO. ") and info["context"].endswith(" my lord")
    assert len(info["token_logprobs"]) == len(info["token_ids"]) > 0
    assert info["distribution"]["top"] and info["cumulative_logprob"] < 0
    # Replay from the CLI: same seed and settings, same tokens.
    assert main(["expand", path, "--node", root, "-n", "3", "--max-tokens", "8", "--seed", "7",
                 "--temperature", "0.8", "--top-p", "0.9", "--stop", "\\n"]) == 0
    again = capsys.readouterr().out.split()
    tree = session.load(path)
    assert [tree.node(i).token_ids for i in again] == [tree.node(i).token_ids for i in ids]


def test_cli_bad_values(tmp_path, capsys):
    path = tmp_path / "s.json"
    assert main(["new", str(path), "--prompt", "A", "--model", "bard"]) == 0
    capsys.readouterr()
    before = path.read_bytes()
    assert main(["expand", str(path), "--top-p", "1.5"]) == 2
    assert "top-p" in one_line_error(capsys)
    assert main(["pick", str(path), "--node", "nope", "--rank", "1"]) == 2
    assert "nope" in one_line_error(capsys)
    assert main(["expand", str(path), "--model", "/no/such/model"]) == 2
    assert "/no/such/model" in one_line_error(capsys)
    assert path.read_bytes() == before
    assert main(["new", str(path), "--prompt", "B", "--model", "bard"]) == 2
    assert "already exists" in one_line_error(capsys)


def test_other_model_keeps_stored_distributions(tmp_path, capsys):
    path = str(tmp_path / "s.json")
    assert main(["new", path, "--prompt", "ROMEO. ", "--model", "bard"]) == 0
    capsys.readouterr()
    tree = session.load(path)
    tree.model = "another-model"
    session.save(tree, path)
    assert main(["pick", path, "--rank", "1", "--model", "bard"]) == 0
    err = capsys.readouterr().err
    assert "scored by another-model" in err
    assert session.load(path).root.distribution.model == "bard"
