"""The predictors of one app session: the one it started with and the ones the user added.

Textual-free: what the chooser lists, how a typed name is loaded (an engine URL, a profile of
the config, an engine model id as sessions record it, or a local model), and how a predictor
is named on screen. Loading runs on a worker thread; nothing here touches the screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loomtui.core.errors import ModelError
from loomtui.core.text import short


def label(pred: Any) -> str:
    """A short name for a predictor: ``MODEL@HOST:PORT`` for an engine, else its model id."""
    return name_of(str(getattr(pred, "model_id", "?")))


def name_of(model_id: str) -> str:
    """A short name for a model id: ``MODEL@HOST:PORT`` for an engine's, else the id."""
    from loomtui.backends.engine_config import parse_model_id

    parsed = parse_model_id(model_id)
    if parsed is None:
        return model_id
    url, served = parsed
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return f"{served}@{host}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the chooser: a loaded predictor (``index`` into the loaded list) or a name
    to load (``name``); ``error`` marks a line that cannot be chosen (a bad config)."""

    text: str
    detail: str = ""
    index: int | None = None
    name: str | None = None
    error: bool = False


def entries(loaded: list[Any], active: Any) -> list[Entry]:
    """What the chooser offers: loaded predictors, configured engine profiles, the bundled
    local models (``bard``, and ``smollm2`` where installed)."""
    from loomtui.backends.engine_config import profiles
    from loomtui.backends.models import BUNDLED, SMOLLM2, smollm2_gguf

    out = [Entry(label(p), "active" if p is active else "loaded", index=i)
           for i, p in enumerate(loaded)]
    have = {str(getattr(p, "model_id", "")) for p in loaded}
    try:
        known = profiles()
    except ModelError as exc:
        out.append(Entry(short(str(exc), 120), "config", error=True))
        known = {}
    for name, spec in known.items():
        if spec.model and _engine_id(spec.url, spec.model) in have:
            continue
        out.append(Entry(f"profile {name}", spec.url + (f" · {spec.model}" if spec.model
                                                        else ""), name=name))
    from loomtui.backends.models import SMOLLM2_ID

    if BUNDLED not in have:
        out.append(Entry(BUNDLED, "bundled GPT-2 4.8M (local)", name=BUNDLED))
    if SMOLLM2_ID not in have and smollm2_gguf() is not None:
        out.append(Entry(SMOLLM2, "SmolLM2-135M (local)", name=SMOLLM2))
    return out


def _engine_id(url: str, model: str) -> str:
    from loomtui.backends.engine_config import model_id

    return model_id(url, model)


def load_named(name: str, *, threads: int | None = None, device: str = "auto",
               dtype: str = "float32", hosted: bool = False) -> Any:
    """Load what the user typed or chose (worker thread): an engine URL (``URL#MODEL`` names
    the served model), an engine model id as nodes record it (``engine:URL#MODEL``), an engine
    profile of the config, or a local model name or path. A one-line ModelError otherwise.
    With ``hosted`` a local model runs in a process of its own (as the first one does)."""
    from loomtui.backends.engine_config import (
        EngineSpec,
        normalize_url,
        parse_model_id,
        profiles,
        resolve,
    )

    name = name.strip()
    if not name:
        raise ModelError("give an engine URL, an engine profile or a model name")
    parsed = parse_model_id(name)
    spec: EngineSpec | None = None
    if parsed is not None:
        spec = EngineSpec(normalize_url(parsed[0]), parsed[1])
    elif "://" in name:
        url, _, served = name.partition("#")
        spec = resolve(url, served or None)
    elif name in profiles():
        spec = resolve(name)
    if spec is not None:
        from loomtui.backends.engine import connect

        return connect(spec)
    if hosted:
        from loomtui.backends.hosted import ModelHost

        host = ModelHost.start(threads)
        if host is not None:
            try:
                pred = host.load_or_none(name, threads=threads, device=device, dtype=dtype)
            except ModelError:
                host.close()  # nothing else will use it
                raise
            if pred is not None:
                return pred
    from loomtui.backends import load_predictor

    return load_predictor(name, threads=threads, device=device, dtype=dtype)


def close(pred: Any) -> None:
    """Release what a predictor holds open (an engine's connections), if anything."""
    closer = getattr(pred, "close", None)
    if callable(closer):
        closer()
