"""Regularisers against forgetting and collapse, applied where the night teaches nothing new.

    kl = kl_to_base(logp, base_logp)            # mean KL(base || adapted) over positions
    kl = kl_top(logp, top, ids, rest).mean()    # the same, the base kept as its top-k tokens
    pen = entropy_floor(logp, floor)            # mean max(0, floor - H(adapted)) over positions

Both take log-probabilities [P, V] at the regularised positions (see reverie.sleep.train: the
opening of each replayed answer and every position of general text), the base model's from a
forward pass with the adapter disabled.

- KL(base || adapted) = sum_v p_base (log p_base - log p_adapted): keeps the adapted model's
  predictions where nothing is being learned close to the base model's (a trust region, as in
  RLHF's KL penalty), which is what forgetting and style drift would move.
  The base model's distribution does not change during a night, so it is computed once, before
  training, and kept as its top-k tokens and their rest (`kl_top`, `sleep.kl_top_k`):
  a base pass in every epoch would add a forward pass to every general example's two (forward
  and backward).
- Entropy floor: the penalty is how far the adapted model's token entropy falls below a floor,
  by default the base model's own entropy at the same position (a one-sided version of GEM's
  entropy regularisation, Li et al. 2024): fine-tuning on a few hundred texts sharpens
  distributions, and a model whose entropy falls answers every prompt the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Per-position entropy (nats) of log-probabilities [P, V]."""
    return -(logp.exp() * logp).sum(-1)


def kl_to_base(logp: torch.Tensor, base_logp: torch.Tensor) -> torch.Tensor:
    return (base_logp.exp() * (base_logp - logp)).sum(-1).mean()


def entropy_floor(logp: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    return torch.relu(torch.as_tensor(floor, dtype=logp.dtype, device=logp.device) - entropy(logp)).mean()


MASKED = -1e9  # a log-probability that counts for nothing, yet keeps logsumexp's gradient finite


def rest_log_mass(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log of the probability outside the tokens `ids` [P, k], per position of `logp` [P, V]."""
    return logp.scatter(1, ids, MASKED).logsumexp(-1)


def kl_top(logp: torch.Tensor, top_logp: torch.Tensor, top_ids: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Per position [P], KL(target || logp) with the target kept as its top-k tokens (`top_logp`,
    `top_ids` [P, k]) and the rest of its mass as one bucket (`rest` [P], log): the exact KL
    between the two distributions coarsened to k + 1 outcomes, a lower bound of the full KL that
    equals it when k is the vocabulary and differs from it by the divergence inside the tail."""
    head = (top_logp.exp() * (top_logp - logp.gather(1, top_ids))).sum(-1)
    tail = rest.exp() * (rest - rest_log_mass(logp, top_ids))
    return head + tail


@dataclass
class Targets:
    """A fixed model's next-token distribution at one example's scored positions, as its top-k
    tokens: what the KL terms hold the student to (the base model's with `sleep.kl_top_k`, the
    teacher's in reverie.sleep.distill)."""

    logp: torch.Tensor  # [P, k] log-probabilities of the k likeliest tokens
    ids: torch.Tensor  # [P, k] those tokens (int32: half the memory of torch's int64 indices)
    rest: torch.Tensor  # [P] log of the probability of every other token
    entropy: torch.Tensor  # [P] entropy of the full distribution (the entropy floor's default)
