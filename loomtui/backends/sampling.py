"""Sampler settings applied to a batch of logits: temperature, top-k, top-p, min-p, seeds."""

from __future__ import annotations

import torch

from loomtui.core.node import Sampler


def filtered_logprobs(logits: torch.Tensor, s: Sampler) -> torch.Tensor:
    """Log-probabilities ([batch, vocab]) of the sampling distribution ``s`` defines.

    Filters apply to the temperature-scaled distribution; removed tokens get ``-inf``.
    Temperature 0 is greedy (all mass on the argmax).
    """
    if s.temperature == 0:
        out = torch.full_like(logits, float("-inf"))
        out.scatter_(-1, logits.argmax(-1, keepdim=True), 0.0)
        return out
    lp = torch.log_softmax(logits.float() / s.temperature, dim=-1)
    if s.top_k and s.top_k < lp.shape[-1]:
        kth = torch.topk(lp, s.top_k, dim=-1).values[..., -1:]
        lp = lp.masked_fill(lp < kth, float("-inf"))
    if s.min_p > 0:
        threshold = lp.max(-1, keepdim=True).values + torch.log(torch.tensor(s.min_p))
        lp = lp.masked_fill(lp < threshold, float("-inf"))
    if s.top_p < 1.0:
        sorted_lp, order = torch.sort(lp, descending=True, dim=-1)
        probs = sorted_lp.exp()
        before = probs.cumsum(-1) - probs  # mass of strictly more probable tokens
        drop_sorted = before >= s.top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        lp = lp.masked_fill(drop, float("-inf"))
    return torch.log_softmax(lp, dim=-1)


def draw(logprobs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row, each row from its own seeded generator (so a rollout replays
    exactly whatever else is in the batch)."""
    probs = logprobs.exp()
    return torch.stack([
        torch.multinomial(probs[i], 1, generator=g)[0] for i, g in enumerate(generators)
    ])


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g
