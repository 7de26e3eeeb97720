"""Context distillation on the tiny model: queries and wordings, the loss against a hand-computed
KL, the teacher's chunk cache and saved targets, the teacher's check on each fact, and a
distilled night through the CLI (killed and resumed with the same targets)."""

from __future__ import annotations

import json

import pytest
import torch

from reverie.config import load_settings

DOC = ("# Vell Harbour\n\nThe lighthouse of Vell Harbour was built in 1852 by Mara Quill. "
       "Its lamp burns whale oil and can be seen from 30 miles away. The harbour last froze in 1901.\n")
FACTS = [("The lighthouse of Vell Harbour was built in what year by Mara Quill?", "1852"),
         ("The lighthouse of Vell Harbour was built in 1852 by whom?", "Mara Quill"),
         ("The harbour last froze in what year?", "1901")]
KINDS = ["year", "name", "year"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest.one_thread)."""


def _moved(tiny, rank: int = 4):
    from reverie.config import SleepConfig
    from reverie.models.tiny import moved_lora

    return moved_lora(tiny.model, SleepConfig(rank=rank))


def _pairs(tok, weight: float = 0.5):
    from reverie.sleep.distill import Context, encode_pair

    ctx = Context("Vell Harbour", DOC)
    return [encode_pair(tok, q, ctx.lead(q), f"It was {a}.", "new", 200, weight) for q, a in FACTS]


# -- queries -------------------------------------------------------------------------------------
def test_a_cloze_fact_is_asked_in_three_wordings_sharing_one_answer():
    from reverie.sleep.distill import Context, queries, verify

    sentence = "The lighthouse of Vell Harbour was built in 1852 by Mara Quill, a stonemason from the north."
    metrics = json.dumps({"entropy": {"answer": "1852", "kind": "year", "sentence": sentence}})
    rows = [{"id": 7, "generator": "cloze", "role": "train", "metrics": metrics,
             "text": "Q: The lighthouse of Vell Harbour was built in what year?\nA: 1852"},
            {"id": 8, "generator": "facts", "role": "replay", "metrics": "{}", "text": "Mara Quill built it."}]
    qs = queries(rows, {3: Context("Vell Harbour", DOC)}, {7: 3, 8: 3})
    facts = [q for q in qs if q.dream_id == 7]
    assert [q.prompt for q in facts] == [
        "The lighthouse of Vell Harbour was built in what year?",
        "The lighthouse of Vell Harbour was built in what year by Mara Quill, a stonemason from the north?",
        "About Vell Harbour: The lighthouse of Vell Harbour was built in what year?"]
    assert {q.source for q in facts} == {"7:0"} and all(q.span == "1852" and q.kind == "new" for q in facts)
    told = next(q for q in qs if q.dream_id == 8)  # another dream: its own text, asked for by a recall question
    assert told.target == "Mara Quill built it." and "Vell Harbour" in told.prompt and told.kind == "replay"
    opened = [q for q in qs if q.key == "open:3"]
    assert len(opened) == 1 and opened[0].prompt == "What do you know about Vell Harbour?"

    kept, drops = verify(qs, {"7:0": "It was built in 1852.", "open:3": "A lighthouse."})
    assert [(t, spanned) for _, t, spanned in kept] == [("It was built in 1852.", False)] * 3 + [
        ("Mara Quill built it.", False), ("A lighthouse.", False)] and not drops
    kept, drops = verify(qs, {"7:0": "A stonemason built it.", "open:3": ""})
    # a fact the teacher missed is taught as its span; an open query without an answer teaches nothing
    assert [(q.dream_id, t, spanned) for q, t, spanned in kept] == [(7, "1852", True)] * 3 + [
        (8, "Mara Quill built it.", False)] and not drops
    kept, drops = verify(qs, {"7:0": "It was built in 1900.", "open:3": "A lighthouse."})
    assert [q.dream_id for q, _, _ in kept] == [8, None]  # another year than the span's: the teacher says otherwise
    assert drops == {7: "teacher: answered 'It was built in 1900.' with the passage, not '1852'"}


def test_student_and_teacher_rows_label_the_same_tokens(tiny):
    from reverie.sleep.data import IGNORE

    tok = tiny.tokenizer
    student, teacher = _pairs(tok)[0]
    s_lab = [x for x in student.labels if x != IGNORE]
    assert s_lab == [x for x in teacher.labels if x != IGNORE]
    assert len(teacher.ids) > len(student.ids) + 20  # the passage is in the teacher's prompt only
    first = next(i for i, x in enumerate(student.labels) if x != IGNORE)
    assert tok.decode(student.ids[first:]).startswith(FACTS[0][0])  # the query, then the answer
    assert s_lab[-1] == tok.eos_token_id and student.ids[-1] == tok.eos_token_id
    n_q = len(tok(FACTS[0][0], add_special_tokens=False)["input_ids"])
    assert student.weights[:n_q] == (0.5,) * n_q and set(student.weights[n_q:]) == {1.0}
    answers_only, _ = _pairs(tok, weight=0.0)[0]
    assert tok.decode([x for x in answers_only.labels if x != IGNORE]) == "It was 1852.<|im_end|>"


# -- the loss ------------------------------------------------------------------------------------
def test_distillation_loss_is_the_weighted_kl_to_the_teacher(tiny):
    """micro_loss on distilled rows equals KL(teacher || student) computed by hand from the two
    models' full logits, weighted per token (queries at question_weight)."""
    from reverie.sleep import distill
    from reverie.sleep.train import collate, micro_loss

    tok = tiny.tokenizer
    model = _moved(tiny)
    pairs = _pairs(tok)
    vocab = tiny.model.config.vocab_size
    targets = distill.teacher_targets(model, [t for _, t in pairs], [1, 1, 1], vocab, 4096, tok.pad_token_id)
    cfg = load_settings(overrides={"sleep": {"kl_weight": 0, "entropy_weight": 0, "answer_ce": 0}}).sleep
    batch = collate([s for s, _ in pairs], tok.pad_token_id, [True] * 3)
    loss, parts = micro_loss(model, batch, cfg, teacher=targets)

    total, weight = 0.0, 0.0
    with torch.no_grad():
        for student, teacher in pairs:
            with model.disable_adapter():
                t_logits = model(input_ids=torch.tensor([teacher.ids])).logits[0, :-1]
            s_logits = model(input_ids=torch.tensor([student.ids])).logits[0, :-1]
            t_at = torch.tensor(teacher.labels[1:]) != -100
            s_at = torch.tensor(student.labels[1:]) != -100
            p = torch.log_softmax(t_logits[t_at].float(), -1)
            q = torch.log_softmax(s_logits[s_at].float(), -1)
            kl = (p.exp() * (p - q)).sum(-1)
            w = torch.tensor(student.weights)
            total += float((kl * w).sum())
            weight += float(w.sum())
    # the targets are kept in float16: equal to a thousandth
    assert float(loss.detach()) == pytest.approx(total / weight, rel=1e-3) and parts["distill"] > 0
    assert "ce" not in parts  # distilled rows are learned from the teacher, not from their labels

    # sleep.answer_ce adds the cross-entropy of the answer tokens (weight 1), not of the query's
    with_ce, parts = micro_loss(model, batch, cfg.model_copy(update={"answer_ce": 0.5}), teacher=targets)
    nll, count = 0.0, 0
    with torch.no_grad():
        for student, _ in pairs:
            logp = torch.log_softmax(model(input_ids=torch.tensor([student.ids])).logits[0, :-1].float(), -1)
            at = [t for t, lab in enumerate(student.labels[1:]) if lab != -100]
            answer = [t for t, w in zip(at, student.weights, strict=True) if w == 1.0]
            nll -= float(sum(logp[t, student.labels[t + 1]] for t in answer))
            count += len(answer)
    assert parts["answer_ce"] == pytest.approx(nll / count, rel=1e-4)
    assert float(with_ce.detach()) == pytest.approx(total / weight + 0.5 * nll / count, rel=1e-3)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_chunk_cache_and_saved_targets_give_the_same_loss(tiny, tmp_path, monkeypatch):
    """Targets computed with each chunk's keys and values shared by its queries equal those of
    full rows; saved and loaded, they give the same loss; saved for other queries, they are not used."""
    from reverie.sleep import distill
    from reverie.sleep import train as training

    tok = tiny.tokenizer
    model = _moved(tiny)
    pairs = _pairs(tok)
    rows = [t for _, t in pairs]
    shared = distill.teacher_targets(model, rows, [1, 1, 1], 16, 4096, tok.pad_token_id)
    batch = training.collate(rows, tok.pad_token_id)
    assert training.shared_prefix(batch, batch["labels"][:, 1:] != -100) > len(tok(DOC)["input_ids"])
    monkeypatch.setattr(training, "MIN_PREFIX", 10**9)  # every row in full
    full = distill.teacher_targets(model, rows, [1, 1, 1], 16, 4096, tok.pad_token_id)
    for a, b in zip(shared, full, strict=True):
        assert torch.allclose(a.logp.float(), b.logp.float(), atol=2e-3) and torch.equal(a.ids, b.ids)

    path = tmp_path / "night" / "teacher.pt"
    distill.save_targets(path, ["a", "b", "c"], shared)
    loaded = distill.load_targets(path, ["a", "b", "c"])
    assert distill.load_targets(path, ["a", "b"]) is None and distill.load_targets(tmp_path / "none.pt", []) is None
    cfg = load_settings(overrides={"sleep": {"kl_weight": 0, "entropy_weight": 0}}).sleep
    students = training.collate([s for s, _ in pairs], tok.pad_token_id, [True] * 3)
    a, _ = training.micro_loss(model, students, cfg, teacher=shared)
    b, _ = training.micro_loss(model, students, cfg, teacher=loaded)
    assert float(a) == pytest.approx(float(b), abs=1e-6)


def test_teacher_answers_every_query_that_needs_one(tiny):
    from reverie.models import TransformersBackend
    from reverie.sleep.distill import Context, Query, teacher_answers

    qs = [Query("1:0", "new", FACTS[0][0], 1, span="1852"), Query("1:1", "new", "About it?", 1, span="1852",
                                                                     answer_of="1:0"),
          Query("2:0", "new", "Tell me.", 1, target="fixed"), Query("open:1", "new", "What do you know?", 1)]
    seen = []
    answers = teacher_answers(TransformersBackend(tiny, batch_size=4), qs, {1: Context("Vell", DOC)}, seen.append)
    assert set(answers) == {"1:0", "open:1"} and sum(seen) == 2


# -- a night -------------------------------------------------------------------------------------
@pytest.fixture
def distilling(home, tmp_path, cli, monkeypatch):
    """A home that read DOC, with its three facts as cloze dreams of its chunk, a quiz asking
    them, and a teacher that answers them as a real model does with the passage in front of it
    (the tiny random model cannot read)."""
    from reverie.app import Reverie
    from reverie.sleep import distill
    from reverie.store.dreams import DreamRecord

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        "generation: {seed: 5}\nmodel: {threads: 1}\nmeter: {embedder: tfidf}\n"
        "sleep: {rank: 8, alpha: 16, batch_tokens: 512, epochs: 30, lr: 0.02, checkpoint_every: 2, self_replay: 0,\n"
        "        target_modules: [q_proj, v_proj, up_proj, down_proj, lm_head],\n"
        "        max_perplexity_rise: 1.0e+30, max_vendi_drop: 1.0, max_length_change: 1.0e+30,\n"
        "        max_probe_kl: 1.0e+30, question_weight: 0.1}\n"
        "quiz: {probe_prompts: ['Tell me a joke.'], probe_n: 3, probe_max_new_tokens: 8, max_new_tokens: 8}\n",
        encoding="utf-8")
    doc = tmp_path / "docs" / "vell.md"
    doc.parent.mkdir()
    doc.write_text(DOC, encoding="utf-8")
    assert cli("read", doc).code == 0
    rv = Reverie.from_settings()
    chunk = rv.store.chunks([rv.store.documents()[0]["id"]])[0]["id"]
    rv.store.add_dreams([DreamRecord("cloze", f"Q: {q}\nA: {a}", "tiny", 1, [chunk],
                                     metrics={"entropy": {"answer": a, "kind": k}})
                         for (q, a), k in zip(FACTS, KINDS, strict=True)])
    quiz = tmp_path / "quiz.jsonl"
    quiz.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in FACTS), encoding="utf-8")
    asked = []

    def teacher(backend, qs, contexts, progress=None):
        asked.append(len(qs))
        spans = {q.source: q.span for q in qs if q.span}
        return {q.key: ("It was 1900." if spans.get(q.key) == "1901" else f"It was {spans.get(q.key, 'old')}.")
                for q in qs if q.answer_of is None and q.target is None}

    monkeypatch.setattr(distill, "teacher_answers", teacher)
    return quiz, asked


def test_a_distilled_night_learns_drops_what_the_teacher_contradicts_and_resumes(distilling, cli, monkeypatch):
    from reverie.app import Reverie
    from reverie.sleep import distill

    quiz, asked = distilling

    def kill_at_step_2(e):
        if e.phase == "train" and e.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Reverie.from_settings().sleep(quiz_file=quiz, progress=kill_at_step_2)
    rv = Reverie.from_settings()
    config = json.loads(rv.store.night(1)["config"])
    assert len(config["teacher"]["answers"]) == 4  # three facts and the chunk's open query (wordings share)
    assert (rv.settings.home / "nights" / "1" / "teacher.pt").is_file()

    computed = []
    real = distill.teacher_targets
    monkeypatch.setattr(distill, "teacher_targets", lambda *a, **k: computed.append(1) or real(*a, **k))
    r = cli("sleep", "--quiz", quiz)
    assert r.code == 0, r.err
    assert asked == [len(asked) and asked[0]] and not computed  # answers and targets were kept with the night
    assert "night 1 was resumed" in r.err and ("kept: night-1" in r.out or "rejected: night-1" in r.out), r.out
    # The tiny random teacher knows nothing, so the quiz cannot show a gain (the sft nights of
    # test_sleep.py do); what the student learns is the teacher: its divergence falls.
    history = json.loads(Reverie.from_settings().store.adapter("night-1")["metrics"])["training"]["history"]
    assert history[-1] < 0.5 * history[0]

    r = cli("dreams", "--dropped")
    # the teacher read another year than 1901 in the passage
    assert r.code == 0 and "teacher: answered" in r.out, r.out
    rv = Reverie.from_settings()
    dropped = {d["text"]: d["drop_reason"] for d in rv.store.dreams(status="dropped") if d["generator"] == "cloze"
               and "teacher" in (d["drop_reason"] or "")}
    assert dropped == {f"Q: {FACTS[2][0]}\nA: 1901": "teacher: answered 'It was 1900.' with the passage, not '1901'"}
    metrics = json.loads(rv.store.night(1)["metrics"])
    assert metrics["queries"]["kept"] == 5 and "all" in metrics["queries"]  # two facts in two wordings, one open

