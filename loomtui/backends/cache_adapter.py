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
        self.can_keep = "logits_to_keep" in params
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, cache: Any, start: int, keep: list[int] | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Run ``input_ids`` ([batch, seq]) after a context held in ``cache`` (a transformers
        cache, see :func:`to_cache`) of length ``start``.

        Returns the logits ([batch, seq, vocab], float32) and the grown cache. With ``keep``
        (positions within ``input_ids``), only those rows of logits are computed and returned:
        the output projection is a large share of a small model's cost.
        """
        extra: dict[str, Any] = {}
        if keep is not None:
            if self.can_keep:
                extra["logits_to_keep"] = torch.tensor(keep, device=input_ids.device)
            else:
                extra["__slice__"] = keep
        if cache is None:
            cache = DynamicCache()
        seq = input_ids.shape[1]
        positions = torch.arange(start, start + seq, device=input_ids.device)
        out = self.model(
            input_ids=input_ids,
            position_ids=positions.unsqueeze(0).expand(input_ids.shape[0], -1),
            use_cache=True,
            **{self.arg: cache},
            **{k: v for k, v in extra.items() if k != "__slice__"},
        )
        new_cache = out.get(self.arg, out.past_key_values)
        logits = out.logits.float()
        if "__slice__" in extra:
            logits = logits[:, extra["__slice__"]]
        return logits, new_cache


try:  # transformers 5.x: per-layer cache objects
    from transformers.cache_utils import DynamicLayer
except ImportError:  # pragma: no cover - transformers 4.x
    DynamicLayer = None  # type: ignore[assignment,misc]


if DynamicLayer is not None:

    class ReservedLayer(DynamicLayer):  # type: ignore[misc,valid-type]
        """A cache layer with room reserved ahead, written in place.

        ``DynamicLayer`` concatenates the whole cache at every decoding step (O(context) copies
        per token); this one writes each step into a preallocated buffer and hands attention a
        view, doubling the buffer only when it runs out.
        """

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, reserve: int) -> None:
            super().__init__()
            n = keys.shape[-2]
            shape = (*keys.shape[:-2], n + max(reserve, 1), keys.shape[-1])
            self._kbuf = keys.new_empty(shape)
            self._vbuf = values.new_empty((*shape[:-1], values.shape[-1]))
            self._kbuf[..., :n, :] = keys
            self._vbuf[..., :n, :] = values
            self._n = n
            self.device = keys.device
            self.keys = self._kbuf[..., :n, :]
            self.values = self._vbuf[..., :n, :]
            self.is_initialized = True

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            add = key_states.shape[-2]
            end = self._n + add
            if end > self._kbuf.shape[-2]:
                cap = max(end, 2 * self._kbuf.shape[-2])
                kbuf = self._kbuf.new_empty((*self._kbuf.shape[:-2], cap, self._kbuf.shape[-1]))
                vbuf = self._vbuf.new_empty((*self._vbuf.shape[:-2], cap, self._vbuf.shape[-1]))
                kbuf[..., : self._n, :] = self._kbuf[..., : self._n, :]
                vbuf[..., : self._n, :] = self._vbuf[..., : self._n, :]
                self._kbuf, self._vbuf = kbuf, vbuf
            self._kbuf[..., self._n : end, :] = key_states
            self._vbuf[..., self._n : end, :] = value_states
            self._n = end
            self.keys = self._kbuf[..., :end, :]
            self.values = self._vbuf[..., :end, :]
            return self.keys, self.values


def to_cache(kv: KV, reserve: int = 0) -> DynamicCache | None:
    """A transformers cache holding ``kv``, with room for ``reserve`` more positions."""
    if not kv:
        return None
    cache = DynamicCache()
    if DynamicLayer is not None and hasattr(cache, "layers"):
        cache.layers = [ReservedLayer(k, v, reserve) for k, v in kv]
        return cache
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
