"""A Llama model's weights kept in the lean forward's own layout, read back by memory mapping.

The fast loader reads the shipped bf16 weights and copies every projection into the lean
forward's fused [in, out] layout in float32: for SmolLM2-135M about a second of its load,
each launch. After such a load, a process of its own writes the fused tensors once
(atomically) to the cache directory; a later launch maps that file and the lean forward uses
its tensors as they are (no copy). The file is keyed by the weights file's path, size and
mtime and by the dtype, so a changed model is never served from a stale copy; a file that does
not read back as expected is removed and the model loads from its own weights.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

FORMAT = 1
"""Bumped when the layout written here changes (old files are then never read)."""

STALE_TEMP = 600.0
"""Seconds after which a half-written cache file is removed (a write takes seconds; only one
writer runs at a time, under the file's lock)."""


def path_for(directory: Path, dtype: torch.dtype) -> Path:
    from loomtui.backends.models import cache_dir

    weights = directory / "model.safetensors"
    st = weights.stat()
    key = hashlib.sha1(f"{weights.resolve()}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:"
                       f"{FORMAT}".encode()).hexdigest()[:16]
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


MAX_BYTES = 2 * 2**30
"""Models whose weights take more than this (in the cache's dtype) are not cached: a second
load in the writer beside the app's would risk the machine's memory, and the file its disk."""


def worth_writing(raw: dict[str, torch.Tensor], dtype: torch.dtype) -> bool:
    """Whether a model read from these weights gets a cache (no biases: the format has none;
    not too big)."""
    if any(name.endswith("_proj.bias") for name in raw):
        return False
    size = torch.empty((), dtype=dtype).element_size()
    return sum(t.numel() for t in raw.values()) * size <= MAX_BYTES


def write_later(directory: Path, dtype: torch.dtype) -> subprocess.Popen[bytes] | None:
    """Start writing the cache for a model just loaded from its own weights, in a process of
    its own: it reloads the weights and writes the file even if the app quits at once (a
    thread's half-written file was left behind by every quick quit), on the other core.
    None when caching is off (``LOOMTUI_LEAN_CACHE=0``) or the process cannot start."""
    if os.environ.get("LOOMTUI_LEAN_CACHE", "1") == "0":
        return None
    from loomtui.backends.host_spawn import child_env, child_python

    name = str(dtype).removeprefix("torch.")
    try:
        return subprocess.Popen(
            [*child_python(), "-m", "loomtui.backends.lean_cache", str(directory), name],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=child_env(),
            start_new_session=True)  # never the terminal's: the app's ctrl+c is not for it
    except OSError:
        return None


def write(directory: Path, dtype: torch.dtype) -> bool:
    """Load the model from its weights and write its cache (one writer at a time); whether a
    cache file is there after."""
    import filelock

    from loomtui.backends import fast_load

    path = path_for(directory, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with filelock.FileLock(str(path) + ".lock", timeout=0):
            if path.is_file():
                return True
            _remove_stale(path.parent)
            got = fast_load.load(directory, "cpu", dtype, cache=False)
            tensors = _tensors(got[0]) if got is not None else None
            if tensors is not None:
                _write(path, tensors)
                kind = path.name.rsplit("-", 1)[-1]  # DTYPE.safetensors
                for old in path.parent.glob(f"{directory.name[:40]}-*-{kind}"):
                    if old != path:  # the same model's file for weights that changed since
                        old.unlink(missing_ok=True)
    except filelock.Timeout:  # another process is writing it
        return False
    return path.is_file()


def ensure(name: str, dtype: torch.dtype = torch.float32) -> bool:
    """Write the cache for a model by name now (benchmarks: launches after the first)."""
    from loomtui.backends.loading import convert_gguf
    from loomtui.backends.models import resolve

    spec = resolve(name)
    return write(convert_gguf(spec) if spec.gguf_file else Path(spec.path), dtype)


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


def _write(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_stale(folder: Path) -> None:
    """Temporary files of writers that ended midway (ours, and safetensors' own)."""
    for stale in [*folder.glob("*.tmp"), *folder.glob(".tmp*")]:
        try:
            if time.time() - stale.stat().st_mtime > STALE_TEMP:
                stale.unlink()
        except OSError:
            pass


if __name__ == "__main__":  # python -m loomtui.backends.lean_cache MODEL_DIR DTYPE
    torch.set_num_threads(1)
    sys.exit(0 if write(Path(sys.argv[1]), getattr(torch, sys.argv[2])) else 1)
