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
with neither general text nor self-written replay trains on cross-entropy alone.

Where the time goes, and what is not spent: a step is matrix products over its tokens (the
CPU's float32 limit, ~300 tokens/s for this model), so
- logits are computed only at the positions that are scored: with a 49k-token vocabulary the
  output layer is a large share of the cost, and most tokens of a short example are prompt;
- the prefix every row of a batch shares (the chat template's system turn: 22 of a cloze pair's
  ~52 tokens with the default model) is computed once per batch and attended to through its
  key/value cache, with the same loss and gradients (`shared_prefix`);
- the base model's distributions, which the regularisers need and which do not change during
  the night, are computed once before the first step and kept as their top `kl_top_k` tokens
  (`base_targets`), not by a base pass in every batch of every epoch (`kl_top_k: 0` does that,
  exactly, on the rows that hold a regularised position).

bfloat16 autocast is used when `sleep.autocast` says so ('auto': on GPUs that compute bf16, and
on CPUs with native bf16, AVX512-BF16 or AMX; emulated bf16 is slower than float32). A checkpoint
is written every `checkpoint_every` steps (reverie.sleep.checkpoint); a call with the same
examples, settings and seed continues from it. Batches are built on the host and moved to the
model's device once each; `sleep.gradient_checkpointing` recomputes activations in the backward
pass (the shared-prefix pass is then off: transformers drops the cache it needs).

Many devices (`torchrun --nproc-per-node N -m reverie sleep`, or `accelerate launch -m reverie
sleep`): rank 0 runs the night; when it reaches `train`, it sends the job (examples, settings,
teacher targets, the adapter's starting weights and any checkpoint) to the other ranks, which wait
for it in `serve_training`. Each optimizer step's `grad_accum` micro-batches are dealt out across
the ranks (micro-batch j to rank j mod N); every rank backpropagates its share, scaled by the
step's micro-batch count, and the LoRA gradients are summed across ranks in one all-reduce
(DistributedDataParallel's averaging, done by hand: the loss runs the model several times per
step, a shared-prefix pass and a base pass with the adapter disabled, which DDP's reducer does
not allow). The sum is the single-process step's gradient, so the adapter is the same to float
tolerance (with `dropout: 0`); `grad_accum` must be a multiple of N, so that every rank trains. Only
rank 0 writes checkpoints, adapters and the store.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reverie.errors import ReverieError
from reverie.models.loading import native_bf16
from reverie.progress import Event, Progress
from reverie.sleep.checkpoint import load_checkpoint, save_checkpoint
from reverie.sleep.data import IGNORE, Encoded, batches
from reverie.sleep.regularisers import Targets, entropy, entropy_floor, kl_to_base, kl_top, rest_log_mass

# transformers 5 renames forward's `past_key_values` to `cache` and warns at every step; older
# releases (>= 4.45 is supported) know only the old name, so it stays, without the warning.
warnings.filterwarnings("ignore", message="`past_key_values` is deprecated", category=FutureWarning)

MIN_PREFIX = 8  # shared tokens worth a separate pass (reverie.sleep.train.shared_prefix)
# (first, with cached base targets: {"stage", "done", "total"} while they are computed)


@dataclass
class TrainResult:
    steps: int
    start_step: int  # > 0 when resumed from a checkpoint
    tokens: int  # real (unpadded) tokens of the examples this call trained on, a shared prefix in every row
    seconds: float  # wall time of this call, the base targets' pass included
    final_loss: float  # mean loss over the last 10 steps
    autocast: bool
    history: list[float] = field(default_factory=list)  # loss per step (this call's steps)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def use_autocast(mode: str, device=None) -> bool:
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return mode == "bfloat16" or (mode == "auto" and torch.cuda.is_bf16_supported())
    return mode == "bfloat16" or (mode == "auto" and device.type == "cpu" and native_bf16())


def _autocast(mode: str, device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_autocast(mode, device) else contextlib.nullcontext()


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return batch if device.type == "cpu" else {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def world() -> tuple[int, int]:
    """(rank, world size) of the process group a launcher started, or (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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


def collate(rows: list[Encoded], pad_id: int, taught: list[bool] | None = None) -> dict[str, torch.Tensor]:
    """Padded tensors of `rows`, on the host (`to_device` moves them once); `taught` marks the rows
    learned from teacher targets (distilled)."""
    cpu = torch.device("cpu")
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=cpu)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long, device=cpu)
    weights = torch.zeros((len(rows), width), device=cpu)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=cpu)
    for i, r in enumerate(rows):
        ids[i, : len(r.ids)] = torch.tensor(r.ids, device=cpu)
        labels[i, : len(r.labels)] = torch.tensor(r.labels, device=cpu)
        mask[i, : len(r.ids)] = 1
        weights[i][labels[i] != IGNORE] = torch.tensor(r.weights, device=cpu) if r.weights is not None else 1.0
    kinds = [r.kind for r in rows]
    return {"input_ids": ids, "labels": labels, "weights": weights, "attention_mask": mask,
            "general": torch.tensor([k == "general" for k in kinds], device=cpu),
            "replay": torch.tensor([k == "replay" for k in kinds], device=cpu),
            "taught": torch.tensor(taught if taught is not None else [False] * len(rows), device=cpu)}


def _positions(batch: dict[str, torch.Tensor], regularise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks over [B, L-1] predicting positions: scored by the loss, and regularised."""
    target = batch["labels"][:, 1:]
    learn = target != IGNORE
    if not regularise:
        return learn, torch.zeros_like(learn)
    general = batch["general"][:, None]
    replay = (batch["replay"] & ~batch["taught"])[:, None]  # a distilled row has its teacher's targets
    # In a replayed example, the position that predicts the first answer token: where the spread
    # of possible answers opens (the probe measures entropy there too); one per row keeps the cost
    # small. Never in a new example: pulling its answer's first token towards the base model
    # would fight the very thing the night teaches.
    opening = learn & ~torch.cat([torch.zeros_like(learn[:, :1]), learn[:, :-1]], 1) & replay
    first = opening & (opening.cumsum(1) == 1)
    return learn, first | (learn & general)


def shared_prefix(batch: dict[str, torch.Tensor], where: torch.Tensor) -> int:
    """Tokens that every row of `batch` starts with, up to its first position in `where`.

    The rows of a batch of chat examples share the template's system turn and the opening of the
    user turn: 22 of a cloze pair's ~52 tokens with the default model. 0 when fewer than
    MIN_PREFIX are shared (plain text, a mixed batch, a single row)."""
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    if ids.shape[0] < 2:
        return 0
    n = int((((ids == ids[:1]) & mask).all(0)).long().cumprod(0).sum())
    scored = where.any(0).nonzero()
    # Position t predicts token t+1 from the hidden state at t, which must come from the rows' own
    # pass: the prefix stops at the first scored position, and at least one token is left.
    n = min(n, int(scored[0]) if len(scored) else n, ids.shape[1] - 1)
    return n if n >= MIN_PREFIX else 0


def log_probs(model, batch, where: torch.Tensor, share_prefix: bool = True) -> torch.Tensor:
    """Log-probabilities [P, V] (float32) at the positions `where` [B, L-1] (position t predicts t+1).

    A prefix shared by every row is computed once, as a one-row pass whose key/value cache the
    rows then attend to: the loss and its gradients are those of the full rows (the cache keeps
    the graph, so the prefix's LoRA weights get their gradient from every row), at the cost of
    the rows' own tokens."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    n = shared_prefix(batch, where) if share_prefix else 0
    cache = None
    if n:
        cache = model(input_ids=ids[:1, :n], use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(ids.shape[0])
    out = model(
        input_ids=ids[:, n:], attention_mask=mask, past_key_values=cache, output_hidden_states=True,
        logits_to_keep=1, use_cache=cache is not None,
    )
    hidden = out.hidden_states[-1][:, :-1][where[:, n:]]
    logits = model.get_output_embeddings()(hidden)
    return torch.log_softmax(logits.float(), -1)


def base_targets(model, encoded: list[Encoded], cfg, pad_id: int, taught: list[bool],
                 progress: Progress | None = None, only: set[int] | None = None) -> list[Targets | None]:
    """The base model's top `cfg.kl_top_k` tokens at the regularised positions of every general
    example and every replayed one that is not distilled (None for the others), from one pass
    with the adapter disabled.

    The base model does not change during a night, so its distributions are computed once here
    instead of by a base pass in every micro-batch of every epoch. Deterministic: a resumed night
    computes the same. `only`: the examples this rank trains on (None: all)."""
    rows = [i for i, e in enumerate(encoded) if (e.kind == "general" or (e.kind == "replay" and not taught[i]))
            and (only is None or i in only)]
    device = model_device(model)
    out: list[Targets | None] = [None] * len(encoded)
    plan = batches([len(encoded[i].ids) for i in rows], cfg.batch_tokens, 0, 1)
    was_training = model.training
    model.eval()
    with torch.no_grad(), model.disable_adapter():
        for done, chunk in enumerate(plan, 1):
            idx = [rows[j] for j in chunk]
            batch = to_device(collate([encoded[i] for i in idx], pad_id), device)
            _, reg = _positions(batch, True)
            logp = log_probs(model, batch, reg)
            for i, part in zip(idx, logp.split(reg.sum(1).tolist()), strict=True):
                top, ids = part.topk(min(cfg.kl_top_k, part.shape[-1]), -1)
                out[i] = Targets(top, ids.int(), rest_log_mass(part, ids), entropy(part))
            if progress:
                progress(Event("base targets", done, len(plan)))
    model.train(was_training)
    return out


def _stack(targets: list[Targets], device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows' targets as one set of float32 tensors on `device` (the teacher's are kept in
    float16 on the host; each is converted before the cat, which bfloat16 autocast refuses to mix)."""
    def cat(field: str) -> torch.Tensor:
        return torch.cat([getattr(t, field).float() for t in targets]).to(device)

    return cat("logp"), torch.cat([t.ids for t in targets]).long().to(device), cat("rest"), cat("entropy")


def micro_loss(model, batch, cfg, targets: list[Targets | None] | None = None,
               teacher: list[Targets | None] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one micro-batch (see the module docstring). `targets`, one per row, are the
    base model's cached distributions (base_targets); without them the base model runs here.
    `teacher`, one per row, are the teacher's targets of the distilled rows (batch["taught"])."""
    regularise = cfg.kl_weight > 0 or cfg.entropy_weight > 0
    learn, reg = _positions(batch, regularise)
    union = learn | reg
    logp = log_probs(model, batch, union, not cfg.gradient_checkpointing)
    # Row order of logp follows the flattened mask, so sub-selections are masks over its rows.
    loss, parts = _learned(logp, batch, learn, union, teacher, cfg.answer_ce)
    if regularise and bool(reg.any()):
        loss = loss + _regularised(model, logp[reg[union]], batch, reg, cfg, targets, parts)
    return loss, parts


def _learned(logp, batch, learn, union, teacher, answer_ce: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on the labelled tokens of plain rows; KL(teacher || student), weighted per
    token, at the labelled positions of distilled rows, plus `answer_ce` x the cross-entropy of
    their answer tokens (weight 1: the teacher's answer holding the span, or the span itself)."""
    taught = batch["taught"][:, None]
    loss, parts = logp.sum() * 0, {}
    told = learn & ~taught
    if told.any():
        ce = torch.nn.functional.nll_loss(logp[told[union]], batch["labels"][:, 1:][told])
        loss, parts["ce"] = loss + ce, float(ce.detach())
    distilled = learn & taught
    if distilled.any():
        top, ids, rest, _ = _stack([t for t in teacher if t is not None], logp.device)
        weights = batch["weights"][:, 1:][distilled]
        kd = (kl_top(logp[distilled[union]], top, ids, rest) * weights).sum() / weights.sum()
        loss, parts["distill"] = loss + kd, float(kd.detach())
        answer = distilled & (batch["weights"][:, 1:] >= 1.0)
        if answer_ce > 0 and answer.any():
            ce = torch.nn.functional.nll_loss(logp[answer[union]], batch["labels"][:, 1:][answer])
            loss, parts["answer_ce"] = loss + answer_ce * ce, float(ce.detach())
    return loss, parts


def _regularised(model, adapted, batch, reg, cfg, targets, parts: dict) -> torch.Tensor:
    """The KL-to-base and entropy-floor terms at the regularised positions (`adapted`: their log-probs)."""
    if targets is not None:
        top, ids, rest, base_entropy = _stack([t for t, r in zip(targets, reg.any(1).tolist(), strict=True) if r],
                                              adapted.device)
        kl = kl_top(adapted, top, ids, rest).mean() if cfg.kl_weight > 0 else None
    else:
        # The base model's pass runs only on the rows that hold a regularised position: in a
        # batch that mixes new examples with replay, the others would be computed for nothing.
        rows = reg.any(1)
        sub = {k: v[rows] for k, v in batch.items()}
        with torch.no_grad(), model.disable_adapter():
            base = log_probs(model, sub, reg[rows], not cfg.gradient_checkpointing)
        base_entropy = entropy(base)
        kl = kl_to_base(adapted, base) if cfg.kl_weight > 0 else None
    loss = adapted.sum() * 0
    if kl is not None:
        loss, parts["kl"] = loss + cfg.kl_weight * kl, float(kl.detach())
    if cfg.entropy_weight > 0:
        floor = base_entropy if cfg.entropy_floor is None else cfg.entropy_floor
        pen = entropy_floor(adapted, floor)
        loss, parts["entropy_pen"] = loss + cfg.entropy_weight * pen, float(pen.detach())
    return loss


def train(
    model,
    tokenizer,
    encoded: list[Encoded],
    cfg,
    seed: int,
    checkpoint: Path,
    progress: Progress | None = None,
    teacher: list[Targets | None] | None = None,
) -> TrainResult:
    """Train the model's active (trainable) adapter on `encoded`; see the module docstring.
    `teacher`, one per example, holds the teacher's targets of the examples that are distilled
    (reverie.sleep.distill); the others are learned from their labels. Under a launcher, rank 0
    calls this and the other ranks train beside it (`serve_training`)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rank, size = world()
    if size > 1 and cfg.grad_accum % size:
        # Micro-batch j of a step goes to rank j mod N: fewer than N a step leaves ranks idle.
        raise ReverieError(f"sleep.grad_accum is {cfg.grad_accum}, not a multiple of the {size} ranks, so some would "
                           f"train nothing: set it to {size * max(1, cfg.grad_accum // size)} or more "
                           f"(REVERIE_SLEEP__GRAD_ACCUM); the night resumes where it stopped")
    if size > 1 and rank == 0:
        _send_job(model, encoded, cfg, seed, checkpoint, teacher, pad)
    return _train(model, pad, encoded, cfg, seed, checkpoint, progress, teacher)


def _train(model, pad: int, encoded, cfg, seed: int, checkpoint: Path, progress, teacher) -> TrainResult:
    rank, size = world()
    teacher = teacher or [None] * len(encoded)
    taught = [t is not None for t in teacher]
    plan = batches([len(e.ids) for e in encoded], cfg.batch_tokens, seed, cfg.epochs)
    steps = math.ceil(len(plan) / cfg.grad_accum)
    params, optimizer, scheduler = _optimizer(model, cfg, steps)
    torch.manual_seed(seed)
    start, _ = load_checkpoint(checkpoint, model, optimizer, scheduler)
    device = model_device(model)

    def share(step: int) -> tuple[list[list[int]], int]:
        """This rank's micro-batches of `step`, and how many the step has on all ranks."""
        chunk = plan[step * cfg.grad_accum : (step + 1) * cfg.grad_accum]
        return chunk[rank::size], len(chunk)

    t0 = time.perf_counter()  # the base model's pass is part of training's time
    cached = None
    if cfg.kl_top_k and (cfg.kl_weight > 0 or cfg.entropy_weight > 0) and start < steps:
        only = None if size == 1 else {i for step in range(start, steps) for idx in share(step)[0] for i in idx}
        cached = base_targets(model, encoded, cfg, pad, taught, progress if rank == 0 else None, only)

    def rows(idx: list[int]) -> tuple:
        batch = to_device(collate([encoded[i] for i in idx], pad, [taught[i] for i in idx]), device)
        return batch, cached and [cached[i] for i in idx], [teacher[i] for i in idx]

    history: list[float] = []
    tokens = 0
    with _training_mode(model, cfg.gradient_checkpointing):
        for step in range(start, steps):
            mine, total = share(step)
            micro = [rows(idx) for idx in mine]
            step_loss, parts = _step(model, micro, cfg, params, optimizer, scheduler, total, size)
            step_tokens = sum(int(b["attention_mask"].sum()) for b, _, _ in micro)
            tokens += _sum_ranks(step_tokens, device) if size > 1 else step_tokens
            history.append(step_loss)
            if rank == 0 and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                save_checkpoint(checkpoint, model, optimizer, scheduler, step + 1, {})
            if progress and rank == 0:
                progress(_train_event(step + 1, steps, step_loss, parts, tokens, time.perf_counter() - t0))
    tail = history[-10:]
    return TrainResult(
        steps=steps, start_step=start, tokens=tokens, seconds=time.perf_counter() - t0,
        final_loss=sum(tail) / len(tail) if tail else float("nan"), autocast=use_autocast(cfg.autocast, device),
        history=history,
    )


def _optimizer(model, cfg, steps: int) -> tuple[list, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable (LoRA) weights and the learning-rate schedule of `steps` steps."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return params, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(steps, cfg.warmup, cfg.schedule))


@contextlib.contextmanager
def _training_mode(model, checkpointing: bool):
    """The model in train mode (with gradient checkpointing if asked) for the block, in eval mode after."""
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    try:
        yield
    finally:
        if checkpointing:
            model.gradient_checkpointing_disable()
        model.eval()


def _train_event(step: int, steps: int, loss: float, parts: dict, tokens: int, seconds: float) -> Event:
    speed = tokens / seconds if seconds else 0.0
    return Event("train", step, steps, f"loss {loss:.3f}, {speed:.0f} tokens/s",
                 {"loss": loss, "parts": parts, "tokens_per_second": speed})


def _step(model, micro: list[tuple], cfg, params, optimizer, scheduler, total: int | None = None,
          size: int = 1) -> tuple[float, dict]:
    """One optimizer step over its micro-batches (batch, base targets, teacher targets); returns
    the step's mean loss and the last micro-batch's loss parts. With several ranks, `micro` is
    this rank's share of the step's `total` micro-batches; the gradients are summed across ranks."""
    total = total or len(micro)
    device = model_device(model)
    ctx = _autocast(cfg.autocast, device)
    step_loss, parts = 0.0, {}
    for batch, targets, teacher in micro:
        with ctx:
            loss, parts = micro_loss(model, batch, cfg, targets, teacher)
        (loss / total).backward()
        step_loss += float(loss.detach()) / total
    if size > 1:
        step_loss = _all_reduce_grads(params, step_loss, device)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss, parts


# -- many devices ----------------------------------------------------------------------------------
def _sum_ranks(value: float, device) -> float:
    import torch.distributed as dist

    t = torch.tensor([float(value)], dtype=torch.float64 if device.type != "mps" else torch.float32, device=device)
    dist.all_reduce(t)
    return t.item() if isinstance(value, float) else int(t.item())


def _all_reduce_grads(params, step_loss: float, device) -> float:
    """Sum the LoRA gradients (and the step's loss) across ranks, in one flat buffer."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads] + [torch.tensor([step_loss], device=device)])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
    return float(flat[-1])


def _object_group():
    """A gloo group for pickled objects (NCCL moves tensors only)."""
    import torch.distributed as dist

    global _OBJECTS
    if _OBJECTS is None:
        _OBJECTS = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return _OBJECTS


_OBJECTS = None


def _send_job(model, encoded, cfg, seed, checkpoint: Path, teacher, pad: int) -> None:
    import torch.distributed as dist

    name = model.active_adapter
    config = model.peft_config[name].to_dict()
    state = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    job = {"adapter": name, "lora": config, "state": state, "encoded": encoded, "cfg": cfg, "seed": seed,
           "teacher": teacher, "pad": pad, "checkpoint": checkpoint.read_bytes() if checkpoint.is_file() else None}
    dist.broadcast_object_list([job], src=0, group=_object_group())


def finish_training() -> None:
    """Rank 0, once its night is over: tell the waiting ranks there is nothing more to train."""
    import torch.distributed as dist

    rank, size = world()
    if size > 1 and rank == 0:
        dist.broadcast_object_list([None], src=0, group=_object_group())


def serve_training(load_base) -> int:
    """Ranks other than 0: train beside rank 0 each time it sends a job, until it says it is done.
    `load_base()` gives a fresh LoadedModel of the base on this rank's device. Returns the jobs done."""
    import tempfile

    import torch.distributed as dist
    from peft import LoraConfig, get_peft_model

    done = 0
    while True:
        box = [None]
        dist.broadcast_object_list(box, src=0, group=_object_group())
        job = box[0]
        if job is None:
            return done
        loaded = load_base()
        lora = job["lora"]
        lora.pop("peft_type", None)
        model = get_peft_model(loaded.model, LoraConfig(**{k: v for k, v in lora.items()
                                                             if k in LoraConfig.__dataclass_fields__}),
                               adapter_name=job["adapter"])
        params = dict(model.named_parameters())
        missing = set(job["state"]) ^ {n for n, p in params.items() if p.requires_grad}
        if missing:
            raise RuntimeError(f"rank {world()[0]}: the adapter does not match rank 0's: {sorted(missing)[:3]}")
        with torch.no_grad():
            for n, t in job["state"].items():
                params[n].copy_(t)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "checkpoint.pt"
            if job["checkpoint"] is not None:
                path.write_bytes(job["checkpoint"])
            _train(model, job["pad"], job["encoded"], job["cfg"], job["seed"], path, None, job["teacher"])
        done += 1
