"""Quiz scoring (SQuAD normalisation, contained, F1), question files and held-out questions."""

from __future__ import annotations

import json

import pytest

from reverie.answers import contained, normalize, token_f1
from reverie.errors import ReverieError
from reverie.quiz.questions import Question, dream_question, holdout, load_questions


def test_normalize_like_squad():
    assert normalize("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize("An apple a day") == "apple day"


def test_contained_on_word_boundaries():
    assert contained("It was built in 1852 by the city.", "1852")
    assert contained("the answer is Starkie Gardner.", "Starkie Gardner")
    assert contained("sgraffito", ["fresco", "Sgraffito"])
    assert not contained("in 18521", "1852")
    assert not contained("", "Paris")


def test_token_f1():
    assert token_f1("the Eiffel tower", "Eiffel Tower") == 1.0
    assert token_f1("Paris", "London") == 0.0
    assert token_f1("Paris France", "Paris") == pytest.approx(2 / 3)


def test_load_questions_and_errors(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "Q?", "answer": "A"}) + "\n\n" + json.dumps({"question": "R?", "answer": ["B", "C"]}))
    qs = load_questions(f)
    assert [q.question for q in qs] == ["Q?", "R?"] and qs[1].answer == ["B", "C"]
    f.write_text('{"question": "Q?"}\n')
    with pytest.raises(ReverieError, match=":1: expected"):
        load_questions(f)
    f.write_text("not json\n")
    with pytest.raises(ReverieError, match="not a JSON object"):
        load_questions(f)
    f.write_text("")
    with pytest.raises(ReverieError, match="no questions"):
        load_questions(f)
    with pytest.raises(ReverieError, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")


def test_holdout_is_seeded_and_skips_unparsable():
    rows = [{"id": i, "text": f"Q: question {i}?\nA: answer {i}"} for i in range(20)] + [{"id": 99, "text": "no pair"}]
    a, b = holdout(rows, 0.25, seed=3), holdout(rows, 0.25, seed=3)
    assert a == b and len(a) == 5 and 99 not in a
    assert holdout(rows[:1], 0.1, seed=3) == [0]  # at least one
    assert holdout([], 0.5, seed=3) == []
    assert dream_question("Q: Who?\nA: Ada").answer == "Ada"


def test_a_quiz_longer_than_max_questions_says_it_is_cut():
    from reverie.config import MeterConfig, QuizConfig
    from reverie.quiz.run import Measure

    questions = [Question(f"Q{i}?", "A") for i in range(3)]
    said: list[str] = []
    m = Measure(questions, QuizConfig(max_questions=2), MeterConfig(), log=said.append)
    assert [q.question for q in m.questions] == ["Q0?", "Q1?"]
    assert said == ["asking the first 2 of 3 quiz questions (quiz.max_questions)"]
    Measure(questions, QuizConfig(max_questions=3), MeterConfig(), log=said.append)
    assert len(said) == 1


# -- the probe of the gate: answer length and drift from the base -------------------------------
@pytest.fixture
def tiny(tiny_model_dir, tmp_path):
    import torch

    from reverie.models import load_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread synchronisation would dominate
    yield load_model(str(tiny_model_dir), tmp_path / "models", threads=1)
    torch.set_num_threads(before)


def _measure(questions=(), **quiz):
    from reverie.config import MeterConfig, QuizConfig
    from reverie.quiz.run import Measure

    cfg = QuizConfig(**{"probe_n": 4, "probe_max_new_tokens": 16, "max_new_tokens": 8, **quiz})
    return Measure(list(questions), cfg, MeterConfig(embedder="tfidf"))


def _lora(loaded, seed: int = 0, scale: float = 0.0):
    """A LoRA on the tiny model (its body and output layer); random B matrices when `scale` > 0."""
    from dataclasses import replace

    import torch

    from reverie.config import SleepConfig
    from reverie.models.lora import new_lora

    model = new_lora(loaded.model, SleepConfig(rank=4, target_modules=["q_proj", "v_proj", "up_proj", "down_proj",
                                                                       "lm_head"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name and scale > 0:
                p.normal_(0, scale)
    return replace(loaded, model=model)


def _answer_log_prob(model, tok, prompt: str, answer: str, ended: bool) -> tuple[float, int]:
    """log p(answer | prompt) as the assistant turn, one sequence, no batching."""
    import torch

    head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    h = tok(head, add_special_tokens=False)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if ended else [])
    ids = torch.tensor([h + a])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    picked = logp[torch.arange(len(h) - 1, ids.shape[1] - 1), ids[0, len(h):]]
    return float(picked.sum()), len(a)


def test_probe_kl_is_zero_for_the_base_and_matches_a_hand_computation(tiny):
    measure = _measure(probe_prompts=["Tell me a joke."], probe_n=2)
    assert measure.reference is None and measure(tiny, "night-0").probe_kl is None  # no base probed yet
    base = measure(tiny, "base")
    ref = measure.reference
    assert base.probe_kl == 0.0 and len(ref.answers) == 2 and ref.prompts == ["Tell me a joke."] * 2
    assert 0 < base.answer_tokens <= 16  # probe_max_new_tokens
    moved = _lora(tiny, scale=0.5)
    cand = measure(moved, "moved")
    assert cand.probe_kl > 0 and measure.reference is ref  # the base's answers stay the reference
    kls = []
    for prompt, answer, ended in zip(ref.prompts, ref.answers, ref.ended, strict=True):
        lc, n = _answer_log_prob(moved.model, tiny.tokenizer, prompt, answer, ended)
        with moved.model.disable_adapter():
            lb, _ = _answer_log_prob(moved.model, tiny.tokenizer, prompt, answer, ended)
        kls.append((lb - lc) / n)
    assert cand.probe_kl == pytest.approx(sum(kls) / len(kls), rel=1e-4)
    with moved.model.disable_adapter():
        assert measure(moved, "base again").probe_kl == pytest.approx(0.0, abs=1e-6)
    assert set(cand.as_dict()) >= {"answer_tokens", "probe_kl", "vendi"}


def test_gold_answer_likelihood_is_per_token_and_takes_the_likeliest_accepted_answer(tiny):
    from reverie.quiz.run import gold_logp

    qs = [Question("What is the capital of France?", "Paris"),
          Question("What is the capital of France?", ["Paris", "the city of Paris", "Paris"])]
    one, many = gold_logp(tiny, qs)
    lp, n = _answer_log_prob(tiny.model, tiny.tokenizer, qs[0].question, "Paris", False)
    assert one == pytest.approx(lp / n, rel=1e-5)
    longer, m = _answer_log_prob(tiny.model, tiny.tokenizer, qs[0].question, "the city of Paris", False)
    assert many == pytest.approx(max(lp / n, longer / m), rel=1e-5)
    measured = _measure(qs)(tiny, "base")  # the quiz records them, one per question, for the gate
    assert measured.answer_logp == pytest.approx([one, many], rel=1e-5) and measured.retained_logp == []


def test_cached_base_figures_give_the_same_figures_and_drift(tiny, tmp_path):
    """A night measures the base model's perplexity and probe once per home (night._base): the
    cached figures and probe answers give what measuring again gives, for the base and for a
    candidate's drift; another probe setting is another key."""
    general = tmp_path / "general.txt"
    general.write_text("The quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    first = _measure(probe_prompts=["Tell me a joke."], probe_n=2, perplexity_tokens=100)
    first.general_text = general
    base = first(tiny, "base")
    rest = json.loads(json.dumps(first.rest_of(base)))  # as the store keeps it
    again = _measure(probe_prompts=["Tell me a joke."], probe_n=2, perplexity_tokens=100)
    again.general_text = general
    assert again.rest_key(tiny.identity) == first.rest_key(tiny.identity)
    cached = again.with_rest(again(tiny, "base", rest=False), rest)
    for key in ("perplexity", "vendi", "n_distinct", "answer_tokens", "probe_kl"):
        assert getattr(cached, key) == getattr(base, key), key
    moved = _lora(tiny, scale=0.5)
    assert again(moved, "moved").probe_kl == pytest.approx(first(moved, "moved").probe_kl, rel=1e-6)
    other = _measure(probe_prompts=["Tell me a joke."], probe_n=3, perplexity_tokens=100)
    other.general_text = general
    assert other.rest_key(tiny.identity) != first.rest_key(tiny.identity)


def _train_short_answers(loaded, phrase: str, prompts: list[str], steps: int = 60):
    """A LoRA trained (plain torch loop) to answer every prompt with `phrase`, then end."""
    import torch

    adapted = _lora(loaded)
    tok, model = loaded.tokenizer, adapted.model
    rows = []
    for p in prompts:
        head = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        h = tok(head, add_special_tokens=False)["input_ids"]
        a = tok(phrase, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((torch.tensor([h + a]), torch.tensor([[-100] * len(h) + a])))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.02)
    for _ in range(steps):
        loss = sum(model(input_ids=ids, labels=labels).loss for ids, labels in rows) / len(rows)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return adapted


def test_gate_rejects_an_adapter_that_answers_everything_in_two_words(tiny):
    """Issue 18: a night taught "Tell me a joke." -> "Super Bowl". Its probe Vendi may even rise
    (short random phrases embed far apart), so the gate checks answer length and drift too."""
    from reverie.config import PROBE_PROMPTS, SleepConfig
    from reverie.models import SamplingParams, TransformersBackend
    from reverie.sleep.verdict import bounds, decide

    probes = list(PROBE_PROMPTS[:4])
    measure = _measure([Question("What is the capital of France?", "Paris")], probe_prompts=probes)
    base = measure(tiny, "base")
    again = measure(tiny, "base again")
    cfg = SleepConfig()
    assert all(c.passed for c in bounds(base, again, cfg)), bounds(base, again, cfg)
    assert again.probe_kl == pytest.approx(0.0, abs=1e-6) and again.answer_tokens == base.answer_tokens

    short = _train_short_answers(tiny, "Paris.", ["What is the capital of France?", "hello", "Tell me a story.",
                                                  "Why is the sky blue?", "Write about the river."])
    gens = TransformersBackend(short).generate([[{"role": "user", "content": p}] for p in probes] * 2,
                                               SamplingParams(temperature=1.0, max_new_tokens=16, seed=1))
    assert {(g.text, g.finish_reason) for g in gens} == {("Paris.", "stop")}  # it really answers short
    cand = measure(short, "night-1")
    assert cand.accuracy == 1.0 > base.accuracy  # it "learned" the quiz's one fact
    assert cand.answer_tokens <= 3 < 10 <= base.answer_tokens
    failed = {c.name for c in bounds(base, cand, cfg) if not c.passed}
    assert {"length", "drift"} <= failed, failed
    assert cand.probe_kl > cfg.max_probe_kl
    # Even with the diversity check opened (the Vendi rose), and the learned test opened to
    # what one question can show (p 1/2), the verdict is a rejection.
    verdict = decide(base, base, cand, cfg.model_copy(update={"max_vendi_drop": 1.0, "significance": 0.6}))
    assert not verdict.keep and [r.split(":")[0] for r in verdict.reasons] == ["length", "drift"]


def test_probe_file_adds_its_first_prompts_and_a_bad_one_is_one_error(tmp_path):
    from reverie.config import PROBE_PROMPTS

    f = tmp_path / "wild.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"prompt {i}", "id": i}) for i in range(5)) + "\n")
    measure = _measure(probe_file=f, probe_file_prompts=2)
    assert measure.probe_prompts == [*PROBE_PROMPTS, "prompt 0", "prompt 1"]
    assert _measure(probe_file=f, probe_file_prompts=50).probe_prompts[-1] == "prompt 4"
    assert _measure().probe_prompts == list(PROBE_PROMPTS)
    with pytest.raises(ReverieError, match=r"^quiz.probe_file: .*missing.jsonl does not exist$"):
        _measure(probe_file=tmp_path / "missing.jsonl")
    f.write_text('{"prompt": "one"}\n{"question": "two"}\n')
    with pytest.raises(ReverieError, match="line 2 has no field 'prompt'"):
        _measure(probe_file=f)
    (tmp_path / "p.txt").write_text("one\n")
    with pytest.raises(ReverieError, match="from a .jsonl file"):
        _measure(probe_file=tmp_path / "p.txt")
