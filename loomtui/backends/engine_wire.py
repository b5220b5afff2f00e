"""What loomtui sends to ``/v1/completions`` and how it reads the answer, per engine kind.

Engines differ (from their documentation and, for llama-cpp-python, measurement):

- every engine has its own sampler defaults (llama.cpp: temperature 0.8, top-k 40, top-p 0.95,
  min-p 0.05, repeat penalty 1.1 in llama-cpp-python; SGLang: the model's
  ``generation_config.json`` unless ``--sampling-defaults openai``), so every setting is sent;
- "no top-k" is ``0`` for llama.cpp and ``-1`` for vLLM and SGLang (SGLang refuses 0);
  OpenAI's own API knows no top-k or min-p at all;
- logprobs come in the legacy completions shape (``tokens``, ``token_logprobs``,
  ``top_logprobs`` as dicts keyed by token text, where equal texts collide) from vLLM, SGLang,
  llama-cpp-python and OpenAI, and in the chat shape (``content: [{token, logprob, bytes,
  top_logprobs: [...]}]``) from llama.cpp's ``llama-server``;
- vLLM caps ``logprobs`` at its ``--max-logprobs`` (20 by default) and says so in a 400 error;
  OpenAI's API at 5.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from loomtui.core.errors import ModelError
from loomtui.core.node import Sampler

DEFAULT_MAX_LOGPROBS = {"openai": 5}
"""Known caps on ``logprobs`` (others: 20, vLLM's default ``--max-logprobs``)."""
TOKENIZE = {
    "llama-cpp-python": ("/extras/tokenize", "/extras/detokenize"),
    "vllm": ("/tokenize", "/detokenize"),
    "sglang": ("/v1/tokenize", "/v1/detokenize"),
    "llama-server": ("/tokenize", "/detokenize"),
}
"""Tokenizer endpoints (at the server's root, not under ``/v1``) per engine kind."""
ECHO = {"vllm", "sglang", "llama-cpp-python", "openai"}
"""Kinds that return prompt logprobs with ``echo: true`` (llama-server refuses echo)."""


@dataclass(slots=True)
class TokenInfo:
    """One token of an answer: its text, log-probability, top alternatives (text,
    log-probability, id where the engine gives it), raw bytes and id (llama-server)."""

    text: str
    logprob: float | None
    top: list[tuple[str, float, int | None]] = field(default_factory=list)
    raw: bytes | None = None
    offset: int | None = None
    id: int | None = None


def kind_of(models: dict[str, Any]) -> str:
    """The engine kind a ``/v1/models`` answer shows (``owned_by``, vLLM's ``max_model_len``,
    llama-server's ``meta``), ``openai`` when nothing tells."""
    data = models.get("data") or []
    first = data[0] if data and isinstance(data[0], dict) else {}
    owner = str(first.get("owned_by", "")).lower()
    if owner == "vllm":
        return "vllm"
    if owner == "sglang":
        return "sglang"
    if owner == "llamacpp" or ("meta" in first and "n_ctx_train" in (first.get("meta") or {})):
        return "llama-server"
    if owner == "me" and "permissions" in first:
        return "llama-cpp-python"
    return "openai"


def context_window(models: dict[str, Any], served: str) -> int | None:
    """The served model's window where ``/v1/models`` tells it (vLLM and SGLang:
    ``max_model_len``; llama-server: ``meta.n_ctx``, the window it runs with)."""
    for m in models.get("data") or []:
        if isinstance(m, dict) and m.get("id") == served:
            meta = m.get("meta") or {}
            n = m.get("max_model_len") or meta.get("n_ctx") or meta.get("n_ctx_train")
            return int(n) if isinstance(n, int) and n > 0 else None
    return None


def sampler_fields(kind: str, sampler: Sampler, seed: int | None) -> dict[str, Any]:
    """Every sampler setting, explicitly, in the names and conventions of ``kind``."""
    out: dict[str, Any] = {
        "temperature": sampler.temperature, "top_p": sampler.top_p,
        "max_tokens": sampler.max_tokens, "presence_penalty": 0.0, "frequency_penalty": 0.0,
        "n": 1,
    }
    if seed is not None:
        out["seed"] = seed
    if sampler.stop or kind != "openai":
        out["stop"] = list(sampler.stop)
    if kind == "openai":
        if sampler.top_k or sampler.min_p:
            raise ModelError("this engine speaks only OpenAI's sampler settings: top-k and "
                             "min-p must be 0 (off)")
        return out
    out["min_p"] = sampler.min_p
    if kind in ("vllm", "sglang"):
        out["top_k"] = sampler.top_k or -1
        out["repetition_penalty"] = 1.0
    else:  # llama.cpp's servers
        out["top_k"] = sampler.top_k
        out["repeat_penalty"] = 1.0
        if kind == "llama-cpp-python":
            out["mirostat_mode"] = 0
        else:
            out.update(typical_p=1.0, mirostat=0, dry_multiplier=0.0, xtc_probability=0.0)
    return out


GREEDY = Sampler(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, max_tokens=1, n=1)
"""The sampler of one-token requests made only for their logprobs."""


def completion_body(kind: str, model: str, prompt: str, sampler: Sampler, seed: int | None,
                    logprobs: int, *, stream: bool = False, echo: bool = False
                    ) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "logprobs": logprobs,
                            "stream": stream, "echo": echo}
    body.update(sampler_fields(kind, sampler, seed))
    if stream and kind in ("vllm", "sglang", "openai"):
        body["stream_options"] = {"include_usage": True}
    return body


def logprobs_cap(detail: str) -> int | None:
    """The cap an engine states when refusing too many logprobs (vLLM: "Requested sample
    logprobs of 50, which is greater than max allowed: 20"; OpenAI: "... must be less than or
    equal to 5"), or None if ``detail`` is about something else."""
    low = detail.lower()
    if "logprob" not in low:
        return None
    m = re.search(r"(?:max(?:imum)? allowed:?|less than or equal to|at most)\s*(\d+)", low)
    return int(m.group(1)) if m else None


def _top(raw: Any) -> list[tuple[str, float, int | None]]:
    """Alternatives best first, from a dict keyed by text or the chat shape's list."""
    out: list[tuple[str, float, int | None]] = []
    if isinstance(raw, dict):
        out = [(str(k), float(v), None) for k, v in raw.items() if _finite(v)]
    elif isinstance(raw, list):
        out = [(str(e.get("token", "")), float(e["logprob"]), _id(e.get("id"))) for e in raw
               if isinstance(e, dict) and _finite(e.get("logprob"))]
    out.sort(key=lambda p: -p[1])
    return out


def _id(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else None


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def parse_logprobs(lp: Any) -> list[TokenInfo] | None:
    """The tokens of a choice's ``logprobs`` in either shape; None when there are none."""
    if not isinstance(lp, dict):
        return None
    if isinstance(lp.get("content"), list):  # chat shape (llama-server)
        out = []
        for e in lp["content"]:
            if not isinstance(e, dict):
                continue
            raw = e.get("bytes")
            out.append(TokenInfo(
                str(e.get("token", "")), float(e["logprob"]) if _finite(e.get("logprob"))
                else None, _top(e.get("top_logprobs")),
                bytes(raw) if isinstance(raw, list) else None, id=_id(e.get("id"))))
        return out
    tokens = lp.get("tokens")
    if not isinstance(tokens, list):
        return None
    lps = lp.get("token_logprobs") or [None] * len(tokens)
    tops = lp.get("top_logprobs") or [None] * len(tokens)
    offs = lp.get("text_offset") or [None] * len(tokens)
    return [TokenInfo(str(t), float(x) if _finite(x) else None, _top(top),
                      None, o if isinstance(o, int) else None)
            for t, x, top, o in zip(tokens, lps, tops, offs, strict=False)]


FINISH = {"length": "length", "stop": "stop", "eos": "eos", "abort": "cancelled"}


def finish_of(reason: Any, stops: tuple[str, ...], n_tokens: int, max_tokens: int) -> str:
    """loomtui's finish for an OpenAI ``finish_reason`` ("stop" is an end-of-text token when
    no stop string was asked for)."""
    if reason == "stop" and not stops:
        return "eos" if n_tokens < max_tokens else "length"
    return FINISH.get(str(reason), "length")
