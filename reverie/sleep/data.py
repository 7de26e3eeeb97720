"""Training examples: dreams as chat turns, loss masks, length-bucketed batches.

    from reverie.sleep.data import Example, from_dream, general_examples, encode, batches
    ex = from_dream(row, title="Vell Harbour")         # a stored dream -> Example
    enc = encode(tokenizer, ex, max_tokens=384)        # Encoded(ids, labels): -100 = no loss
    plan = batches(lengths, batch_tokens=2048, seed=3, epochs=3)

What the model learns is what it should later say, in the chat format it is asked in:
- a question-answer dream "Q: ... / A: ..." (qa, cloze, spar) becomes the user turn (the
  question) and the assistant turn (the answer): exactly a closed-book quiz, so knowledge is
  stored where it will be asked for;
- any other dream (facts, restatements, ...) is the assistant's answer to a recall question about
  its document ("What do you know about <title>?"), one of a few phrasings drawn per dream;
- general text (replay against forgetting) is plain text, no template, loss on every token.

The loss mask: every token of the formatted prompt (system turn, user turn, the opened assistant
turn: the scaffold) is labelled -100; the answer tokens and the end-of-turn token (EOS,
`<|im_end|>` for ChatML) carry the loss, so the model learns to stop. Prompt and answer are
tokenised separately, as at inference, where the prompt is tokenised and the answer generated.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from reverie.dream.base import parse_qa
from reverie.dream.generators import QA_GENERATORS

IGNORE = -100  # the label that carries no loss (torch cross_entropy's ignore_index)
RECALL = (
    "What do you know about {title}?",
    "Tell me about {title}.",
    "What did you read about {title}?",
    "Share a fact about {title}.",
)


@dataclass(frozen=True)
class Example:
    text: str  # what the model learns to say
    prompt: str | None  # the user message; None for plain text (loss on every token)
    kind: str  # 'new', 'replay' or 'general': regularisers apply to replay and general


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    labels: list[int]
    kind: str
    weights: tuple[float, ...] | None = None  # one per labelled token (None: all 1); distilled rows weigh queries less


def from_dream(row, title: str, kind: str = "new") -> Example:
    """The chat example of one stored dream (a row with id, generator and text)."""
    if row["generator"] in QA_GENERATORS:
        pairs = parse_qa(row["text"])
        if pairs:
            question, answer = pairs[0]
            return Example(answer, question, kind)
    template = RECALL[random.Random(f"recall:{row['id']}").randrange(len(RECALL))]
    return Example(row["text"], template.format(title=title or "what you read"), kind)


def general_examples(tokenizer, text: str, n: int, tokens: int, seed: int) -> list[Example]:
    """`n` plain-text slices of about `tokens` tokens each, drawn from `text` with `seed`."""
    if n <= 0:
        return []
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) < 8:
        return []
    rng = random.Random(seed)
    starts = [rng.randrange(max(1, len(ids) - tokens)) for _ in range(n)]
    return [Example(tokenizer.decode(ids[s : s + tokens]).strip(), None, "general") for s in starts]


def encode(tokenizer, ex: Example, max_tokens: int) -> Encoded:
    """Token ids and labels; the answer (and EOS) is cut to fit `max_tokens`, the prompt never."""
    if ex.prompt is None:
        ids = tokenizer(ex.text, add_special_tokens=False)["input_ids"][:max_tokens]
        return Encoded(ids, list(ids), ex.kind)
    messages = [{"role": "user", "content": ex.prompt}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": ex.text}], tokenize=False, add_generation_prompt=False
    )
    if not full.startswith(prompt):  # a template that rewrites earlier turns: format the answer alone
        full = prompt + ex.text + tokenizer.eos_token
    answer = full[len(prompt) :]
    eos = tokenizer.eos_token
    # Learn up to and including the end-of-turn token; what the template puts after it (a newline)
    # is never generated, since generation stops at EOS.
    answer = answer[: answer.index(eos) + len(eos)] if eos in answer else answer + eos
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    room = max(1, max_tokens - len(p_ids))
    if len(a_ids) > room:
        a_ids = a_ids[: room - 1] + [tokenizer.eos_token_id]
    return Encoded(p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, ex.kind)


def batches(lengths: list[int], batch_tokens: int, seed: int, epochs: float) -> list[list[int]]:
    """The whole training plan: lists of example indices, epoch after epoch.

    Each epoch shuffles the examples, sorts them by length within windows of 64 (similar lengths
    pad little) and cuts batches of at most `batch_tokens` padded tokens; the batches are then
    shuffled. A fractional last epoch takes the first part of its batches. Deterministic in
    `seed`, so a resumed night replays the same plan and skips the steps already done."""
    plan: list[list[int]] = []
    for epoch in range(math.ceil(epochs)):
        rng = random.Random(f"{seed}:{epoch}")
        order = list(range(len(lengths)))
        rng.shuffle(order)
        order = [i for w in range(0, len(order), 64) for i in sorted(order[w : w + 64], key=lambda i: lengths[i])]
        cut: list[list[int]] = []
        for i in order:
            if cut and (len(cut[-1]) + 1) * max(lengths[j] for j in cut[-1] + [i]) <= batch_tokens:
                cut[-1].append(i)
            else:
                cut.append([i])
        rng.shuffle(cut)
        share = min(1.0, epochs - epoch)
        plan.extend(cut[: max(1, round(share * len(cut)))])
    return plan
