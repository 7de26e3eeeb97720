"""The training loop: LoRA on encoded examples, by hand (small, and the heart of a night).

    from reverie.sleep.train import train
    result = train(peft_model, tokenizer, encoded, settings.sleep, seed=7, checkpoint=path, progress=cb)
    result.tokens_per_second, result.final_loss

One step = `grad_accum` micro-batches of at most `batch_tokens` padded tokens (right padding,
attention mask), AdamW on the LoRA weights, gradient norm clipped at 1, warm-up then cosine or
linear decay. The loss of a micro-batch is the mean cross-entropy over its answer tokens (labels
!= -100) plus, when enabled, `kl_weight` x KL(base || adapted) and `entropy_weight` x the entropy
floor penalty on the regularised positions: in replayed examples the position that predicts
the first answer token (where the base model's spread of answers opens), and every position of
general text (reverie.sleep.regularisers). New examples are not regularised, so a first night
with neither general text nor self-written replay trains on cross-entropy alone; the base
forward pass the regularisers need (no grad) runs only on the rows of a batch that hold a
regularised position. Logits are computed only at the positions that are scored: with a
49k-token vocabulary the output layer is a large share of the cost, and most tokens of a short
example are prompt.

bfloat16 autocast is used when `sleep.autocast` says so ('auto': only on CPUs with native bf16,
AVX512-BF16 or AMX; emulated bf16 is slower than float32). A checkpoint is written every
`checkpoint_every` steps (reverie.sleep.checkpoint); a call with the same examples, settings and
seed continues from it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reverie.sleep.checkpoint import load_checkpoint, save_checkpoint
from reverie.sleep.data import IGNORE, Encoded, batches
from reverie.sleep.regularisers import entropy, entropy_floor, kl_to_base

Progress = Callable[[dict], None]  # {"step", "steps", "loss", "parts" (ce/kl/entropy_pen), "tokens_per_second"}


@dataclass
class TrainResult:
    steps: int
    start_step: int  # > 0 when resumed from a checkpoint
    tokens: int  # real (unpadded) tokens processed by this call
    seconds: float
    final_loss: float  # mean loss over the last 10 steps
    autocast: bool
    history: list[float] = field(default_factory=list)  # loss per step (this call's steps)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_autocast(mode: str) -> bool:
    return mode == "bfloat16" or (mode == "auto" and native_bf16())


def schedule(steps: int, warmup: float, kind: str) -> Callable[[int], float]:
    """Learning-rate multiplier per step: linear warm-up, then cosine/linear decay to 10%, or constant."""
    warm = max(1, round(warmup * steps)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        t = (step - warm) / max(1, steps - warm)
        decay = 0.5 * (1 + math.cos(math.pi * t)) if kind == "cosine" else 1 - t
        return 0.1 + 0.9 * decay

    return factor


def collate(rows: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    general = torch.zeros(len(rows), dtype=torch.bool)
    replay = torch.zeros(len(rows), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r.ids)] = torch.tensor(r.ids)
        labels[i, : len(r.labels)] = torch.tensor(r.labels)
        mask[i, : len(r.ids)] = 1
        general[i] = r.kind == "general"
        replay[i] = r.kind == "replay"
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "general": general, "replay": replay}


def _positions(batch: dict[str, torch.Tensor], regularise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks over [B, L-1] predicting positions: scored by the loss, and regularised."""
    target = batch["labels"][:, 1:]
    real = batch["attention_mask"][:, 1:].bool()
    learn = target != IGNORE
    if not regularise:
        return learn, torch.zeros_like(learn)
    general = batch["general"][:, None]
    replay = batch["replay"][:, None]
    # In a replayed example, the position that predicts the first answer token: where the spread
    # of possible answers opens (the probe measures entropy there too); one per row keeps the cost
    # small. Never in a new example: pulling its answer's first token towards the base model
    # would fight the very thing the night teaches.
    opening = learn & ~torch.cat([torch.zeros_like(learn[:, :1]), learn[:, :-1]], 1) & replay
    first = opening & (opening.cumsum(1) == 1)
    return learn, first | (real & general)


def _log_probs(model, batch, where: torch.Tensor) -> torch.Tensor:
    """Log-probabilities [P, V] (float32) at the positions `where` [B, L-1] (position t predicts t+1)."""
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True,
        logits_to_keep=1, use_cache=False,
    )
    hidden = out.hidden_states[-1][:, :-1][where]
    logits = model.get_output_embeddings()(hidden)
    return torch.log_softmax(logits.float(), -1)


def micro_loss(model, batch, cfg) -> tuple[torch.Tensor, dict[str, float]]:
    regularise = cfg.kl_weight > 0 or cfg.entropy_weight > 0
    learn, reg = _positions(batch, regularise)
    regularise = regularise and bool(reg.any())
    logp = _log_probs(model, batch, learn | reg)
    # Row order of logp follows the flattened mask, so sub-selections are masks over its rows.
    flat_learn, flat_reg = learn[learn | reg], reg[learn | reg]
    targets = batch["labels"][:, 1:][learn]
    loss = torch.nn.functional.nll_loss(logp[flat_learn], targets) if targets.numel() else logp.sum() * 0
    parts = {"ce": float(loss.detach())}
    if regularise:
        # The base model's pass runs only on the rows that hold a regularised position: in a
        # batch that mixes new examples with replay, the others would be computed for nothing.
        rows = reg.any(1)
        sub = {k: v[rows] for k, v in batch.items()}
        with torch.no_grad(), model.disable_adapter():
            base = _log_probs(model, sub, reg[rows])
        adapted = logp[flat_reg]
        if cfg.kl_weight > 0:
            kl = kl_to_base(adapted, base)
            loss = loss + cfg.kl_weight * kl
            parts["kl"] = float(kl.detach())
        if cfg.entropy_weight > 0:
            floor = entropy(base) if cfg.entropy_floor is None else cfg.entropy_floor
            pen = entropy_floor(adapted, floor)
            loss = loss + cfg.entropy_weight * pen
            parts["entropy_pen"] = float(pen.detach())
    return loss, parts


def train(
    model,
    tokenizer,
    encoded: list[Encoded],
    cfg,
    seed: int,
    checkpoint: Path,
    progress: Progress | None = None,
) -> TrainResult:
    """Train the model's active (trainable) adapter on `encoded`; see the module docstring."""
    plan = batches([len(e.ids) for e in encoded], cfg.batch_tokens, seed, cfg.epochs)
    steps = math.ceil(len(plan) / cfg.grad_accum)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(steps, cfg.warmup, cfg.schedule))
    torch.manual_seed(seed)
    start, _ = load_checkpoint(checkpoint, model, optimizer, scheduler)
    bf16 = use_autocast(cfg.autocast)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    history: list[float] = []
    tokens, t0 = 0, time.perf_counter()
    try:
        for step in range(start, steps):
            micro = plan[step * cfg.grad_accum : (step + 1) * cfg.grad_accum]
            step_loss = 0.0
            for idx in micro:
                batch = collate([encoded[i] for i in idx], pad)
                ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
                with ctx:
                    loss, parts = micro_loss(model, batch, cfg)
                (loss / len(micro)).backward()
                step_loss += float(loss.detach()) / len(micro)
                tokens += int(batch["attention_mask"].sum())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            history.append(step_loss)
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                save_checkpoint(checkpoint, model, optimizer, scheduler, step + 1, {})
            if progress:
                seconds = time.perf_counter() - t0
                progress({"step": step + 1, "steps": steps, "loss": step_loss, "parts": parts,
                          "tokens_per_second": tokens / seconds if seconds else 0.0})
    finally:
        model.eval()
    tail = history[-10:]
    return TrainResult(
        steps=steps, start_step=start, tokens=tokens, seconds=time.perf_counter() - t0,
        final_loss=sum(tail) / len(tail) if tail else float("nan"), autocast=bf16, history=history,
    )
