"""A direct forward pass for the model families we ship (GPT-2 and Llama).

A transformers forward call costs a fixed few milliseconds of Python (module calls, mask and
cache bookkeeping) on top of the arithmetic. That is noise for a full prompt but the larger part
of a short step: a 32-token continuation on the bundled model, or one sampling step. This module
runs the same weights with plain tensor calls:

* one fused product per projection (q/k/v, gate/up), weights laid out [in, out];
* grouped KV heads handled by SDPA itself (no key/value copies), no mask for one-token steps;
* the KV written straight into the cache's reserved buffer;
* the last layer run only for the positions whose logits are kept;
* :class:`SharedPrefix`: n rollouts attend to their common context held once.

It covers only configurations it reproduces exactly and returns ``None`` for anything else
(other architectures, rope variants, cross attention, ...), which keeps the transformers path.
The tests hold it to the transformers logits within 1e-4 (fp32) on both shipped models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from loomtui.backends.cache_adapter import LeanCache, LeanLayer, reserved_layer

Forward = Callable[[torch.Tensor, Any, int, "list[int] | None"], "tuple[torch.Tensor, Any]"]


def lean_forward(model: Any) -> Forward | None:
    """A lean forward for ``model``, or None when it is not a configuration covered here."""
    if model.training or (hasattr(model, "forward") and reserved_layer() is None):
        return None
    from loomtui.backends.fast_load import FAMILIES

    name = FAMILIES.get(getattr(model, "lean_family", ""), type(model).__name__)
    try:
        if name == "GPT2LMHeadModel":
            return _Gpt2(model) if _gpt2_ok(model.config) else None
        if name == "LlamaForCausalLM":
            return _Llama(model) if _llama_ok(model.config) else None
    except AttributeError:  # a model class with the same name but another layout
        return None
    return None


def _gpt2_ok(cfg: Any) -> bool:
    return (cfg.activation_function in ("gelu_new", "gelu_pytorch_tanh")
            and not cfg.add_cross_attention and not cfg.reorder_and_upcast_attn)


def _llama_ok(cfg: Any) -> bool:
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    return (cfg.hidden_act == "silu" and getattr(cfg, "pretraining_tp", 1) == 1
            and rope.get("rope_type", "default") in ("default", "linear", "llama3")
            and not getattr(cfg, "sliding_window", None))


def _cache(cache: Any, lean_only: bool) -> Any:
    """The cache to run after (a new one when None: a :class:`LeanCache` for a model without
    transformers behind it, else a transformers cache, which its own forward can read too)."""
    if cache is None:
        if lean_only:
            return LeanCache()
        from transformers import DynamicCache

        cache = DynamicCache()
        cache.layers = []
    return cache


class SharedPrefix:
    """A cache for decoding ``n`` rollouts from one context: the context's keys and values are
    held once (batch 1), each rollout's own tokens in a per-row buffer. Attention reads the
    shared part once for all rows (one product per KV head) instead of once per row, and no
    copy of the context is made: with 8 rollouts from 500 tokens of SmolLM2 that is 8x less
    memory traffic for the largest part of a decoding step's attention."""

    def __init__(self, prefix: list[tuple[torch.Tensor, torch.Tensor]], n: int,
                 reserve: int) -> None:
        self.layers = [_SharedLayer(k, v, n, reserve) for k, v in prefix]


class _SharedLayer:
    def __init__(self, kp: torch.Tensor, vp: torch.Tensor, n: int, reserve: int) -> None:
        self.kp, self.vp = kp, vp  # [1, kv heads, context, dim]
        self._k = kp.new_empty((n, kp.shape[1], max(reserve, 1), kp.shape[3]))
        self._v = vp.new_empty((n, vp.shape[1], max(reserve, 1), vp.shape[3]))
        self.m = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.m + k.shape[2]
        if end > self._k.shape[2]:
            grow = max(end, 2 * self._k.shape[2]) - self._k.shape[2]
            self._k = torch.cat([self._k, self._k.new_empty((*self._k.shape[:2], grow,
                                                             self._k.shape[3]))], 2)
            self._v = torch.cat([self._v, self._v.new_empty((*self._v.shape[:2], grow,
                                                             self._v.shape[3]))], 2)
        self._k[:, :, self.m : end] = k
        self._v[:, :, self.m : end] = v
        self.m = end
        return self.keys, self.values

    @property
    def keys(self) -> torch.Tensor:
        """The rollouts' own keys (positions after the shared context)."""
        return self._k[:, :, : self.m]

    @property
    def values(self) -> torch.Tensor:
        return self._v[:, :, : self.m]


def _attend_shared(q: torch.Tensor, layer: _SharedLayer, ks: torch.Tensor, vs: torch.Tensor,
                   scale: float) -> torch.Tensor:
    """Attention of each row's last ``t`` positions over the shared context and its own."""
    n, h, t, d = q.shape
    hkv = ks.shape[1]
    g = h // hkv  # query heads per KV head, grouped as transformers' repeat_kv groups them
    width = layer.kp.shape[2]
    qg = q.reshape(n, hkv, g * t, d)
    sp = torch.bmm(qg.transpose(0, 1).reshape(hkv, n * g * t, d), layer.kp[0].transpose(1, 2))
    sp = sp.view(hkv, n, g * t, width).transpose(0, 1)
    ss = torch.matmul(qg, ks.transpose(-1, -2))
    if t > 1:  # causal among the rows' own new positions
        m = ks.shape[2]
        allowed = torch.ones(t, m, dtype=torch.bool, device=q.device).tril(m - t).repeat(g, 1)
        ss = ss.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(torch.cat([sp, ss], -1).float() * scale, -1).to(vs.dtype)
    shared = torch.bmm(p[..., :width].transpose(0, 1).reshape(hkv, n * g * t, width),
                       layer.vp[0]).view(hkv, n, g * t, d).transpose(0, 1)
    return (shared + torch.matmul(p[..., width:], vs)).reshape(n, h, t, d)


def _attention(cache: Any, i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               scale: float, mask: torch.Tensor | None) -> torch.Tensor:
    """Append this step's keys and values to layer ``i`` of ``cache`` and attend."""
    if i < len(cache.layers):
        layer = cache.layers[i]
        if isinstance(layer, _SharedLayer):
            ks, vs = layer.append(k, v)
            return _attend_shared(q, layer, ks, vs, scale)
        k, v = layer.update(k, v)
    else:
        layer = LeanLayer if isinstance(cache, LeanCache) else reserved_layer()
        cache.layers.append(layer.holding(k, v))  # type: ignore[union-attr]
    return _attend(q, k, v, scale, mask)


def _mask(t: int, s: int, device: torch.device) -> torch.Tensor | None:
    """The causal mask of ``t`` new positions over ``s`` in all; None where SDPA needs none
    (one new position sees everything) or applies its own (no cached positions)."""
    if t == 1 or t == s:
        return None
    return torch.ones(t, s, dtype=torch.bool, device=device).tril(s - t)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
            mask: torch.Tensor | None) -> torch.Tensor:
    """Causal attention of the last ``T`` positions (``q``) over all ``S`` cached ones."""
    gqa = k.shape[1] != q.shape[1]
    causal = mask is None and q.shape[-2] > 1
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                          scale=scale, enable_gqa=gqa)


def _last_rows(keep: list[int] | None, t: int, s: int, device: torch.device
               ) -> tuple[list[int] | None, torch.Tensor | None]:
    """The positions the last layer must run (those whose logits are kept: the layer's keys
    and values are computed for all, as the cache needs them) and their attention mask."""
    if keep is None or len(keep) >= t:
        return None, None
    if keep == [t - 1]:
        return keep, None  # one query at the end sees every position
    return keep, torch.ones(t, s, dtype=torch.bool, device=device).tril(s - t)[keep]


class _Gpt2:
    def __init__(self, model: Any) -> None:
        self.lean_only = not hasattr(model, "forward")
        cfg = model.config
        t = model.transformer
        self.head_t = _transpose_head(model, t.wte)  # [width, vocab]
        self.wte, self.wpe, self.ln_f = t.wte.weight, t.wpe.weight, t.ln_f
        self.heads = cfg.n_head
        self.dim = cfg.n_embd // cfg.n_head
        self.eps = cfg.layer_norm_epsilon
        base = self.dim ** -0.5 if cfg.scale_attn_weights else 1.0
        self.layers = [
            (b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias,
             b.attn.c_proj.weight, b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias,
             b.mlp.c_fc.weight, b.mlp.c_fc.bias, b.mlp.c_proj.weight, b.mlp.c_proj.bias,
             base / (i + 1) if cfg.scale_attn_by_inverse_layer_idx else base)
            for i, b in enumerate(t.h)
        ]

    def __call__(self, input_ids: torch.Tensor, cache: Any, start: int,
                 keep: list[int] | None = None) -> tuple[torch.Tensor, Any]:
        cache = _cache(cache, self.lean_only)
        b, t = input_ids.shape
        width = self.wte.shape[1]
        x = (self.wte[input_ids] + self.wpe[start : start + t]).view(b * t, width)
        norm = (width,)
        mask = _mask(t, start + t, x.device)
        rows, rows_mask = _last_rows(keep, t, start + t, x.device)
        last = len(self.layers) - 1
        for i, (l1w, l1b, aw, ab, pw, pb, l2w, l2b, fw, fb, p2w, p2b, scale) in enumerate(
                self.layers):
            h = F.layer_norm(x, norm, l1w, l1b, self.eps)
            qkv = torch.addmm(ab, h, aw).view(b, t, 3, self.heads, self.dim).permute(2, 0, 3, 1, 4)
            q, m, tq = qkv[0], mask, t
            if i == last and rows is not None:
                q, m, tq = q[:, :, rows], rows_mask, len(rows)
                x = x.view(b, t, width)[:, rows].reshape(b * tq, width)
            a = _attention(cache, i, q, qkv[1], qkv[2], scale, m)
            a = a.transpose(1, 2).reshape(b * tq, width)
            x = torch.addmm(pb, a, pw).add_(x)
            h = F.gelu(torch.addmm(fb, F.layer_norm(x, norm, l2w, l2b, self.eps), fw),
                       approximate="tanh")
            x = torch.addmm(p2b, h, p2w).add_(x)
        x = x.view(b, -1, width)
        if rows is None and keep is not None:
            x = x[:, keep]
        x = F.layer_norm(x, norm, self.ln_f.weight, self.ln_f.bias, self.eps)
        return (x @ self.head_t).float(), cache


class _Llama:
    def __init__(self, model: Any) -> None:
        self.lean_only = not hasattr(model, "forward")
        cfg = model.config
        m = model.model
        self.head_t = _transpose_head(model, m.embed_tokens)  # [hidden, vocab]
        self.embed, self.norm, self.rotary = m.embed_tokens.weight, m.norm, m.rotary_emb
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.scale = self.dim ** -0.5
        self.layers = []
        dt = getattr(model, "lean_dtype", None)  # the fast loader's projections are as stored
        for layer in m.layers:
            a, mlp = layer.self_attn, layer.mlp
            # One projection for q, k and v and one for gate and up, stored [in, out].
            self.layers.append((
                layer.input_layernorm, _fuse_t(a.q_proj, a.k_proj, a.v_proj, dtype=dt),
                _fuse_bias(a.q_proj, a.k_proj, a.v_proj), _fuse_t(a.o_proj, dtype=dt),
                _fuse_bias(a.o_proj), layer.post_attention_layernorm,
                _fuse_t(mlp.gate_proj, mlp.up_proj, dtype=dt),
                _fuse_bias(mlp.gate_proj, mlp.up_proj), _fuse_t(mlp.down_proj, dtype=dt),
                _fuse_bias(mlp.down_proj)))
        self.q_size = self.heads * self.dim
        self.kv_size = self.kv_heads * self.dim
        self.inter = cfg.intermediate_size

    def __call__(self, input_ids: torch.Tensor, cache: Any, start: int,
                 keep: list[int] | None = None) -> tuple[torch.Tensor, Any]:
        cache = _cache(cache, self.lean_only)
        b, t = input_ids.shape
        x = self.embed[input_ids]
        pos = torch.arange(start, start + t, device=x.device)[None].expand(b, -1)
        cos, sin = self.rotary(x, pos)
        cos, sin = cos[:, None], sin[:, None]
        mask = _mask(t, start + t, x.device)
        rows, rows_mask = _last_rows(keep, t, start + t, x.device)
        last = len(self.layers) - 1
        for i, (ln1, qkv_w, qkv_b, o_w, o_b, ln2, gu_w, gu_b, down_w, down_b) in enumerate(
                self.layers):
            qkv = _mm(_rms(ln1, x), qkv_w, qkv_b)
            q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
            q = _rope(q.view(b, t, self.heads, self.dim).transpose(1, 2), cos, sin)
            k = _rope(k.view(b, t, self.kv_heads, self.dim).transpose(1, 2), cos, sin)
            v = v.view(b, t, self.kv_heads, self.dim).transpose(1, 2)
            m, tq = mask, t
            if i == last and rows is not None:
                q, m, tq, x = q[:, :, rows], rows_mask, len(rows), x[:, rows]
            a = _attention(cache, i, q, k, v, self.scale, m)
            a = a.transpose(1, 2).reshape(b, tq, self.q_size)
            x = x + _mm(a, o_w, o_b)
            gate, up = _mm(_rms(ln2, x), gu_w, gu_b).split([self.inter, self.inter], -1)
            x = x + _mm(F.silu(gate) * up, down_w, down_b)
        if rows is None and keep is not None:
            x = x[:, keep]
        x = _rms(self.norm, x)
        return (x @ self.head_t).float(), cache


# Weights are kept [in, out] (row-major in the input dimension): on CPU a product with a few
# rows (a sampling step over n rollouts, a short continuation) runs up to twice as fast that
# way than against the usual [out, in]. The modules keep working on transposed views of the
# same storage, so nothing is held twice and the transformers path sees the same numbers.

def _fuse_t(*linears: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The linears' weights side by side as one [in, sum of outs] tensor in ``dtype`` (default:
    theirs); each module's weight becomes a view of its columns. Each weight is copied once,
    transposed and converted in the same pass (a concatenation, then a contiguous transpose,
    after a conversion, took three passes: over half of SmolLM2's load)."""
    first = linears[0].weight
    dtype = dtype or first.dtype
    fused = _fused_already(linears, dtype)
    copy = fused is None
    if fused is None:
        fused = torch.empty((first.shape[1], sum(lin.weight.shape[0] for lin in linears)),
                            dtype=dtype, device=first.device)
    col = 0
    for lin in linears:
        n = lin.weight.shape[0]
        if copy:
            fused[:, col : col + n].copy_(lin.weight.detach().t())
        lin.weight = torch.nn.Parameter(fused[:, col : col + n].t(), requires_grad=False)
        col += n
    return fused


def _fused_already(linears: tuple[Any, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """The [in, sum of outs] tensor whose consecutive column blocks the linears' weights are
    already (views into a lean cache: see ``lean_cache``), or None."""
    cols = [lin.weight.detach().t() for lin in linears]
    first = cols[0]
    rows, total = first.shape[0], sum(c.shape[1] for c in cols)
    storage = first.untyped_storage()
    offset = first.storage_offset()
    for c in cols:
        if (c.dtype != dtype or c.device != first.device or c.shape[0] != rows
                or c.stride() != (total, 1) or c.storage_offset() != offset
                or c.untyped_storage().data_ptr() != storage.data_ptr()):
            return None
        offset += c.shape[1]
    if first.storage_offset() + rows * total > storage.nbytes() // first.element_size():
        return None
    return first.as_strided((rows, total), (total, 1), first.storage_offset())


def _fuse_bias(*linears: Any) -> torch.Tensor | None:
    if all(lin.bias is None for lin in linears):
        return None
    return torch.cat([lin.bias if lin.bias is not None
                      else lin.weight.new_zeros(lin.weight.shape[0]) for lin in linears])


def _transpose_head(model: Any, embed: Any) -> torch.Tensor:
    """The output projection as [hidden, vocab]; a tied input embedding shares it."""
    head = model.lm_head
    if getattr(head, "bias", None) is not None:
        raise AttributeError("an output bias is not covered")
    tied = head.weight is embed.weight
    w_t = head.weight.detach().t().contiguous()
    param = torch.nn.Parameter(w_t.t(), requires_grad=False)
    head.weight = param
    if tied:
        embed.weight = param
    return w_t


def _mm(x: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    y = x2 @ w_t if bias is None else torch.addmm(bias, x2, w_t)
    return y.view(*shape[:-1], w_t.shape[1])


def _rms(norm: Any, x: torch.Tensor) -> torch.Tensor:
    """Llama's RMSNorm, computed in float32 as transformers does."""
    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin
