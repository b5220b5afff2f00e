"""The one place that knows how transformers passes KV caches around.

transformers 5.x renamed the forward argument ``past_key_values`` to ``cache`` (and the output
field with it) and moved per-layer tensors into ``cache.layers[i].keys/values``; 4.x kept them
in ``key_cache``/``value_cache`` lists. Everything else in loomtui sees a KV state as a plain
list of per-layer ``(keys, values)`` tensors shaped ``[batch, heads, seq, head_dim]``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import DynamicCache

KV = list[tuple[torch.Tensor, torch.Tensor]]


class CacheAdapter:
    def __init__(self, model: Any) -> None:
        params = inspect.signature(model.forward).parameters
        self.arg = "cache" if "cache" in params else "past_key_values"
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, cache: Any, start: int
    ) -> tuple[torch.Tensor, Any]:
        """Run ``input_ids`` ([batch, seq]) after a context held in ``cache`` (a transformers
        cache, see :func:`to_cache`) of length ``start``.

        Returns the logits ([batch, seq, vocab], float32) and the grown cache.
        """
        if cache is None:
            cache = DynamicCache()
        seq = input_ids.shape[1]
        positions = torch.arange(start, start + seq, device=input_ids.device)
        out = self.model(
            input_ids=input_ids,
            position_ids=positions.unsqueeze(0).expand(input_ids.shape[0], -1),
            use_cache=True,
            **{self.arg: cache},
        )
        new_cache = out[self.arg] if self.arg in out else out.past_key_values
        return out.logits.float(), new_cache


def to_cache(kv: KV) -> DynamicCache | None:
    if not kv:
        return None
    cache = DynamicCache()
    for i, (k, v) in enumerate(kv):
        cache.update(k, v, i)
    return cache


def from_cache(cache: Any) -> KV:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def kv_len(kv: KV) -> int:
    return kv[0][0].shape[2] if kv else 0


def kv_bytes(kv: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


def kv_slice(kv: KV, start: int, stop: int, row: int | None = None) -> KV:
    """Positions ``start:stop`` (of one batch row, if given) as contiguous tensors."""
    if row is None:
        return [(k[:, :, start:stop].contiguous(), v[:, :, start:stop].contiguous())
                for k, v in kv]
    return [(k[row : row + 1, :, start:stop].contiguous(),
             v[row : row + 1, :, start:stop].contiguous()) for k, v in kv]


def kv_concat(parts: list[KV]) -> KV:
    parts = [p for p in parts if p and kv_len(p)]
    if not parts:
        return []
    if len(parts) == 1:
        return parts[0]
    return [
        (torch.cat([p[i][0] for p in parts], dim=2), torch.cat([p[i][1] for p in parts], dim=2))
        for i in range(len(parts[0]))
    ]


def kv_repeat(kv: KV, n: int) -> KV:
    return [(k.expand(n, -1, -1, -1).contiguous(), v.expand(n, -1, -1, -1).contiguous())
            for k, v in kv]
