"""Model metrics: perplexity of texts, mean next-token entropy, and KL(base || adapted).

    from reverie.models import load_model
    from reverie.meter.model_metrics import perplexities, next_token_entropy, kl_base_adapted, with_adapter
    loaded = load_model("default", models_dir)
    perplexities(loaded, ["Paris is the capital of France."])     # array([...])
    next_token_entropy(loaded, prompts=["Tell me a joke"])         # nats
    adapted = with_adapter(loaded, "adapters/night-3")             # PEFT LoRA directory
    kl_base_adapted(adapted, prompts=["Tell me a joke"])           # nats, 0 for an untrained LoRA
    answer_log_probs(loaded, ["Tell me a joke"], ["Why not?"], ended=[True])  # (log p, tokens scored)

Inputs are of two kinds, scored at different positions:
- texts: raw text, tokenised as is (with the tokenizer's own special tokens); every position that
  predicts a next token of the text is scored;
- prompts: one user message each, formatted with the chat template and the assistant turn opened
  (as `reverie probe` asks them); only the last position is scored, i.e. the distribution of the
  first token of the answer, which is where the spread of possible answers opens;
- answers (`answer_log_probs`): a prompt formatted as above followed by an answer; only the
  answer's tokens are scored.

Batches are right-padded with an attention mask: real tokens come first and keep positions 0..L-1,
so padding changes no score (tested against one-at-a-time). Sequences are sorted by length and
batched by a token budget, because the logits of a 49k-token vocabulary are the memory peak.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from reverie.errors import ReverieError

BATCH_TOKENS = 1024  # tokens per forward pass: logits are 4 x V bytes per token (200 MB at 49k)


def with_adapter(loaded, path: Path | str):
    """A `LoadedModel` whose model is `loaded.model` with the PEFT LoRA adapter at `path`.

    PEFT injects the LoRA layers into the base model in place; `model.disable_adapter()` (a
    context manager) gives the base model back."""
    path = Path(path).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ReverieError(f"{path} is not a LoRA adapter: expected a directory with adapter_config.json")
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(loaded.model, path)
    except Exception as exc:  # peft raises many types for an adapter of another model
        raise ReverieError(
            f"the adapter {path} does not fit the model {loaded.name}: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    return replace(loaded, model=model)


def text_nll(loaded, texts: Sequence[str], max_tokens: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the summed negative log-likelihood (nats) of its tokens after the first, given
    the tokens before them, and how many tokens were scored (texts are cut at `max_tokens`)."""
    seqs = _encode_texts(loaded.tokenizer, texts, max_tokens)
    return _sequence_nll(loaded, seqs, [1] * len(seqs))


def answer_log_probs(
    loaded, prompts: Sequence[str], answers: Sequence[str], ended: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Per (prompt, answer): the summed log-probability (nats) of the answer as the assistant turn
    after its chat-formatted prompt, and how many tokens were scored. An answer that `ended` by
    itself (not at a token limit) also scores the end-of-sequence token that closed it."""
    tok = loaded.tokenizer
    heads = _encode_prompts(tok, prompts)
    tails = tok(list(answers), add_special_tokens=False)["input_ids"] if answers else []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    seqs = [h + t + (eos if e else []) for h, t, e in zip(heads, tails, ended, strict=True)]
    nll, counts = _sequence_nll(loaded, seqs, [len(h) for h in heads])
    return -nll, counts


def _sequence_nll(loaded, seqs: list[list[int]], starts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence: the summed NLL (nats) of its tokens from index `starts[i]` on, and their count."""
    nll = np.zeros(len(seqs))
    counts = np.zeros(len(seqs), dtype=np.int64)
    for batch in _batches(seqs, min_len=2):
        owners, logp, targets = _batch_log_probs(loaded.model, loaded.tokenizer, [seqs[i] for i in batch], False)
        # Owners come row by row, so a target's index in its sequence counts up from 1 within a row.
        target_at = np.arange(len(owners)) - np.searchsorted(owners, owners) + 1
        index = np.asarray(batch)[owners]
        keep = target_at >= np.asarray(starts)[index]
        picked = -logp.gather(1, targets[:, None])[:, 0].cpu().double().numpy()
        np.add.at(nll, index[keep], picked[keep])
        np.add.at(counts, index[keep], 1)
    return nll, counts


def perplexities(loaded, texts: Sequence[str], max_tokens: int = 512) -> np.ndarray:
    """Perplexity of each text under the model: exp(mean NLL per scored token) (Jelinek et al.
    1977). A text the model finds natural scores low; nonsense and broken text score high. NaN
    for a text with fewer than two tokens (nothing to score)."""
    nll, counts = text_nll(loaded, texts, max_tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, np.exp(nll / counts), np.nan)


def next_token_entropy(
    loaded, prompts: Sequence[str] = (), texts: Sequence[str] = (), max_tokens: int = 512
) -> float:
    """Mean next-token entropy H(p) = -sum_v p(v) log p(v) (nats) of the model's predictive
    distribution over the scored positions of the prompts and texts (see the module docstring),
    each position weighted equally. In [0, log V]: 0 for a model that is certain, log V for a
    uniform one. A collapsing model's entropy falls."""
    total, count = 0.0, 0
    for model_logp in _scored_positions(loaded, prompts, texts, max_tokens, adapted_only=True):
        logp = model_logp[0]
        total += float(-(logp.exp() * logp).sum())
        count += logp.shape[0]
    _need_positions(count)
    return total / count


def kl_base_adapted(
    loaded, prompts: Sequence[str] = (), texts: Sequence[str] = (), max_tokens: int = 512
) -> float:
    """Mean KL(base || adapted) = sum_v p_base(v) (log p_base(v) - log p_adapted(v)) (nats) over
    the scored positions of the prompts and texts; `loaded.model` must carry an adapter
    (`with_adapter`). 0 when the adapter changes nothing (a LoRA whose B matrices are still zero);
    it measures how far a night's sleep moved the model's predictions."""
    if not hasattr(loaded.model, "disable_adapter"):
        raise ReverieError("KL(base || adapted) needs a model with an adapter (see with_adapter)")
    total, count = 0.0, 0
    for adapted, base in _scored_positions(loaded, prompts, texts, max_tokens, adapted_only=False):
        total += float((base.exp() * (base - adapted)).sum())
        count += base.shape[0]
    _need_positions(count)
    return total / count


def _need_positions(count: int) -> None:
    if count == 0:
        raise ReverieError("no position to score: give at least one prompt or a text of two tokens or more")


def _scored_positions(loaded, prompts, texts, max_tokens, adapted_only: bool) -> Iterator[tuple]:
    """Per batch: (log-probs of the model as loaded,) or (that, log-probs with the adapter disabled)."""
    tok = loaded.tokenizer
    for seqs, last_only in ((_encode_prompts(tok, prompts), True), (_encode_texts(tok, texts, max_tokens), False)):
        for batch in _batches(seqs, min_len=1 if last_only else 2):
            chosen = [seqs[i] for i in batch]
            _, logp, _ = _batch_log_probs(loaded.model, tok, chosen, last_only)
            if adapted_only:
                yield (logp,)
                continue
            with loaded.model.disable_adapter():
                _, base, _ = _batch_log_probs(loaded.model, tok, chosen, last_only)
            yield logp, base


def _encode_texts(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]


def _encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    formatted = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    if not formatted:
        return []
    # The template already wrote the special tokens.
    return tokenizer(formatted, add_special_tokens=False)["input_ids"]


def _batches(seqs: list[list[int]], min_len: int, budget: int = BATCH_TOKENS) -> Iterator[list[int]]:
    """Indices of the `seqs` with at least `min_len` tokens, in batches of similar length, each
    padded to at most `budget` tokens."""
    order = sorted((i for i in range(len(seqs)) if len(seqs[i]) >= min_len), key=lambda i: -len(seqs[i]))
    start = 0
    while start < len(order):
        size = max(1, budget // max(1, len(seqs[order[start]])))
        yield order[start : start + size]
        start += size


def _batch_log_probs(model, tokenizer, seqs: list[list[int]], last_only: bool):
    """Right-padded forward pass. Returns (owner row of each scored position, log-probs [P, V]
    float32, target token of each position or None for `last_only`)."""
    import torch

    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long, device="cpu")
    mask = torch.zeros((len(seqs), width), dtype=torch.long, device="cpu")
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long, device="cpu")
        mask[row, : len(s)] = 1
    lengths = mask.sum(1)
    device = next(model.parameters()).device  # built on the CPU, moved once (the model may be on a GPU)
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        if last_only:
            rows = logits[torch.arange(len(seqs), device=device), lengths.to(device) - 1]
            return np.arange(len(seqs)), torch.log_softmax(rows.float(), -1), None
        scored = mask[:, 1:].bool()  # position t predicts token t + 1
        rows = logits[:, :-1][scored.to(device)]
        owners = torch.arange(len(seqs), device="cpu")[:, None].expand_as(scored)[scored].numpy()
        return owners, torch.log_softmax(rows.float(), -1), ids[:, 1:][scored].to(device)

