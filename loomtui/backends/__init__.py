"""Predictors: language-model backends (torch lives here, never in ``loomtui.core``)."""

from __future__ import annotations

from typing import Any

_LOADED: dict[tuple[str, str, str, bool], Any] = {}


def load_predictor(name: str | None = None, *, threads: int | None = None, device: str = "auto",
                   dtype: str = "float32", kv_budget_mb: int = 256, fast: bool = True) -> Any:
    """A :class:`TransformersPredictor` for ``name`` (see ``models.resolve``), loaded once per
    process. ``threads`` sets torch's CPU thread count. The name is resolved before torch is
    imported, so a model that is not there is a quick one-line ModelError."""
    from loomtui.backends.models import resolve

    spec = resolve(name)  # a model that is not there is reported before torch is imported
    import torch

    from loomtui.backends.loading import load_model
    from loomtui.backends.transformers_backend import TransformersPredictor

    if threads:
        torch.set_num_threads(threads)
    key = (str(spec.path / (spec.gguf_file or "")) + (spec.local_only_hub_id or ""), device, dtype,
           fast)
    pred = _LOADED.get(key)
    if pred is None:
        with torch.inference_mode(False):  # weights usable in and out of inference mode
            model, tok = load_model(spec, device=device, dtype=dtype, fast=fast)
            pred = TransformersPredictor(model, tok, spec.model_id,
                                         kv_budget_bytes=kv_budget_mb * 2**20)
        _LOADED[key] = pred
    return pred
