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

from loomtui.core.errors import ModelError

KV = list[tuple[torch.Tensor, torch.Tensor]]


class CacheAdapter:
    def __init__(self, model: Any, lean: bool = True) -> None:
        forward = getattr(model, "forward", None)
        params = inspect.signature(forward).parameters if forward is not None else {}
        self.arg = "cache" if "cache" in params else "past_key_values"
        self.can_keep = "logits_to_keep" in params
        self.model = model
        self.lean_only = forward is None
        """No transformers model behind it (the fast loader's): caches are :class:`LeanCache`."""
        self.lean = None
        if forward is None:
            self.lean = getattr(model, "prepared_forward", None)
        elif lean:
            from loomtui.backends.lean_forward import lean_forward

            self.lean = lean_forward(model)
        if self.lean is None and forward is None:
            raise ModelError("this model has no forward pass (a lean model the lean forward "
                             "does not cover)")

    def forward(
        self, input_ids: torch.Tensor, cache: Any, start: int, keep: list[int] | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Run ``input_ids`` ([batch, seq]) after a context held in ``cache`` (a transformers
        cache, see :func:`to_cache`) of length ``start``.

        Returns the logits ([batch, seq, vocab], float32) and the grown cache. With ``keep``
        (positions within ``input_ids``), only those rows of logits are computed and returned:
        the output projection is a large share of a small model's cost.
        """
        if self.lean is not None:
            return self.lean(input_ids, cache, start, keep)
        extra: dict[str, Any] = {}
        if keep is not None:
            if self.can_keep:
                extra["logits_to_keep"] = torch.tensor(keep, device=input_ids.device)
            else:
                extra["__slice__"] = keep
        if cache is None:
            from transformers import DynamicCache

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


class LeanLayer:
    """A cache layer over preallocated buffers, written in place.

    transformers' ``DynamicLayer`` concatenates the whole cache at every decoding step
    (O(context) copies per token); this one writes each step into its buffer and hands
    attention a view, doubling the buffer only when it runs out. The buffer may be shared (the
    predictor's hot context): positions before ``n`` are never written. It needs nothing of
    transformers: the lean forward reads it directly (:class:`ReservedLayer` is the same layer
    for transformers' own forward).
    """

    def __init__(self, kbuf: torch.Tensor, vbuf: torch.Tensor, n: int) -> None:
        super().__init__()
        self._kbuf, self._vbuf, self._n = kbuf, vbuf, n
        self.device = kbuf.device
        self.keys = kbuf[..., :n, :]
        self.values = vbuf[..., :n, :]
        self.is_initialized = True

    @classmethod
    def holding(cls, keys: torch.Tensor, values: torch.Tensor, reserve: int = 0) -> Any:
        """A layer holding a copy of ``keys``/``values`` with ``reserve`` positions free."""
        n = keys.shape[-2]
        kbuf = keys.new_empty((*keys.shape[:-2], n + max(reserve, 1), keys.shape[-1]))
        vbuf = values.new_empty((*values.shape[:-2], n + max(reserve, 1), values.shape[-1]))
        kbuf[..., :n, :] = keys
        vbuf[..., :n, :] = values
        return cls(kbuf, vbuf, n)

    @property
    def buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._kbuf, self._vbuf

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


class LeanCache:
    """The lean forward's cache: per-layer :class:`LeanLayer` objects (no transformers)."""

    def __init__(self, layers: list[Any] | None = None) -> None:
        self.layers: list[Any] = layers if layers is not None else []


_reserved: type | None = None


def reserved_layer() -> type | None:
    """:class:`LeanLayer` as a transformers cache layer (transformers 5.x), made on first use
    so that importing this module does not import transformers."""
    global _reserved
    if _reserved is None:
        try:
            from transformers.cache_utils import DynamicLayer
        except ImportError:  # pragma: no cover - transformers 4.x
            return None
        _reserved = type("ReservedLayer", (LeanLayer, DynamicLayer), {"__doc__": LeanLayer.__doc__})
    return _reserved


Buffers = list[tuple[torch.Tensor, torch.Tensor]]


def buffers(parts: list[KV], capacity: int, batch: int = 1) -> Buffers:
    """Per-layer key and value buffers of ``capacity`` positions (and ``batch`` rows) holding
    ``parts`` one after another from position 0, each part broadcast to the batch: one copy."""
    parts = [p for p in parts if p and kv_len(p)]
    if not parts:
        return []
    out = []
    for i, (k0, v0) in enumerate(parts[0]):
        kbuf = k0.new_empty((batch, k0.shape[1], capacity, k0.shape[3]))
        vbuf = v0.new_empty((batch, v0.shape[1], capacity, v0.shape[3]))
        pos = 0
        for p in parts:
            k, v = p[i]
            n = k.shape[2]
            kbuf[:, :, pos : pos + n] = k
            vbuf[:, :, pos : pos + n] = v
            pos += n
        out.append((kbuf, vbuf))
    return out


def over(bufs: Buffers, n: int, lean: bool = False) -> Any:
    """A cache over ``bufs`` whose first ``n`` positions are filled: a :class:`LeanCache`
    (``lean``) or a transformers ``DynamicCache``."""
    if not bufs:
        return None
    if lean:
        return LeanCache([LeanLayer(k, v, n) for k, v in bufs])
    from transformers import DynamicCache

    cache = DynamicCache()
    layer = reserved_layer()
    if layer is not None and hasattr(cache, "layers"):
        cache.layers = [layer(k, v, n) for k, v in bufs]
        return cache
    for i, (k, v) in enumerate(bufs):  # pragma: no cover - transformers 4.x
        cache.update(k[:, :, :n], v[:, :, :n], i)
    return cache


def to_cache(kv: KV, reserve: int = 0, batch: int = 1, lean: bool = False) -> Any:
    """A cache holding a copy of ``kv`` (broadcast to ``batch`` rows), with room for
    ``reserve`` more positions."""
    n = kv_len(kv)
    return over(buffers([kv], n + max(reserve, 1), batch), n, lean)


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
    """Positions ``start:stop`` (of one batch row, if given) as new contiguous tensors: always
    copies (``.contiguous()`` would return a view of a shared buffer when the slice happens to
    be contiguous already, as with one KV head)."""
    rows = slice(None) if row is None else slice(row, row + 1)
    fmt = torch.contiguous_format
    return [(k[rows, :, start:stop].clone(memory_format=fmt),
             v[rows, :, start:stop].clone(memory_format=fmt)) for k, v in kv]
