"""Engine requests and answers that differ between vLLM, SGLang, llama.cpp's llama-server,
llama-cpp-python and OpenAI's API, as their documentation shows them; engine profiles; the
comparison of two distributions. (The predictor itself is tested against a real server in
test_engine.py.)"""

from __future__ import annotations

import json
import math

import pytest

from loomtui.backends import engine_config as cfg
from loomtui.backends import engine_wire as wire
from loomtui.core.compare import compare, format_comparison
from loomtui.core.errors import ModelError
from loomtui.core.node import Choices, Distribution, Sampler
from loomtui.core.text import has_controls

# ----------------------------------------------------------------- /v1/models, per engine
VLLM_MODELS = {  # vLLM's ModelCard: owned_by "vllm", max_model_len
    "object": "list",
    "data": [{"id": "meta-llama/Llama-3.1-70B", "object": "model", "created": 1, "owned_by":
              "vllm", "root": "meta-llama/Llama-3.1-70B", "parent": None,
              "max_model_len": 131072, "permission": []}]}
SGLANG_MODELS = {"object": "list", "data": [
    {"id": "deepseek-ai/DeepSeek-V3-Base", "object": "model", "created": 1,
     "owned_by": "sglang", "root": "deepseek-ai/DeepSeek-V3-Base", "max_model_len": 163840}]}
LLAMA_SERVER_MODELS = {"object": "list", "data": [  # llama.cpp server README
    {"id": "gemma-4-E4B", "aliases": ["gemma-4-E4B"], "object": "model", "owned_by": "llamacpp",
     "meta": {"n_vocab": 262144, "n_ctx": 16384, "n_ctx_train": 131072, "n_embd": 2560}}]}
LLAMA_CPP_PYTHON_MODELS = {"object": "list", "data": [  # llama_cpp/server/app.py get_models
    {"id": "smollm2", "object": "model", "owned_by": "me", "permissions": []}]}
OPENAI_MODELS = {"object": "list", "data": [
    {"id": "davinci-002", "object": "model", "created": 1692634301, "owned_by": "system"}]}


@pytest.mark.parametrize(("models", "kind", "window"), [
    (VLLM_MODELS, "vllm", 131072),
    (SGLANG_MODELS, "sglang", 163840),
    (LLAMA_SERVER_MODELS, "llama-server", 16384),
    (LLAMA_CPP_PYTHON_MODELS, "llama-cpp-python", None),
    (OPENAI_MODELS, "openai", None),
])
def test_kind_and_window_from_models(models: dict, kind: str, window: int | None) -> None:
    assert wire.kind_of(models) == kind
    assert wire.context_window(models, models["data"][0]["id"]) == window


# ----------------------------------------------------------------- requests
LOOM = Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, max_tokens=32, n=4)


def test_every_sampler_setting_is_sent_in_each_engines_terms() -> None:
    # llama-cpp-python's defaults are temperature 0.8, top-k 40, top-p 0.95, min-p 0.05,
    # repeat penalty 1.1 (llama_cpp/server/types.py): all overridden, top-k off is 0.
    lcp = wire.sampler_fields("llama-cpp-python", LOOM, 7)
    assert lcp == {"temperature": 1.0, "top_p": 1.0, "max_tokens": 32, "presence_penalty": 0.0,
                   "frequency_penalty": 0.0, "n": 1, "seed": 7, "stop": [], "min_p": 0.0,
                   "top_k": 0, "repeat_penalty": 1.0, "mirostat_mode": 0}
    # llama-server: its own samplers (DRY, XTC, typical, mirostat) switched off explicitly.
    ls = wire.sampler_fields("llama-server", LOOM, 7)
    assert ls["top_k"] == 0 and ls["repeat_penalty"] == 1.0 and ls["dry_multiplier"] == 0.0
    assert ls["xtc_probability"] == 0.0 and ls["typical_p"] == 1.0 and ls["mirostat"] == 0
    # vLLM and SGLang: "no top-k" is -1 (SGLang refuses 0); penalties by their names. SGLang
    # otherwise takes the model's generation_config.json defaults unless started with
    # --sampling-defaults openai.
    for kind in ("vllm", "sglang"):
        f = wire.sampler_fields(kind, LOOM, 7)
        assert f["top_k"] == -1 and f["min_p"] == 0.0 and f["repetition_penalty"] == 1.0
        assert f["temperature"] == 1.0 and f["top_p"] == 1.0 and f["seed"] == 7
    assert wire.sampler_fields("vllm", LOOM.with_(top_k=40), 0)["top_k"] == 40
    # OpenAI's API: standard fields only; an empty stop list is left out.
    oa = wire.sampler_fields("openai", LOOM, 7)
    assert set(oa) == {"temperature", "top_p", "max_tokens", "presence_penalty",
                       "frequency_penalty", "n", "seed"}
    with pytest.raises(ModelError, match="top-k and min-p"):
        wire.sampler_fields("openai", LOOM.with_(top_k=40), 7)


def test_completion_body_streams_usage_where_supported() -> None:
    body = wire.completion_body("vllm", "m", "Once", LOOM, 3, 5, stream=True)
    assert body["stream_options"] == {"include_usage": True}
    assert body["prompt"] == "Once" and body["logprobs"] == 5 and body["echo"] is False
    assert "stream_options" not in wire.completion_body("llama-cpp-python", "m", "x", LOOM, 3,
                                                        5, stream=True)
    greedy = wire.completion_body("llama-cpp-python", "m", "x", wire.GREEDY, 0, 20)
    assert greedy["max_tokens"] == 1 and greedy["temperature"] == 0.0  # never 0: unlimited


@pytest.mark.parametrize(("detail", "cap"), [
    # vLLM (--max-logprobs, default 20)
    ("Requested sample logprobs of 50, which is greater than max allowed: 20", 20),
    # OpenAI's legacy completions
    ("Invalid value for 'logprobs': must be less than or equal to 5.", 5),
    ("This model's maximum context length is 2048 tokens", None),
])
def test_logprobs_cap_from_a_refusal(detail: str, cap: int | None) -> None:
    assert wire.logprobs_cap(detail) == cap


# ----------------------------------------------------------------- answers
def test_legacy_logprobs_shape() -> None:
    # vLLM / SGLang / llama-cpp-python / OpenAI: top_logprobs are dicts keyed by text; an
    # echoed prompt's first token has no score (null).
    lp = {"tokens": ["Once", " upon", " a"], "text_offset": [0, 4, 9],
          "token_logprobs": [None, -1.5, -0.25],
          "top_logprobs": [None, {" upon": -1.5, " there": -2.0}, {" a": -0.25, " the": -2.5}]}
    toks = wire.parse_logprobs(lp)
    assert toks is not None
    assert [t.text for t in toks] == ["Once", " upon", " a"]
    assert toks[0].logprob is None and toks[0].top == []
    assert toks[1].top == [(" upon", -1.5, None), (" there", -2.0, None)]
    assert [t.offset for t in toks] == [0, 4, 9]


def test_chat_shaped_logprobs_of_llama_server() -> None:
    # llama-server (tools/server README, n_probs): a list of {id, token, logprob, bytes,
    # top_logprobs: [{id, token, logprob, bytes}]}; bytes keep a token that ends inside a
    # UTF-8 character.
    lp = {"content": [
        {"id": 1234, "token": " caf", "logprob": -0.5, "bytes": [32, 99, 97, 102],
         "top_logprobs": [{"id": 1234, "token": " caf", "logprob": -0.5, "bytes": []},
                          {"id": 99, "token": " tea", "logprob": -1.0, "bytes": []}]},
        {"id": 200, "token": "", "logprob": -0.1, "bytes": [195],
         "top_logprobs": [{"id": 200, "token": "", "logprob": -0.1}]},
    ]}
    toks = wire.parse_logprobs(lp)
    assert toks is not None
    assert [t.id for t in toks] == [1234, 200]
    assert toks[0].top[1] == (" tea", -1.0, 99)
    assert toks[1].raw == b"\xc3"
    assert wire.parse_logprobs(None) is None
    assert wire.parse_logprobs({"text_offset": []}) is None


def test_finish_reasons() -> None:
    assert wire.finish_of("length", (), 32, 32) == "length"
    assert wire.finish_of("stop", (), 5, 32) == "eos"
    assert wire.finish_of("stop", ("\n",), 5, 32) == "stop"
    assert wire.finish_of("abort", (), 5, 32) == "cancelled"


# ----------------------------------------------------------------- profiles and URLs
def test_urls_are_normalised_and_never_hold_credentials() -> None:
    assert cfg.normalize_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    assert cfg.normalize_url("http://gpu1:8000") == "http://gpu1:8000/v1"
    assert cfg.normalize_url("https://openrouter.ai/api/v1") == "https://openrouter.ai/api/v1"
    with pytest.raises(ModelError) as e:
        cfg.normalize_url("http://user:sekrit@host:8000/v1")
    assert "sekrit" not in str(e.value) and "api_key_env" in str(e.value)
    for bad in ("ftp://host/v1", "localhost:8000", "http://host/v1?key=1"):
        with pytest.raises(ModelError):
            cfg.normalize_url(bad)
    mid = cfg.model_id("http://127.0.0.1:8000/v1", "smollm2")
    assert mid == "engine:http://127.0.0.1:8000/v1#smollm2"
    assert cfg.parse_model_id(mid) == ("http://127.0.0.1:8000/v1", "smollm2")
    assert cfg.parse_model_id("SmolLM2-135M-Instruct") is None


def write_config(tmp_path, monkeypatch, data: dict) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("LOOMTUI_CONFIG", str(path))


def test_profiles_resolve_and_match_sessions(tmp_path, monkeypatch) -> None:
    write_config(tmp_path, monkeypatch, {"engines": {
        "vllm-70b": {"url": "http://gpu1:8000/v1", "model": "meta-llama/Llama-3.1-70B",
                     "api_key_env": "VLLM_KEY", "max_logprobs": 20}}})
    spec = cfg.resolve("vllm-70b")
    assert spec.url == "http://gpu1:8000/v1" and spec.model == "meta-llama/Llama-3.1-70B"
    assert cfg.resolve("vllm-70b", "other").model == "other"  # --model names the served one
    assert cfg.resolve("http://h:1/v1").profile is None
    monkeypatch.delenv("VLLM_KEY", raising=False)
    with pytest.raises(ModelError, match=r"\$VLLM_KEY is not set"):
        spec.api_key()
    monkeypatch.setenv("VLLM_KEY", "k-123")
    assert spec.api_key() == "k-123"
    same = cfg.model_id("http://gpu1:8000/v1", "meta-llama/Llama-3.1-70B")
    assert cfg.profile_for(same) == spec
    assert cfg.profile_for(cfg.model_id("http://gpu1:8000/v1", "another")) is None
    assert cfg.profile_for(cfg.model_id("http://elsewhere:8000/v1",
                                        "meta-llama/Llama-3.1-70B")) is None
    with pytest.raises(ModelError, match="profiles: vllm-70b"):
        cfg.resolve("nope")


@pytest.mark.parametrize(("profile", "needle"), [
    ({"url": "http://h/v1", "api_key": "sk-live"}, "keys come only from the environment"),
    ({"model": "m"}, "needs a 'url'"),
    ({"url": "http://h/v1", "kind": "tgi"}, "'kind' must be one of"),
    ({"url": "http://h/v1", "max_logprobs": 0}, "'max_logprobs' must be an integer"),
    ({"url": "http://h/v1", "timeout": "soon"}, "'timeout' must be a positive number"),
])
def test_bad_profiles_are_one_line_errors(tmp_path, monkeypatch, profile, needle) -> None:
    write_config(tmp_path, monkeypatch, {"engines": {"p": profile}})
    with pytest.raises(ModelError, match=needle) as e:
        cfg.profiles()
    assert "\n" not in str(e.value) and "sk-live" not in str(e.value)


# ----------------------------------------------------------------- compare
def dist(pairs: list[tuple[str, float]], model: str) -> Distribution:
    return Distribution.from_choices(
        Choices([None] * len(pairs), [t for t, _ in pairs], [math.log(p) for _, p in pairs]),
        model)


def test_compare_matches_by_text_with_an_other_bucket() -> None:
    a = dist([(" Paris", 0.5), (" the", 0.2), (" a", 0.1)], "local")
    b = dist([(" Paris", 0.6), (" a", 0.2), (" Lyon", 0.1)], "engine")
    c = compare(a, b)
    assert c.shared == 2
    assert [r.text for r in c.rows] == [" Paris", " the", " a", " Lyon"]
    the = c.rows[1]
    assert the.p_other is None and the.rank_other is None and the.rank_active == 2
    assert c.other_active == pytest.approx(1 - 0.6) and c.other_other == pytest.approx(0.2)
    cells = [(0.5, 0.6), (0.1, 0.2), (0.4, 0.2)]
    assert c.kl == pytest.approx(sum(p * math.log(p / q) for p, q in cells))
    assert c.tv == pytest.approx(0.5 * sum(abs(p - q) for p, q in cells))
    assert compare(a, a).kl == pytest.approx(0.0) and compare(a, a).tv == pytest.approx(0.0)


def test_compare_lines_are_terminal_safe() -> None:
    a = dist([("\x1b[2J", 0.5), ("\n", 0.3)], "local")
    b = dist([("\n", 0.4)], "engine:http://h/v1#m\x1b]52")
    lines = format_comparison(compare(a, b))
    assert not any(has_controls(line) for line in lines)
    assert any("KL(active || other)" in line for line in lines)
    assert any("lower bounds" in line for line in lines)
