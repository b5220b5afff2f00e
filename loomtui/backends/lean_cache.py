"""A Llama model's weights kept in the lean forward's own layout, read back by memory mapping.

The fast loader reads the shipped bf16 weights and copies every projection into the lean
forward's fused [in, out] layout in float32: for SmolLM2-135M about a second of its load,
each launch. After that load, the fused tensors are written once (in a thread, atomically) to
the cache directory; a later launch maps that file and the lean forward uses its tensors as
they are (no copy). The file is keyed by the weights file's path, size and mtime and by the
dtype, so a changed model is never served from a stale copy; a file that does not read back as
expected is removed and the model loads from its own weights.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

FORMAT = 1
"""Bumped when the layout written here changes (old files are then never read)."""

STALE_TEMP = 3600.0
"""Seconds after which a half-written cache file (its process ended) is removed."""


def path_for(directory: Path, dtype: torch.dtype) -> Path:
    from loomtui.backends.models import cache_dir

    weights = directory / "model.safetensors"
    st = weights.stat()
    key = hashlib.sha1(f"{weights.resolve()}:{st.st_size}:{st.st_mtime_ns}:{FORMAT}".encode()
                       ).hexdigest()[:16]
    name = str(dtype).removeprefix("torch.")
    return cache_dir() / "lean" / f"{directory.name[:40]}-{key}-{name}.safetensors"


def read(directory: Path, cfg: Any, dtype: torch.dtype) -> dict[str, torch.Tensor] | None:
    """The model's tensors under the names the fast loader reads, as views into the mapped
    cache (the fused projections' column blocks), or None when there is no usable cache."""
    from safetensors.torch import load_file

    try:
        path = path_for(directory, dtype)
    except OSError:
        return None
    if not path.is_file():
        return None
    try:
        data = load_file(str(path))
        return _views(data, cfg, dtype)
    except Exception:  # a file that is not what this version writes: load without it
        path.unlink(missing_ok=True)
        return None


def _views(data: dict[str, torch.Tensor], cfg: Any, dtype: torch.dtype
           ) -> dict[str, torch.Tensor]:
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    hidden, inter = cfg.hidden_size, cfg.intermediate_size
    q, kv = heads * dim, kv_heads * dim
    raw: dict[str, torch.Tensor] = {}

    def take(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        t = data[name]
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise ValueError(f"{name}: {tuple(t.shape)} {t.dtype}")
        return t

    for i in range(cfg.num_hidden_layers):
        b = f"model.layers.{i}."
        qkv = take(b + "qkv_t", (hidden, q + 2 * kv))
        gu = take(b + "gate_up_t", (hidden, 2 * inter))
        raw[b + "self_attn.q_proj.weight"] = qkv[:, :q].t()
        raw[b + "self_attn.k_proj.weight"] = qkv[:, q : q + kv].t()
        raw[b + "self_attn.v_proj.weight"] = qkv[:, q + kv :].t()
        raw[b + "self_attn.o_proj.weight"] = take(b + "o_t", (q, hidden)).t()
        raw[b + "mlp.gate_proj.weight"] = gu[:, :inter].t()
        raw[b + "mlp.up_proj.weight"] = gu[:, inter:].t()
        raw[b + "mlp.down_proj.weight"] = take(b + "down_t", (inter, hidden)).t()
        for norm in ("input_layernorm", "post_attention_layernorm"):
            raw[b + norm + ".weight"] = take(b + norm + ".weight", (hidden,))
    raw["model.norm.weight"] = take("model.norm.weight", (hidden,))
    head_t = take("head_t", (hidden, cfg.vocab_size))
    if "embed" in data:  # untied: the input embedding is its own tensor
        raw["model.embed_tokens.weight"] = take("embed", (cfg.vocab_size, hidden))
        raw["lm_head.weight"] = head_t.t()
    else:
        raw["model.embed_tokens.weight"] = head_t.t()
    return raw


def write_later(directory: Path, dtype: torch.dtype, model: Any) -> threading.Thread | None:
    """Write the cache for a model the fast loader just built, in a daemon thread (saving
    releases the GIL: the app's keys are not held up); None when there is nothing to write."""
    tensors = _tensors(model)
    if tensors is None:
        return None
    thread = threading.Thread(target=_write, args=(directory, dtype, tensors), daemon=True,
                              name="lean-cache")
    thread.start()
    return thread


def _tensors(model: Any) -> dict[str, torch.Tensor] | None:
    fwd = model.prepared_forward
    layers = getattr(fwd, "layers", None)
    if not layers or getattr(model, "lean_family", None) != "llama":
        return None
    out: dict[str, torch.Tensor] = {}
    for i, (ln1, qkv, qkv_b, o, o_b, ln2, gu, gu_b, down, down_b) in enumerate(layers):
        if any(b is not None for b in (qkv_b, o_b, gu_b, down_b)):
            return None  # biases: not worth a format of their own
        b = f"model.layers.{i}."
        out[b + "qkv_t"], out[b + "o_t"] = qkv, o
        out[b + "gate_up_t"], out[b + "down_t"] = gu, down
        out[b + "input_layernorm.weight"] = ln1.weight
        out[b + "post_attention_layernorm.weight"] = ln2.weight
    out["model.norm.weight"] = fwd.norm.weight
    out["head_t"] = fwd.head_t
    if model.lm_head.weight is not model.model.embed_tokens.weight:
        out["embed"] = model.model.embed_tokens.weight
    return {k: v.detach().contiguous() for k, v in out.items()}


def _write(directory: Path, dtype: torch.dtype, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    try:
        path = path_for(directory, dtype)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except Exception:  # a cache: the next launch loads from the weights again
        pass


def _remove_stale(folder: Path) -> None:
    for stale in folder.glob("*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime > STALE_TEMP:
                stale.unlink()
        except OSError:
            pass
