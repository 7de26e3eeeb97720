"""Fused matmul epilogues for a BERT encoder on the CPU: the embedding pass's speed-up.

    fuse_bert_for_cpu(model)   # in place; False (and nothing changed) where it does not apply

Each BERT layer follows its matmuls with cheap elementwise work that costs full memory passes:
`aten::addmm` copies the bias into the output before the GEMM, GELU reads and writes the
1536-wide intermediate, the residual add reads and writes again. oneDNN does all three inside the
GEMM's epilogue (`torch.ops.mkldnn._linear_pointwise`, the kernel torch inductor emits for this
fusion), which takes about a quarter off all-MiniLM-L6-v2's forward pass on the 2-core machine
(BENCHMARKS.md). The arithmetic is unchanged: float32, exact (erf) GELU, the same LayerNorm; the
tests compare against the unfused model. The rest of the forward (embeddings, attention, masks)
stays transformers' own.
"""

from __future__ import annotations

import torch
from torch import nn


def _available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):  # a build without the mkldnn op namespace
        return False


class FusedLinear(nn.Module):
    """y = x W^T + b, bias added in the GEMM epilogue (no bias copy)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


class FusedIntermediate(nn.Module):
    """BertIntermediate: GELU(x W^T + b) in one oneDNN call."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.dense = block.dense

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(hidden_states, self.dense.weight, self.dense.bias, "gelu", [], "none")


class FusedOutput(nn.Module):
    """BertSelfOutput / BertOutput in eval mode: LayerNorm(x W^T + b + residual), the add fused."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.dense, self.LayerNorm = block.dense, block.LayerNorm

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        fused = torch.ops.mkldnn._linear_pointwise.binary(
            hidden_states, input_tensor, self.dense.weight, self.dense.bias, "add"
        )
        return self.LayerNorm(fused)


def fuse_bert_for_cpu(model: nn.Module) -> bool:
    """Swap the encoder layers' linear blocks of a transformers BertModel (eval mode, float32,
    exact GELU) for the fused ones above. Returns whether it did."""
    config = model.config
    suitable = (
        _available()
        and config.model_type == "bert"
        and config.hidden_act == "gelu"
        and not model.training
        and next(model.parameters()).dtype == torch.float32
    )
    if not suitable:
        return False
    for layer in model.encoder.layer:
        attention = layer.attention.self
        for name in ("query", "key", "value"):
            setattr(attention, name, FusedLinear(getattr(attention, name)))
        layer.attention.output = FusedOutput(layer.attention.output)
        layer.intermediate = FusedIntermediate(layer.intermediate)
        layer.output = FusedOutput(layer.output)
    return True
