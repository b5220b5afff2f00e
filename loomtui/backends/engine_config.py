"""Which inference engine to talk to: a URL from ``--engine``, or a named profile of the config.

A profile lives in the config file (see :func:`loomtui.backends.models.config_path`)::

    {"engines": {"vllm-70b": {"url": "http://gpu1:8000/v1", "model": "meta-llama/Llama-3.1-70B",
                              "api_key_env": "VLLM_KEY"}}}

Optional profile fields: ``kind`` (``vllm``, ``sglang``, ``llama-cpp-python``, ``llama-server``
or ``openai``; detected from ``/v1/models`` otherwise), ``max_logprobs``, ``context_window``,
``concurrency`` and ``timeout`` (seconds). API keys are read from the environment variable the
profile names, never from the file itself, and never written anywhere.

A node made by an engine records the model id ``engine:URL#MODEL`` (the URL without
credentials). A session alone never makes loomtui contact a URL: only ``--engine`` does, or a
configured profile whose URL and model equal the session's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Any

import httpx

from loomtui.core.errors import ModelError

PREFIX = "engine:"
KINDS = ("vllm", "sglang", "llama-cpp-python", "llama-server", "openai")
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """An engine to use: its ``/v1`` base URL and, where known, the served model's name."""

    url: str
    model: str | None = None
    api_key_env: str | None = None
    profile: str | None = None
    kind: str | None = None
    max_logprobs: int | None = None
    context_window: int | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT

    def named(self) -> str:
        """How messages name this engine: its profile, or its URL."""
        return f"engine profile '{self.profile}' ({self.url})" if self.profile else self.url

    def api_key(self) -> str | None:
        """The API key from the environment variable the profile names (None without one)."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelError(f"${self.api_key_env} is not set; it holds the API key for "
                             f"{self.named()}")
        return key


def normalize_url(url: str) -> str:
    """An engine's base URL: http(s), no credentials, query or fragment; ``/v1`` when the URL
    names only the server. A one-line ModelError names what is wrong."""
    shown = url if "@" not in url else "the URL given"
    try:
        u = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ModelError(f"{shown}: not a URL ({exc})") from None
    if u.scheme not in ("http", "https") or not u.host:
        raise ModelError(f"{shown}: an engine URL starts with http:// or https:// and names "
                         "a host, e.g. http://127.0.0.1:8000/v1")
    if u.userinfo:
        raise ModelError("an engine URL must not hold credentials; put the API key in an "
                         "environment variable and name it in a profile's api_key_env")
    if u.query or u.fragment:
        raise ModelError(f"{shown}: an engine URL has no query or fragment")
    path = u.path.rstrip("/") or "/v1"
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{u.host}{port}{path}"


def model_id(url: str, model: str) -> str:
    """The model id nodes record for ``model`` served at ``url``: ``engine:URL#MODEL``."""
    return f"{PREFIX}{url}#{model}"


def parse_model_id(model: str | None) -> tuple[str, str] | None:
    """``(url, model)`` of an engine model id, or None for any other model name."""
    if not model or not model.startswith(PREFIX) or "#" not in model:
        return None
    url, _, served = model[len(PREFIX):].partition("#")
    return url, served


def _read_config() -> tuple[str, dict[str, Any]]:
    from loomtui.backends.models import config_path

    path = config_path()
    if not path.is_file():
        return str(path), {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the config file: {exc}") from None
    return str(path), data if isinstance(data, dict) else {}


def _profile(path: str, name: str, raw: object) -> EngineSpec:
    where = f"{path}: engine profile '{name}'"
    if not isinstance(raw, dict):
        raise ModelError(f"{where} must be an object")
    url = raw.get("url")
    if not isinstance(url, str):
        raise ModelError(f"{where} needs a 'url' string")
    if "api_key" in raw:
        raise ModelError(f"{where} holds an 'api_key'; keys come only from the environment: "
                         "name the variable in 'api_key_env'")
    strings = {k: raw.get(k) for k in ("model", "api_key_env", "kind")}
    for k, v in strings.items():
        if v is not None and not isinstance(v, str):
            raise ModelError(f"{where}: '{k}' must be a string")
    if strings["kind"] is not None and strings["kind"] not in KINDS:
        raise ModelError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
    ints: dict[str, Any] = {}
    for k, lo in (("max_logprobs", 1), ("context_window", 1), ("concurrency", 1)):
        v = raw.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise ModelError(f"{where}: '{k}' must be an integer of at least {lo}")
        if v is not None:
            ints[k] = v
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ModelError(f"{where}: 'timeout' must be a positive number of seconds")
    try:
        norm = normalize_url(url)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    return EngineSpec(norm, strings["model"], strings["api_key_env"], name, strings["kind"],
                      timeout=float(timeout), **ints)


def profiles() -> dict[str, EngineSpec]:
    """The config file's engine profiles by name (empty without a config file)."""
    path, data = _read_config()
    engines = data.get("engines", {})
    if not isinstance(engines, dict):
        raise ModelError(f"{path}: 'engines' must be an object of named profiles")
    return {str(name): _profile(path, str(name), raw) for name, raw in engines.items()}


def resolve(engine: str, model: str | None = None) -> EngineSpec:
    """The engine ``--engine`` names: a URL, or a profile of the config file. ``model`` (the
    ``--model`` option) names the served model, overriding the profile's."""
    if "://" in engine:
        spec = EngineSpec(normalize_url(engine))
    else:
        known = profiles()
        if engine not in known:
            names = ", ".join(sorted(known)) or "none configured"
            raise ModelError(f"{engine}: not a URL (http://...) nor an engine profile "
                             f"(profiles: {names})")
        spec = known[engine]
    return replace(spec, model=model) if model else spec


def profile_for(model: str | None) -> EngineSpec | None:
    """The configured profile serving a session's engine model id, if one matches exactly
    (its URL and model); else None, and no URL is contacted."""
    parsed = parse_model_id(model)
    if parsed is None:
        return None
    url, served = parsed
    for spec in profiles().values():
        if spec.url == url and spec.model == served:
            return spec
    return None


def choose(engine: str | None, model: str | None, session_model: str | None) -> EngineSpec | None:
    """The engine a command or the app uses: ``--engine`` (``model`` = ``--model`` names the
    served model), else a configured profile matching the session's engine model id (unless
    ``--model`` chose a local model); None for a local model."""
    if engine:
        return resolve(engine, model)
    if model is None:
        return profile_for(session_model)
    return None
