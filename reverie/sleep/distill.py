"""Context distillation: the model with the passage in front of it teaches the model without it.

    from reverie.sleep import distill
    qs = distill.queries(rows, contexts, chunk_of)               # the night's dreams as queries
    answers = distill.teacher_answers(backend, qs, contexts)     # the teacher's own answers
    kept, drops = distill.verify(qs, answers)                    # (query, target, is-span), contradicted facts
    pairs = [distill.encode_pair(tok, q.prompt, contexts[q.context].lead(q.prompt), target, ...) for q, target, _ in kept]
    targets = distill.teacher_targets(model, [t for _, t in pairs], [q.context for q, _, _ in kept], 64, 1024, pad)

The base model answers about a third of SQuAD's questions with the passage in its prompt and
almost none without it. So the night teaches the model, without the passage, to say what it says
with it (Knowledge Modules / deep context distillation, arXiv 2503.08727; prompt distillation):
- teacher: the base model (adapter disabled, no gradient) with the dream's source chunk in the
  user turn before the query; student: base + LoRA, the same query alone;
- target: the teacher's own greedy answer, and along it the teacher's next-token distribution
  (its top-k tokens and one bucket for the rest), at every answer token and the end of the turn;
  the query's tokens too, at `sleep.question_weight` (0 by default);
- loss: KL(teacher || student) at those positions (reverie.sleep.regularisers.kl_top), plus
  `sleep.answer_ce` x the cross-entropy of the answer's tokens: a 135M teacher is unsure exactly
  where the fact is, and a student of its soft targets alone learned that uncertainty.

The queries are the night's dreams:
- every question-answer dream (cloze, qa, spar) in several wordings (`wordings`): as dreamed, as
  a question over its whole sentence, and naming its document. Every wording of one fact shares
  the answer the teacher gave to the first, so a fact is taught one way, asked three ways. When
  that answer states another value than the span (`contradicts`: another year, date or number),
  the fact is dropped with the teacher's answer as its reason; when it only misses the span, the
  target is the span itself, scored by the teacher (`verify`);
- every other dream (a restatement, a book-club comment) is the target of a recall question about
  its document, scored by the teacher along the dream's own text;
- one open recall question per chunk ("What do you know about X?"), answered at length by the
  teacher: the model keeps answering in its own sentences, not in bare spans.

The teacher's prompts share their chunk: rows are batched by chunk, and its keys and values are
computed once per batch of its queries (reverie.sleep.train.log_probs reuses the prefix every row
of a batch shares). Targets are computed once a night and saved with it (`save_targets`), so
a killed night resumes without recomputing them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from reverie.answers import contained
from reverie.dream.base import parse_qa
from reverie.dream.generators import QA_GENERATORS
from reverie.dream.spans import answer_spans, in_situ_question, sentences
from reverie.models.backend import SamplingParams
from reverie.progress import Event, Progress
from reverie.sleep.data import IGNORE, RECALL, Encoded
from reverie.sleep.regularisers import Targets, entropy, rest_log_mass

OPEN = "What do you know about {title}?"  # the per-chunk open query
ANSWER_TOKENS = 32  # a question's teacher answer: the quiz reads 24 tokens of an answer
OPEN_TOKENS = 128  # an open query's teacher answer: a paragraph
COUNTED = {"year", "date", "century", "number", "quantity"}  # span kinds whose values contradict each other


@dataclass(frozen=True)
class Query:
    key: str  # "<dream id>:<wording>" or "open:<chunk id>": stable across a resumed night
    kind: str  # 'new' or 'replay' (earlier nights' dreams)
    prompt: str  # the user message the student is asked
    context: int  # the chunk the teacher reads
    span: str | None = None  # the verified answer of a question-answer dream
    span_kind: str | None = None  # its kind when the dream recorded it (reverie.dream.spans.Span.kind)
    answer_of: str | None = None  # the query whose teacher answer is the target (None: its own)
    target: str | None = None  # a fixed target scored by the teacher (a dream's own text)
    dream_id: int | None = None

    @property
    def source(self) -> str:
        """The key whose answer this query learns."""
        return self.answer_of or self.key


@dataclass(frozen=True)
class Context:
    title: str
    text: str

    def lead(self, prompt: str) -> str:
        """The teacher's user message: the chunk (titled), then the query as the student is asked it.
        ("Question: ..." reads 3 points more SQuAD answers, but its answers open "The answer is:",
        and a student taught that says it to "Tell me a joke.")"""
        head = self.text if self.text.lstrip().startswith("#") else f"# {self.title}\n\n{self.text}"
        return f"{head.strip()}\n\n{prompt}"


def wordings(question: str, span_text: str, metrics: dict, title: str) -> list[str]:
    """The question as dreamed, as a question over its whole sentence (when a cloze span is
    recorded with its sentence), and naming its document; duplicates removed."""
    out = [question]
    drawn = metrics.get("entropy") or {}
    sentence = drawn.get("sentence")
    if sentence and drawn.get("answer") == span_text:
        span = next((s for s in answer_spans(sentence) if s.text == span_text), None)
        wide = in_situ_question(span, min_words=len(sentence.split())) if span else None
        if wide:
            out.append(wide)
    if title:
        out.append(f"About {title}: {question}")
    return list(dict.fromkeys(out))


def queries(rows, contexts: dict[int, Context], chunk_of: dict[int, int]) -> list[Query]:
    """The night's queries from its dream rows (id, generator, text, metrics, role, title);
    `chunk_of` maps a dream to its first source chunk, `contexts` a chunk to its text."""
    out: list[Query] = []
    seen_chunks: dict[int, str] = {}
    for r in rows:
        chunk = chunk_of.get(r["id"])
        if chunk is None or chunk not in contexts:
            continue  # its source was deleted: nothing to read it from
        kind = "new" if r["role"] == "train" else "replay"
        title = contexts[chunk].title
        seen_chunks.setdefault(chunk, kind)
        pairs = parse_qa(r["text"]) if r["generator"] in QA_GENERATORS else []
        if pairs:
            question, span = pairs[0]
            metrics = json.loads(r["metrics"] or "{}")
            first, span_kind = f"{r['id']}:0", (metrics.get("entropy") or {}).get("kind")
            for i, w in enumerate(wordings(question, span, metrics, title)):
                out.append(Query(f"{r['id']}:{i}", kind, w, chunk, span, span_kind, None if i == 0 else first,
                                 dream_id=r["id"]))
        else:
            recall = RECALL[r["id"] % len(RECALL)].format(title=title or "what you read")
            out.append(Query(f"{r['id']}:0", kind, recall, chunk, target=r["text"], dream_id=r["id"]))
    for chunk, kind in seen_chunks.items():
        out.append(Query(f"open:{chunk}", kind, OPEN.format(title=contexts[chunk].title or "what you read"), chunk))
    return out


def teacher_answers(backend, qs: list[Query], contexts: dict[int, Context],
                    progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """{key: the teacher's greedy answer} for every query that needs one (its own answer, no
    fixed target). Asked chunk by chunk, so the engine's prefix cache holds each chunk once."""
    asked = sorted((q for q in qs if q.answer_of is None and q.target is None), key=lambda q: (q.context, q.key))
    if not asked:
        return {}
    # A short answer ends at its paragraph: what a 135M model writes after it is another question's.
    short = SamplingParams(temperature=0.0, max_new_tokens=ANSWER_TOKENS, seed=0, stop=["\n\n"])
    long = SamplingParams(temperature=0.0, max_new_tokens=OPEN_TOKENS, seed=0)
    queue = [([{"role": "user", "content": contexts[q.context].lead(q.prompt)}], long if q.span is None else short,
              0, q.key) for q in asked]
    answers: dict[str, str] = {}

    def pull(n: int) -> list:
        taken = queue[:n]
        del queue[:n]
        return taken

    def done(key: str, gen) -> None:
        answers[key] = gen.text
        if progress:
            progress(1)

    if backend.streams:
        backend.stream(pull, done)
    else:  # transformers' generate: one call per setting
        for params in (short, long):
            group = [(p, k) for p, s, _, k in queue if s is params]
            for (_, key), gen in zip(group, backend.generate([p for p, _ in group], params), strict=True):
                done(key, gen)
    return answers


def verify(qs: list[Query], answers: dict[str, str]) -> tuple[list[tuple[Query, str, bool]], dict[int, str]]:
    """(query, its target, whether the target is the span itself) for every query that has one,
    and {dream id: why it was dropped} for the others.

    A fact's target is the teacher's answer when it contains the span. When the teacher states
    another value of the span's kind (`contradicts`: "1877-83" for "1870-73"), the fact is dropped
    with the teacher's answer as its reason, as the dream gate drops what the passage does not
    support. When it only misses (a 135M model misses about two thirds of cloze spans, most
    often by answering something else), the target is the span, scored along the teacher's
    distribution: the fact is still taught. An empty answer to an open query teaches nothing."""
    kept, drops = [], {}
    for q in qs:
        said = q.target if q.target is not None else answers.get(q.source, "")
        if q.span is not None and not contained(said, q.span):
            if contradicts(said, q.span, q.span_kind):
                drops[q.dream_id] = f"teacher: answered {said[:80]!r} with the passage, not {q.span!r}"
            else:
                kept.append((q, q.span, True))
        elif said.strip():
            kept.append((q, said, False))
    return kept, drops


def contradicts(answer: str, span: str, kind: str | None) -> bool:
    """The teacher's answer states another value of the span's kind (a year, a date, a number, a
    quantity) and not the span: with the passage in front of it, it reads the fact otherwise.
    Names and things are not judged: an answer can name several without contradicting one."""
    if kind not in COUNTED:
        return False
    said = {s.text for sentence in sentences(answer) or [answer] for s in answer_spans(sentence) if s.kind == kind}
    return bool(said) and not any(contained(s, span) or contained(span, s) for s in said)


def _turn_pieces(tokenizer) -> tuple[list[int], list[int]]:
    """The chat template's token ids before and after a user message's content (up to the
    opened assistant turn), found by formatting a placeholder."""
    mark = "\u2063"  # an invisible separator that no text holds
    text = tokenizer.apply_chat_template([{"role": "user", "content": mark}], tokenize=False,
                                         add_generation_prompt=True)
    head, _, tail = text.partition(mark)
    enc = tokenizer(head, add_special_tokens=False)["input_ids"], tokenizer(tail, add_special_tokens=False)["input_ids"]
    return enc


def encode_pair(tokenizer, prompt: str, lead: str, answer: str, kind: str, max_tokens: int,
                question_weight: float) -> tuple[Encoded, Encoded]:
    """(student row, teacher row) for one query: the same query, template and answer tokens,
    the teacher's with the chunk before the query. Both rows label the same tokens: the query's
    (weight `question_weight`, when above 0) and the answer's and the end of the turn (weight 1)."""
    head, tail = _turn_pieces(tokenizer)
    q_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    before = tokenizer(lead[: len(lead) - len(prompt)], add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]
    room = max(1, max_tokens - len(head) - len(q_ids) - len(tail) - 1)
    a_ids = a_ids[:room] + [tokenizer.eos_token_id]
    suffix = q_ids + tail + a_ids
    q_label = q_ids if question_weight > 0 else [IGNORE] * len(q_ids)
    labels = q_label + [IGNORE] * len(tail) + a_ids
    weights = [question_weight] * len(q_ids) + [0.0] * len(tail) + [1.0] * len(a_ids)
    weights = [w for w, lab in zip(weights, labels, strict=True) if lab != IGNORE]
    student = Encoded(head + suffix, [IGNORE] * len(head) + labels, kind, tuple(weights))
    teacher = Encoded(head + before + suffix, [IGNORE] * (len(head) + len(before)) + labels, kind, tuple(weights))
    return student, teacher


def teacher_targets(model, rows: list[Encoded], contexts: list[int], top_k: int, batch_tokens: int, pad_id: int,
                    progress: Progress | None = None) -> list[Targets]:
    """The teacher's top-k targets at every labelled position of each teacher row, with the
    adapter disabled. Rows are batched by their chunk (`contexts`), so each batch shares the
    template and the chunk as one prefix whose keys and values are computed once.
    `model` may be the plain base model or carry adapters (they are disabled here)."""
    from reverie.models.lora import activate
    from reverie.sleep.train import collate, log_probs

    by_chunk: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(contexts):
        by_chunk[c].append(i)
    plan = []
    for idx in by_chunk.values():
        idx.sort(key=lambda i: len(rows[i].ids))
        shared = _common_prefix([rows[i].ids for i in idx])
        cut: list[list[int]] = [[]]
        for i in idx:  # batches of at most batch_tokens padded tokens past the chunk's shared prefix
            if cut[-1] and (len(cut[-1]) + 1) * (len(rows[i].ids) - shared) > batch_tokens:
                cut.append([])
            cut[-1].append(i)
        plan += cut
    out: list[Targets | None] = [None] * len(rows)
    was_training = model.training
    model.eval()
    with torch.no_grad(), activate(model, None):
        for done, idx in enumerate(plan, 1):
            batch = collate([rows[i] for i in idx], pad_id)
            where = batch["labels"][:, 1:] != IGNORE
            logp = log_probs(model, batch, where)
            for i, part in zip(idx, logp.split(where.sum(1).tolist()), strict=True):
                top, ids = part.topk(min(top_k, part.shape[-1]), -1)
                out[i] = Targets(top.half(), ids.int(), rest_log_mass(part, ids), entropy(part))
            if progress:
                progress(Event("teacher targets", done, len(plan)))
    model.train(was_training)
    return out


def _common_prefix(seqs: list[list[int]]) -> int:
    """How many tokens every sequence starts with."""
    first = seqs[0]
    n = min(len(x) for x in seqs)
    for x in seqs[1:]:
        n = next((k for k in range(n) if x[k] != first[k]), n)
    return n


def save_targets(path: Path, keys: list[str], targets: list[Targets]) -> None:
    """Write the night's teacher targets (temporary file, then rename: a kill leaves none or all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"keys": keys, "targets": [t.__dict__ for t in targets]}, tmp)
    tmp.replace(path)


def load_targets(path: Path, keys: list[str]) -> list[Targets] | None:
    """The saved targets when they are for exactly these queries, else None."""
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=True)
    if saved["keys"] != keys:
        return None
    return [Targets(**t) for t in saved["targets"]]
