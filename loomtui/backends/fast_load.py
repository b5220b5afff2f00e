"""Loading the model families the lean forward covers without transformers' model classes.

transformers' modelling code imports most of torch (``torch.distributed.tensor`` alone took
2.4 s) and its auto classes resolve lazily: loading SmolLM2-135M from its safetensors copy took
6.5 s, of which under half a second was reading weights. Here the tokenizer comes from
``tokenizer.json`` through ``tokenizers`` and the weights from ``model.safetensors`` through
``safetensors``, laid out in plain objects with the attribute paths the lean forward reads
(``model.layers[i].self_attn.q_proj.weight`` ...). Only configurations the lean forward
reproduces exactly are loaded this way (GPT-2, and Llama with the default rotary embedding);
anything else returns None and takes the transformers path. A test holds both paths to the
same logits.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

FAMILIES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}


class Config(SimpleNamespace):
    """A model's ``config.json`` as attributes (missing keys raise AttributeError)."""


class Linear:
    __slots__ = ("bias", "weight")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.weight = weight
        self.bias = bias


class RMSNorm:
    __slots__ = ("variance_epsilon", "weight")

    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        self.weight = weight
        self.variance_epsilon = eps


class LayerNorm:
    __slots__ = ("bias", "weight")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight = weight
        self.bias = bias


class DefaultRotary:
    """Llama's default rotary embedding, computed as transformers computes it (float32)."""

    def __init__(self, dim: int, theta: float, device: torch.device) -> None:
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).to(
            device=device, dtype=torch.float) / dim))

    def __call__(self, x: torch.Tensor, position_ids: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        inv = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        pos = position_ids[:, None, :].float()
        freqs = (inv @ pos).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


class LeanModel:
    """Weights in the layout the lean forward reads, and what the predictor asks of a model
    (config, output embedding size, device, end-of-text ids)."""

    training = False

    def __init__(self, family: str, config: Config, generation: Config | None) -> None:
        self.lean_family = family
        self.config = config
        self.generation_config = generation
        self.lm_head: Linear
        self.model: Any = None
        self.transformer: Any = None
        self.prepared_forward: Any = None
        """The lean forward over these weights, made once by the loader."""
        self.cache_writer: subprocess.Popen[bytes] | None = None
        """The process writing this model's lean cache (see ``lean_cache``), if one is."""
        self.lean_dtype: torch.dtype | None = None
        """The dtype the lean forward's fused weights take (None: as the weights are)."""
        self._tensors: list[torch.Tensor] = []

    def get_output_embeddings(self) -> Linear:
        return self.lm_head

    def parameters(self) -> Iterator[torch.Tensor]:
        return iter(self._tensors)


class FastTokenizer:
    """The subset of a transformers fast tokenizer the predictor uses, over ``tokenizers``
    (the same ``tokenizer.json``, so the same ids and texts)."""

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tok.no_truncation()  # as transformers calls it: whole texts, no pad ids
        self._tok.no_padding()
        self.eos_token_id: int | None = None
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            eos = _json(directory / name).get("eos_token")
            if isinstance(eos, dict):
                eos = eos.get("content")
            if isinstance(eos, str) and self.eos_token_id is None:
                self.eos_token_id = self._tok.token_to_id(eos)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool = False) -> str:
        if clean_up_tokenization_spaces:
            raise ValueError("clean-up of tokenisation spaces is not supported here")
        return self._tok.decode(list(token_ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, token_ids: list[int]) -> list[str | None]:
        return [self._tok.id_to_token(t) for t in token_ids]


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def _config(path: Path) -> Config | None:
    data = _json(path)
    return Config(**data) if data else None


TOKENIZER_OPTIONS = {"add_prefix_space", "add_bos_token", "add_eos_token", "do_lower_case",
                     "legacy"}
"""Settings transformers applies on top of ``tokenizer.json``: when one is set (true), the
tokenizer is left to transformers."""


def _covered(cfg: Config) -> str | None:
    """The family when the lean forward reproduces this configuration exactly, else None.
    Llama only with the default rotary embedding (the one :class:`DefaultRotary` computes):
    any scaling, in either the old ``rope_scaling`` (``type`` or ``rope_type``) or the new
    ``rope_parameters`` form, takes the transformers path."""
    from loomtui.backends.lean_forward import _gpt2_ok, _llama_ok

    try:
        family = cfg.model_type
        if family == "gpt2":
            return family if _gpt2_ok(cfg) else None
        if family == "llama":
            if getattr(cfg, "rope_scaling", None):
                return None
            rope = getattr(cfg, "rope_parameters", None) or {}
            if not isinstance(rope, dict) or set(rope) - {"rope_theta", "rope_type", "type"}:
                return None
            if rope.get("rope_type", rope.get("type", "default")) != "default":
                return None
            return family if _llama_ok(cfg) else None
    except AttributeError:
        return None
    return None


def load(directory: Path, device: str, dtype: torch.dtype, *, cache: bool = True
         ) -> tuple[LeanModel, FastTokenizer] | None:
    """(model, tokenizer) for a covered model directory, or None (take the transformers path).
    With ``cache``, a Llama model's weights come from its lean cache when there is one, and
    one is written (by another process) when there is not: see ``lean_cache``."""
    try:
        return _load(directory, device, dtype, cache)
    except Exception:  # anything unexpected: transformers' path says what it is
        return None


def _load(directory: Path, device: str, dtype: torch.dtype, cache: bool
          ) -> tuple[LeanModel, FastTokenizer] | None:
    from safetensors.torch import load_file

    from loomtui.backends import lean_cache
    from loomtui.backends.lean_forward import lean_forward

    cfg = _config(directory / "config.json")
    weights_file = directory / "model.safetensors"
    if cfg is None or not weights_file.is_file() or not (directory / "tokenizer.json").is_file():
        return None
    tok_cfg = _json(directory / "tokenizer_config.json")
    if any(tok_cfg.get(k) for k in TOKENIZER_OPTIONS):
        return None
    family = _covered(cfg)
    if family is None:
        return None
    cacheable = cache and family == "llama" and device == "cpu"
    raw = lean_cache.read(directory, cfg, dtype) if cacheable else None
    cached = raw is not None
    if raw is None:
        raw = load_file(str(weights_file), device=device)
    model = LeanModel(family, cfg, _config(directory / "generation_config.json"))
    (_gpt2 if family == "gpt2" else _llama)(model, raw, dtype, torch.device(device))
    model.prepared_forward = lean_forward(model)  # every key it reads is there
    if model.prepared_forward is None:
        return None
    tokenizer = FastTokenizer(directory)
    if cacheable and not cached and lean_cache.worth_writing(raw, dtype):
        model.cache_writer = lean_cache.write_later(directory, dtype)
    return model, tokenizer


def _take(raw: dict[str, torch.Tensor], model: LeanModel, dtype: torch.dtype
          ) -> Any:
    def get(name: str, optional: bool = False, cast: bool = True) -> torch.Tensor | None:
        """The tensor, in ``dtype``; with ``cast=False`` as stored (a projection the lean
        forward copies into its fused [in, out] weights, converting it on the way)."""
        t = raw.get(name)
        if t is None:
            if optional:
                return None
            raise KeyError(name)
        if cast:
            t = t.to(dtype)
            model._tensors.append(t)
        return t
    return get


def _gpt2(model: LeanModel, raw: dict[str, torch.Tensor], dtype: torch.dtype,
          device: torch.device) -> None:
    cfg = model.config
    p = "transformer." if "transformer.wte.weight" in raw else ""
    get = _take(raw, model, dtype)
    blocks = []
    for i in range(cfg.n_layer):
        b = f"{p}h.{i}."
        blocks.append(SimpleNamespace(
            ln_1=LayerNorm(get(b + "ln_1.weight"), get(b + "ln_1.bias")),
            ln_2=LayerNorm(get(b + "ln_2.weight"), get(b + "ln_2.bias")),
            attn=SimpleNamespace(
                c_attn=Linear(get(b + "attn.c_attn.weight"), get(b + "attn.c_attn.bias")),
                c_proj=Linear(get(b + "attn.c_proj.weight"), get(b + "attn.c_proj.bias"))),
            mlp=SimpleNamespace(
                c_fc=Linear(get(b + "mlp.c_fc.weight"), get(b + "mlp.c_fc.bias")),
                c_proj=Linear(get(b + "mlp.c_proj.weight"), get(b + "mlp.c_proj.bias")))))
    wte = Linear(get(p + "wte.weight"))
    model.transformer = SimpleNamespace(
        wte=wte, wpe=Linear(get(p + "wpe.weight")), h=blocks,
        ln_f=LayerNorm(get(p + "ln_f.weight"), get(p + "ln_f.bias")))
    head = get("lm_head.weight", optional=True)
    tied = head is None or getattr(cfg, "tie_word_embeddings", True)
    model.lm_head = Linear(wte.weight) if tied else Linear(head)


def _llama(model: LeanModel, raw: dict[str, torch.Tensor], dtype: torch.dtype,
           device: torch.device) -> None:
    cfg = model.config
    get = _take(raw, model, dtype)
    model.lean_dtype = dtype  # the projections are converted as the lean forward fuses them
    eps = cfg.rms_norm_eps
    heads = cfg.num_attention_heads
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    layers = []
    for i in range(cfg.num_hidden_layers):
        b = f"model.layers.{i}."

        def lin(name: str, b: str = b) -> Linear:
            return Linear(get(b + name + ".weight", cast=False),
                          get(b + name + ".bias", optional=True))

        layers.append(SimpleNamespace(
            input_layernorm=RMSNorm(get(b + "input_layernorm.weight"), eps),
            post_attention_layernorm=RMSNorm(get(b + "post_attention_layernorm.weight"), eps),
            self_attn=SimpleNamespace(q_proj=lin("self_attn.q_proj"),
                                      k_proj=lin("self_attn.k_proj"),
                                      v_proj=lin("self_attn.v_proj"),
                                      o_proj=lin("self_attn.o_proj")),
            mlp=SimpleNamespace(gate_proj=lin("mlp.gate_proj"), up_proj=lin("mlp.up_proj"),
                                down_proj=lin("mlp.down_proj"))))
    embed = Linear(get("model.embed_tokens.weight"))
    model.model = SimpleNamespace(
        embed_tokens=embed, layers=layers, norm=RMSNorm(get("model.norm.weight"), eps),
        rotary_emb=DefaultRotary(dim, float(theta), device))
    head = get("lm_head.weight", optional=True)
    tied = head is None or getattr(cfg, "tie_word_embeddings", False)
    model.lm_head = Linear(embed.weight) if tied else Linear(head)
