"""Regularisers against forgetting and collapse, applied where the night teaches nothing new.

    kl = kl_to_base(logp, base_logp)            # mean KL(base || adapted) over positions
    pen = entropy_floor(logp, floor)            # mean max(0, floor - H(adapted)) over positions

Both take log-probabilities [P, V] at the regularised positions (see reverie.sleep.train: the
opening of each replayed answer and every position of general text), the base model's from a
forward pass with the adapter disabled.

- KL(base || adapted) = sum_v p_base (log p_base - log p_adapted): keeps the adapted model's
  predictions where nothing is being learned close to the base model's (a trust region, as in
  RLHF's KL penalty), which is what forgetting and style drift would move.
- Entropy floor: the penalty is how far the adapted model's token entropy falls below a floor,
  by default the base model's own entropy at the same position (a one-sided version of GEM's
  entropy regularisation, Li et al. 2024): fine-tuning on a few hundred texts sharpens
  distributions, and a model whose entropy falls answers every prompt the same way.
"""

from __future__ import annotations

import torch


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Per-position entropy (nats) of log-probabilities [P, V]."""
    return -(logp.exp() * logp).sum(-1)


def kl_to_base(logp: torch.Tensor, base_logp: torch.Tensor) -> torch.Tensor:
    return (base_logp.exp() * (base_logp - logp)).sum(-1).mean()


def entropy_floor(logp: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    return torch.relu(torch.as_tensor(floor, dtype=logp.dtype) - entropy(logp)).mean()
