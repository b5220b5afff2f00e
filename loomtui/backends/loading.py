"""Loading a causal LM and its tokenizer from a :class:`ModelSpec`, offline.

A GGUF file is dequantised once (about 20 s) into a bf16 safetensors directory in the user
cache; later starts load that directory in well under a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from loomtui.backends.models import ModelSpec, cache_dir
from loomtui.core.errors import ModelError


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: CUDA is not available to this torch "
                         f"({torch.__version__}); use --device cpu or auto")
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError("--device mps: MPS is not available here; use --device cpu or auto")
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise ModelError(f"unknown device {device!r:.40}; use auto, cpu, cuda or mps")
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _quiet() -> None:
    """transformers' log lines and progress bars off (called where transformers is used)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module="transformers")


STALE_CONVERSION = 3600.0
"""Seconds after which a half-written conversion (its process was killed) is removed."""


def converted_dir(spec: ModelSpec) -> Path:
    """Where the safetensors copy of a GGUF file lives (keyed by the file's size and mtime)."""
    assert spec.gguf_file is not None
    f = spec.path / spec.gguf_file
    st = f.stat()
    key = hashlib.sha1(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "converted" / f"{Path(spec.gguf_file).stem}-{key}"


def convert_gguf(spec: ModelSpec) -> Path:
    """Dequantise a GGUF model once into a bf16 safetensors directory; returns it."""
    out = converted_dir(spec)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    _quiet()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(out.name + ".*"):  # a conversion killed midway (a quit)
        try:
            if time.time() - stale.stat().st_mtime > STALE_CONVERSION:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        extra: dict[str, Any] = {}
        try:  # transformers 5.x keeps GGUF blocks packed (not serialisable) unless asked
            from transformers import GgufConfig

            extra["quantization_config"] = GgufConfig(gguf_file=spec.gguf_file, dequantize=True)
        except ImportError:  # 4.x always dequantises
            pass
        model = AutoModelForCausalLM.from_pretrained(
            spec.path, gguf_file=spec.gguf_file, dtype=torch.bfloat16, **extra)
        tok = AutoTokenizer.from_pretrained(spec.path, gguf_file=spec.gguf_file)
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_model(spec: ModelSpec, device: str = "auto", dtype: str = "float32", *,
               fast: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode; any failure is a one-line ModelError. ``fast``: a
    model the lean forward covers is read straight from its files (see
    :mod:`loomtui.backends.fast_load`); without it, or for any other model, transformers
    builds it."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    dev = pick_device(device)  # before the weights are read: a bad device fails at once
    try:
        path: Path | str = spec.path
        if spec.gguf_file:
            path = convert_gguf(spec)
        if fast and not spec.local_only_hub_id:
            from loomtui.backends import fast_load

            got = fast_load.load(Path(path), dev, torch_dtype)
            if got is not None:
                return got
        _quiet()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"local_files_only": True}  # never download
        if spec.local_only_hub_id:
            path = spec.local_only_hub_id
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs)
    except ModelError:
        raise
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if spec.local_only_hub_id:
            raise ModelError(f"{spec.model_id}: not in the local Hugging Face cache "
                             f"(loomtui never downloads): {first}") from None
        raise ModelError(f"{spec.model_id}: cannot load model: {first}") from None
    except Exception as exc:  # transformers raises many kinds for broken files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{spec.model_id}: cannot load model: {type(exc).__name__}: "
                         f"{first[:200]}") from None
    model.to(dev)
    model.eval()
    return model, tok
