"""Sleep on the tiny model: loss masking, adapters (save/load, merge, base checks), the gate
keeping and rolling back, resuming a killed night, and bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import QA

from reverie.config import load_settings
from reverie.errors import ReverieError


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest.one_thread)."""


def _killed_in(rv, quiz, phase: str) -> None:
    """Start a night and kill it (as Ctrl-C does) at its first progress report of `phase`."""

    def kill(e):
        if e.phase == phase:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rv.sleep(quiz_file=quiz, progress=kill)


def _rv():
    from reverie.app import Reverie

    return Reverie.from_settings()


def _kill_at_train_step(n: int):
    """A progress callback that interrupts the night at its n-th training step, as Ctrl-C would."""
    def kill(e):
        if e.phase == "train" and e.done == n:
            raise KeyboardInterrupt
    return kill


def _add_dreams(rv, facts: bool = True):
    from reverie.store.dreams import DreamRecord

    rv.store.add_dreams(
        [DreamRecord("qa", f"Q: {q}\nA: {a}", "tiny", 1, []) for q, a in QA]
        + [DreamRecord("facts", f"The answer to '{q}' is {a}.", "tiny", 1, []) for q, a in QA if facts]
    )


def _moved_lora(tiny, cfg):
    """A fresh LoRA on the tiny model whose B matrices are random: an adapter that moved."""
    from reverie.models.tiny import moved_lora

    return moved_lora(tiny.model, cfg)


# -- loss masking --------------------------------------------------------------------------------
def test_prompt_tokens_carry_no_loss_and_eos_is_learned(tiny):
    from reverie.config import SleepConfig
    from reverie.models.lora import new_lora
    from reverie.sleep.data import IGNORE, Example, encode
    from reverie.sleep.train import collate, micro_loss

    tok = tiny.tokenizer
    enc = encode(tok, Example("Paris.", "What is the capital of France?", "new"), 100)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert enc.labels[:n_prompt] == [IGNORE] * n_prompt
    assert enc.labels[n_prompt:] == enc.ids[n_prompt:]
    assert enc.labels[-1] == tok.eos_token_id and enc.ids[-1] == tok.eos_token_id
    assert tok.decode(enc.labels[n_prompt:]) == "Paris.<|im_end|>"

    # The loss equals cross-entropy over the answer tokens alone (EOS included), whatever the prompt.
    cfg = SleepConfig(kl_weight=0, entropy_weight=0, rank=4)
    model = new_lora(tiny.model, cfg)
    batch = collate([enc], tok.pad_token_id)
    loss, _ = micro_loss(model, batch, cfg)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
    targets = torch.tensor(enc.ids[1:])
    manual = torch.nn.functional.cross_entropy(logits[n_prompt - 1 :], targets[n_prompt - 1 :])
    assert float(loss.detach()) == pytest.approx(float(manual), rel=1e-5)


def test_plain_text_is_learned_everywhere(tiny):
    from reverie.sleep.data import Example, encode

    enc = encode(tiny.tokenizer, Example("Paris is the capital of France.", None, "general"), 100)
    assert enc.labels == enc.ids


def test_question_answer_dreams_are_chat_turns():
    from reverie.sleep.data import from_dream

    row = {"id": 3, "generator": "cloze", "text": "Q: The main façade stretches how many feet?\nA: 720 feet"}
    ex = from_dream(row, "V&A")
    # cloze (like qa) is a question and its answer: the user asks, the assistant answers
    assert ex.prompt == "The main façade stretches how many feet?" and ex.text == "720 feet"
    # which generators write "Q: ... / A: ..." is read off their own dream templates
    from reverie.dream.generators import QA_GENERATORS

    assert QA_GENERATORS == {"qa", "cloze", "spar"}
    assert from_dream({**row, "generator": "spar"}, "V&A").prompt == "The main façade stretches how many feet?"
    # other dreams answer a recall question about their document
    facts = from_dream({"id": 4, "generator": "facts", "text": "It stretches 720 feet."}, "V&A")
    assert facts.text == "It stretches 720 feet." and "V&A" in facts.prompt


def test_batches_are_deterministic_and_bounded():
    from reverie.sleep.data import batches

    lengths = [5, 50, 20, 7, 90, 33] * 10
    a = batches(lengths, batch_tokens=200, seed=1, epochs=2.5)
    assert a == batches(lengths, batch_tokens=200, seed=1, epochs=2.5)
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in a)
    one = batches(lengths, batch_tokens=200, seed=1, epochs=1)
    assert sorted(i for b in one for i in b) == list(range(len(lengths)))


# -- adapters ------------------------------------------------------------------------------------
def _trained_lora(loaded):
    """A LoRA whose B matrices are random, so it changes the model."""
    from reverie.config import SleepConfig
    from reverie.models.lora import new_lora

    model = new_lora(loaded.model, SleepConfig(rank=4))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.eval()
    return model


def _logits(model, tok):
    ids = tok(["Paris is the capital of France."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_save_then_load_gives_identical_logits(tiny, tiny_model_dir, tmp_path):
    from reverie.models import load_model
    from reverie.models.lora import attach, save_adapter

    model = _trained_lora(tiny)
    before = _logits(model, tiny.tokenizer)
    save_adapter(model, tmp_path / "a", tiny.identity)
    assert (tmp_path / "a" / "adapter_config.json").is_file()
    fresh = load_model(str(tiny_model_dir), tmp_path)
    row = {"name": "a", "path": str(tmp_path / "a")}
    again = attach(fresh, row)
    assert torch.equal(_logits(again.model, tiny.tokenizer), before)
    assert not torch.allclose(_logits(load_model(str(tiny_model_dir), tmp_path).model, tiny.tokenizer), before)


def test_adapter_strength_scales_its_update_and_bakes_into_the_saved_adapter(tiny, tiny_model_dir, tmp_path):
    from reverie.models import load_model
    from reverie.models.lora import attach, bake_strength, save_adapter, strength

    model = _trained_lora(tiny)
    full = _logits(model, tiny.tokenizer)
    with model.disable_adapter():
        base = _logits(model, tiny.tokenizer)
    with strength(model, "default", 0.5):
        half = _logits(model, tiny.tokenizer)
    assert torch.equal(_logits(model, tiny.tokenizer), full)  # restored after the block
    assert not torch.allclose(half, base) and not torch.allclose(half, full)
    # Each adapted layer adds exactly half its update.
    layer = next(m for m in model.modules() if isinstance(getattr(m, "scaling", None), dict))
    x = torch.randn(3, layer.in_features)
    with torch.no_grad():
        y_full = layer(x)
        with model.disable_adapter():
            y_base = layer(x)
        with strength(model, "default", 0.5):
            y_half = layer(x)
    assert torch.allclose(y_half, y_base + 0.5 * (y_full - y_base), atol=1e-6)
    bake_strength(model, "default", 0.5)
    assert torch.allclose(_logits(model, tiny.tokenizer), half, atol=1e-5)
    save_adapter(model, tmp_path / "a", tiny.identity)
    again = attach(load_model(str(tiny_model_dir), tmp_path), {"name": "a", "path": str(tmp_path / "a")})
    assert torch.allclose(_logits(again.model, tiny.tokenizer), half, atol=1e-5)


def test_gate_takes_the_strongest_strength_within_bounds(tiny):
    from reverie.config import SleepConfig
    from reverie.quiz.run import QuizResult
    from reverie.sleep.night import choose_strength

    model = _trained_lora(tiny)
    layer = next(m for m in model.modules() if isinstance(getattr(m, "scaling", None), dict))
    full = layer.scaling["default"]
    asked = []

    def measure(loaded, label, say, quiz=True, rest=True):
        ratio = layer.scaling["default"] / full
        asked.append((quiz, rest, ratio))
        # Perplexity rises with the strength of the update: +9% at full strength.
        return QuizResult(label, 0, 0.5 if quiz else None, 0.4 if quiz else None,
                          10.0 * (1 + 0.09 * ratio) if rest else None, None, None)

    base = QuizResult("base", 0, None, None, 10.0, None, None)
    loaded = dataclasses.replace(tiny, model=model)
    cfg = SleepConfig()  # perplexity at most +5%; strengths 1, 0.8, 0.65, 0.5, ...
    chosen, tried, at = choose_strength(loaded, "default", measure, base, cfg, "night-1")
    assert chosen == 0.5 and [t["strength"] for t in tried] == [1.0, 0.8, 0.65, 0.5]
    assert [t["passed"] for t in tried] == [False, False, False, True]
    # Chosen on perplexity and the probe alone; the quiz is asked once, last, at the strength chosen,
    # and perplexity is not measured again there.
    assert [q for q, _, _ in asked] == [False] * 4 + [True]
    assert asked[-1] == (True, False, 0.5)
    assert at.label == "night-1" and at.accuracy == 0.5 and at.f1 == 0.4 and at.perplexity == pytest.approx(10.45)
    assert layer.scaling["default"] == full
    strict = cfg.model_copy(update={"max_perplexity_rise": 0.0})
    chosen, tried, _ = choose_strength(loaded, "default", measure, base, strict, "night-1")
    assert chosen == 0.2 and not any(t["passed"] for t in tried)  # none passes: the weakest, and the gate rejects
    with pytest.raises(ReverieError):
        load_settings(overrides={"sleep": {"strengths": [1.5]}})


def test_merged_model_matches_base_plus_adapter(tiny, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from reverie.models import load_model
    from reverie.models.lora import merge, save_adapter

    model = _trained_lora(tiny)
    expected = _logits(model, tiny.tokenizer)
    save_adapter(model, tmp_path / "a", tiny.identity)
    out = merge(load_model(str(tiny_model_dir), tmp_path), {"name": "a", "path": str(tmp_path / "a")}, tmp_path / "m")
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert torch.allclose(_logits(merged, tiny.tokenizer), expected, atol=1e-5)
    with pytest.raises(ReverieError, match="not empty"):
        merge(load_model(str(tiny_model_dir), tmp_path), {"name": "a", "path": str(tmp_path / "a")}, out)


def test_adapter_of_another_base_is_refused(sleepy, cli, tiny, tmp_path):
    from reverie.models.lora import check_dir, save_adapter

    path = save_adapter(_trained_lora(tiny), tmp_path / "other", "another-model@123456")
    with pytest.raises(ReverieError, match="trained for the base model another-model@123456"):
        check_dir(path, tiny.identity)
    rv = _rv()
    rv.store.add_adapter("other", str(path), "another-model@123456", None, "kept", {})
    r = cli("use", "other")
    assert r.code == 1 and "another-model@123456" in r.err
    rv.store.set_state("adapter", "other")  # selected behind reverie's back: loading refuses it
    r = cli("chat", "-p", "hello")
    assert r.code == 1 and "another-model@123456" in r.err
    r = cli("use", "nope")
    assert r.code == 1 and "no adapter 'nope'" in r.err


# -- nights --------------------------------------------------------------------------------------
def test_no_dreams_is_an_error(sleepy, cli):
    r = cli("sleep", "--quiz", sleepy)
    assert r.code == 1 and "no dreams to learn from" in r.err
    assert _rv().store.nights() == []


def test_night_kept_then_harmful_night_rolled_back(sleepy, cli, monkeypatch, tmp_path):
    rv = _rv()
    _add_dreams(rv, facts=False)
    r = cli("sleep", "--quiz", sleepy)
    assert r.code == 0, r.err
    assert "kept: night-1 is now in use" in r.out and "quiz accuracy" in r.out, r.out
    rv = _rv()
    assert rv.store.get_state("adapter") == "night-1"
    assert rv.store.night(1)["status"] == "kept"
    base_fig = json.loads(rv.store.night(1)["metrics"])["figures"]
    assert base_fig["candidate"]["accuracy"] > base_fig["base"]["accuracy"]

    # Night 2: new dreams and a learning rate that wrecks the model.
    from reverie.store.dreams import DreamRecord

    rv.store.add_dreams([DreamRecord("facts", "Bananas are yellow and grow on plants.", "tiny", 1, [])])
    monkeypatch.setenv("REVERIE_SLEEP__LR", "3.0")
    monkeypatch.setenv("REVERIE_SLEEP__KL_WEIGHT", "0")
    monkeypatch.setenv("REVERIE_SLEEP__ENTROPY_WEIGHT", "0")
    r = cli("sleep", "--quiz", sleepy)
    assert r.code == 0, r.err
    assert "rejected: night-2 rolled back" in r.out
    rv = _rv()
    assert rv.store.get_state("adapter") == "night-1"  # rolled back: the kept adapter stays in use
    night = rv.store.night(2)
    assert night["status"] == "rejected"
    metrics = json.loads(night["metrics"])
    assert {"base", "reference", "candidate"} <= set(metrics["figures"])
    assert "forgetting" in [c["name"] for c in metrics["checks"] if not c["passed"]]  # perplexity blew up
    assert rv.store.adapter("night-2")["verdict"] == "rejected"
    from reverie.sleep.records import pending_dreams

    assert [d["text"] for d in pending_dreams(rv.store)] == ["Bananas are yellow and grow on plants."]
    r = cli("adapters")
    assert "night-1" in r.out and "rejected" in r.out and "kept" in r.out
    r = cli("quiz", "--quiz", sleepy)
    assert r.code == 0 and "night-1" in r.out


def test_night_kept_at_a_lower_strength_saves_that_strength(sleepy, cli, monkeypatch):
    from reverie.sleep import night

    _add_dreams(_rv(), facts=False)
    tried = [{"strength": 1.0, "perplexity": 99.0, "vendi": None, "passed": False},
             {"strength": 0.5, "perplexity": 10.0, "vendi": None, "passed": True}]
    real = night.choose_strength
    monkeypatch.setattr(night, "choose_strength", lambda *a: (0.5, tried, real(*a)[2]))  # figures: the real search's
    r = cli("sleep", "--quiz", sleepy)
    assert r.code == 0, r.err
    assert "strength 0.5" in r.out and "kept: night-1" in r.out, r.out
    rv = _rv()
    assert json.loads(rv.store.night(1)["metrics"])["figures"]["strength"] == {"chosen": 0.5, "tried": tried}
    folder = rv.store.adapter("night-1")["path"]
    meta = json.loads((Path(folder) / "reverie_adapter.json").read_text(encoding="utf-8"))
    assert meta["strength"] == 0.5
    assert sorted(p.name for p in Path(folder).iterdir() if p.is_dir()) == []  # the night's adapter alone


def test_night_killed_after_saving_its_strength_resumes_to_the_same_adapter(sleepy, monkeypatch):
    """Killed between saving the adapter at the chosen strength and recording the verdict, the
    resumed night measures the adapter as trained (not the baked one) and saves the same."""
    from safetensors.torch import load_file

    from reverie.sleep import night
    from reverie.store import Store

    _add_dreams(_rv(), facts=False)
    real = night.choose_strength
    monkeypatch.setattr(night, "choose_strength", lambda loaded, *a: (0.5, [], real(loaded, *a)[2]))
    baked = {}
    verdict = Store.set_adapter_verdict

    def kill_once(self, *a):
        if not baked:
            baked.update(load_file(self.adapter("night-1")["path"] + "/adapter_model.safetensors"))
            raise KeyboardInterrupt
        return verdict(self, *a)

    monkeypatch.setattr(Store, "set_adapter_verdict", kill_once)
    with pytest.raises(KeyboardInterrupt):
        _rv().sleep(quiz_file=sleepy)
    result = _rv().sleep(quiz_file=sleepy)
    assert result.resumed and result.status == "kept" and result.figures["strength"]["chosen"] == 0.5
    again = load_file(Path(_rv().store.adapter("night-1")["path"]) / "adapter_model.safetensors")
    assert baked.keys() == again.keys() and any(float(v.abs().max()) > 0 for k, v in again.items() if "lora_B" in k)
    assert all(torch.allclose(baked[k], again[k], atol=1e-7) for k in baked)  # not baked twice (0.25)


def test_a_night_stored_with_a_setting_deleted_since_resumes_without_it(sleepy):
    """A night killed before an upgrade that deleted one of its settings resumes after it: the
    stored setting is dropped, with a note, instead of failing validation."""
    import json

    rv = _rv()
    _add_dreams(rv)
    with pytest.raises(KeyboardInterrupt):
        rv.sleep(quiz_file=sleepy, progress=_kill_at_train_step(1))
    config = json.loads(rv.store.night(1)["config"])
    config["settings"]["sleep"]["max_retention_drop"] = 0.1  # deleted in the fourth session of 2026-12-01
    rv.store.set_night_config(1, config)
    lines = []
    from reverie.app import Reverie

    result = Reverie.from_settings(log=lines.append).sleep(quiz_file=sleepy)
    assert result.resumed and result.status in ("kept", "rejected")
    assert any("max_retention_drop" in line and "runs without" in line for line in lines)


def test_killed_night_resumes_from_its_checkpoint(sleepy, tmp_path, monkeypatch, tiny_model_dir):
    from safetensors.torch import load_file

    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "4")
    rv = _rv()
    _add_dreams(rv)
    with pytest.raises(KeyboardInterrupt):
        rv.sleep(quiz_file=sleepy, progress=_kill_at_train_step(3))
    assert rv.store.night(1)["status"] == "interrupted"
    assert (rv.settings.home / "nights" / "1" / "checkpoint.pt").is_file()
    steps = []
    result = _rv().sleep(quiz_file=sleepy, progress=lambda e: steps.append(e.done) if e.phase == "train" else None)
    assert result.resumed and result.night_id == 1 and steps[0] == 3  # step 3 is redone, 1-2 are not
    resumed = load_file(rv.settings.adapters_dir / "night-1" / "adapter_model.safetensors")

    home2 = tmp_path / "home2"  # the same night, never killed
    home2.mkdir()
    (home2 / "config.yaml").write_text((rv.settings.home / "config.yaml").read_text())
    monkeypatch.setenv("REVERIE_HOME", str(home2))
    rv2 = _rv()
    _add_dreams(rv2)
    rv2.sleep(quiz_file=sleepy)
    straight = load_file(rv2.settings.adapters_dir / "night-1" / "adapter_model.safetensors")
    assert resumed.keys() == straight.keys()
    for k in resumed:
        assert torch.allclose(resumed[k], straight[k], atol=1e-6), (k, float((resumed[k] - straight[k]).abs().max()))


def test_held_out_questions_are_never_trained_on(sleepy, monkeypatch):
    from reverie.sleep import records

    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "1")
    monkeypatch.setenv("REVERIE_QUIZ__HOLDOUT", "0.34")
    rv = _rv()
    _add_dreams(rv)
    result = rv.sleep()
    held = records.night_dreams(rv.store, 1, ("quiz",))
    trained = records.night_dreams(rv.store, 1, ("train",))
    assert len(held) == 1 and held[0]["generator"] == "qa"
    assert held[0]["id"] not in {r["id"] for r in trained}
    assert result.figures["base"]["n_questions"] == 1


def test_gate_bounds():
    from reverie.config import SleepConfig
    from reverie.quiz.run import QuizResult
    from reverie.sleep.verdict import decide

    cfg = SleepConfig()
    before, after = [-4.0 - 0.1 * i for i in range(10)], [-3.0 - 0.1 * i for i in range(10)]
    base = QuizResult("base", 10, 0.1, 0.2, perplexity=20.0, vendi=5.0, n_distinct=8, answer_tokens=30.0, probe_kl=0.0,
                      answer_logp=before)
    good = QuizResult("c", 10, 0.1, 0.4, perplexity=20.9, vendi=4.6, n_distinct=8, answer_tokens=24.5, probe_kl=0.18,
                      answer_logp=after)
    assert decide(base, base, good, cfg).keep  # every answer likelier, no more of them right: learned
    for tokens in (23.5, 36.5):  # outside 30 +-20%: answers that shrank or swelled
        terse = dataclasses.replace(good, answer_tokens=tokens)
        assert decide(base, base, terse, cfg).reasons == [
            f"length: probe answers 30.0 tokens (base) -> {tokens:.1f}, allowed 24.0 to 36.0"]
    drifted = dataclasses.replace(good, probe_kl=0.25)
    assert [r.split(":")[0] for r in decide(base, base, drifted, cfg).reasons] == ["drift"]
    unprobed = dataclasses.replace(good, answer_tokens=None, probe_kl=None)
    assert decide(base, base, unprobed, cfg).keep  # not measured: not checked
    forgot = dataclasses.replace(good, perplexity=21.1, vendi=5.0)
    assert decide(base, base, forgot, cfg).reasons[0].startswith("forgetting")
    collapsed = dataclasses.replace(good, perplexity=20.0, vendi=4.4, n_distinct=3)
    assert decide(base, base, collapsed, cfg).reasons[0].startswith("diversity")
    kept_before = dataclasses.replace(base, label="night-1", answer_logp=after)
    assert decide(base, kept_before, good, cfg).reasons[0].startswith("learned")  # no gain over the kept one
    # Seven of ten likelier, three less and by more: the mean rose, but not beyond chance (p 0.5).
    mixed = dataclasses.replace(good, answer_logp=[b + (1.0 if i < 7 else -1.5) for i, b in enumerate(before)])
    [reason] = decide(base, base, mixed, cfg).reasons
    assert reason.startswith("learned: held-out answers' log-prob a token -4.45 (base) -> -4.20, higher for 7 of 10")
    assert "needs < 0.05" in reason
    unmoved = dataclasses.replace(good, answer_logp=before)
    assert "signed-rank p 1" in decide(base, base, unmoved, cfg).reasons[0]
    few = dataclasses.replace(good, n_questions=4, answer_logp=after[:4])
    base4 = dataclasses.replace(base, n_questions=4, answer_logp=before[:4])
    assert decide(base4, base4, few, cfg).reasons == [
        "learned: 4 held-out questions cannot show learning at p < 0.05: the paired test needs at least 5 (read "
        "more, or quiz with --quiz); accuracy 10.0% (base) -> 10.0%"]
    assert not decide(base, base, None, cfg).keep  # diverged
    unmeasured = QuizResult("c", 0, None, None, None, None, None)
    assert decide(base, base, unmeasured, cfg).reasons == ["learned: no quiz questions, so no evidence the night helped"]


def test_gate_retention_is_a_paired_test_on_earlier_answers():
    from reverie.config import SleepConfig
    from reverie.quiz.run import QuizResult
    from reverie.sleep.verdict import decide

    cfg = SleepConfig()
    old = [-3.0 - 0.2 * i for i in range(8)]
    ref = QuizResult("night-1", 10, 0.0, 0.0, None, None, None, answer_logp=[-5.0] * 10, retained=0.25,
                     n_retained=8, retained_logp=old)
    cand = dataclasses.replace(ref, label="night-2", answer_logp=[-4.0] * 10, retained=0.25)
    lower = dataclasses.replace(cand, retained_logp=[x - 0.5 for x in old])  # every earlier answer less likely
    [reason] = decide(ref, ref, lower, cfg).reasons
    assert reason.startswith("retained: earlier nights' answers' log-prob a token -3.70 (night-1) -> -4.20, lower "
                             "for 8 of 8"), reason
    assert "accuracy 25.0% -> 25.0%" in reason  # as many right, yet forgotten: the likelihood shows it
    one_down = dataclasses.replace(cand, retained_logp=[x - (0.5 if i == 0 else -0.1) for i, x in enumerate(old)])
    assert decide(ref, ref, one_down, cfg).keep  # one question less likely, seven more: not forgetting
    assert decide(ref, ref, cand, cfg).keep  # unchanged


def test_regularised_positions(tiny):
    from reverie.sleep.data import Example, encode
    from reverie.sleep.train import _positions, collate

    tok = tiny.tokenizer
    chat = encode(tok, Example("Paris.", "What is the capital of France?", "replay"), 100)
    new = encode(tok, Example("Rome.", "What is the capital of Italy?", "new"), 100)
    text = encode(tok, Example("The fox jumps.", None, "general"), 100)
    batch = collate([chat, text, new], tok.pad_token_id)
    learn, reg = _positions(batch, regularise=True)
    n_prompt = chat.labels.count(-100)
    assert reg[0].nonzero().flatten().tolist() == [n_prompt - 1]  # predicts the first answer token
    assert int(reg[1].sum()) == len(text.ids) - 1  # every position of general text
    assert not reg[2].any()  # a new example is learned, not held back
    assert int(learn[0].sum()) == len(chat.ids) - n_prompt


def test_a_shared_prefix_is_computed_once_with_the_same_loss_and_gradients(tiny, monkeypatch):
    """Rows that start alike (a chat template's system turn) share one pass over their prefix;
    the loss, its regularisers and every LoRA gradient are those of the full rows."""
    from reverie.sleep import train as training
    from reverie.sleep.data import Example, encode

    tok = tiny.tokenizer
    cfg = load_settings(overrides={"sleep": {"rank": 4, "kl_weight": 1.0, "entropy_weight": 0.5}}).sleep
    model = _moved_lora(tiny, cfg)
    rows = [encode(tok, Example("Rome.", "What is the capital of Italy?", "new"), 100),
            encode(tok, Example("Madrid is.", "What is the capital of Spain?", "replay"), 100),
            encode(tok, Example("Lisbon, on the Tagus.", "What is the capital of Portugal, then?", "new"), 100)]
    batch = training.collate(rows, tok.pad_token_id)
    learn, reg = training._positions(batch, True)
    n = training.shared_prefix(batch, learn | reg)
    assert tok.decode(batch["input_ids"][0, :n]).startswith("<|im_start|>user\nWhat is the capital")
    assert len(set(batch["input_ids"][:, n].tolist())) > 1  # the rows part at the country
    assert n >= training.MIN_PREFIX and not (learn | reg)[:, : n - 1].any()

    def run(least: int):
        monkeypatch.setattr(training, "MIN_PREFIX", least)
        model.zero_grad()
        loss, parts = training.micro_loss(model, batch, cfg)
        loss.backward()
        return loss.detach(), parts, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}

    shared, full = run(training.MIN_PREFIX), run(10**9)
    assert torch.allclose(shared[0], full[0], atol=1e-5)
    assert shared[1] == pytest.approx(full[1], abs=1e-5) and shared[1]["kl"] > 0
    assert all(torch.allclose(shared[2][k], full[2][k], atol=1e-5) for k in full[2])
    assert any(float(g.abs().max()) > 0 for k, g in full[2].items() if "layers.0." in k)
    # Nothing shared, nothing split: a single row, or rows that part at once.
    assert training.shared_prefix(training.collate(rows[:1], tok.pad_token_id), learn[:1]) == 0
    text = encode(tok, Example("The fox jumps.", None, "general"), 100)
    mixed = training.collate([rows[0], text], tok.pad_token_id)
    assert training.shared_prefix(mixed, training._positions(mixed, True)[0]) == 0


def test_cached_base_targets_give_the_regularisers_of_a_base_pass(tiny):
    """The base model's distributions, computed once before training (sleep.kl_top_k), give the
    loss of a base pass in the batch: exactly with the whole vocabulary kept, and a lower bound
    of the KL with fewer tokens kept; the entropy floor's default is the same either way."""
    from reverie.sleep import train as training
    from reverie.sleep.data import Example, encode

    tok = tiny.tokenizer
    vocab = tiny.model.config.vocab_size
    cfg = load_settings(overrides={"sleep": {"rank": 4, "kl_weight": 1.0, "entropy_weight": 0.5,
                                             "kl_top_k": vocab}}).sleep
    model = _moved_lora(tiny, cfg)
    encoded = [encode(tok, Example("Rome.", "What is the capital of Italy?", "new"), 100),
               encode(tok, Example("The fox jumps over the dog.", None, "general"), 100),
               encode(tok, Example("Madrid.", "What is the capital of Spain?", "replay"), 100),
               encode(tok, Example("A cat sat on the mat, then slept.", None, "general"), 100)]
    seen, mode = [], model.training
    targets = training.base_targets(model, encoded, cfg, tok.pad_token_id, [False] * 4, progress=seen.append)
    assert targets[0] is None and all(t is not None for t in targets[1:])
    assert targets[2].logp.shape[0] == 1 and targets[1].logp.shape[0] == len(encoded[1].ids) - 1
    assert seen and seen[-1].done == seen[-1].total and seen[-1].phase == "base targets" and model.training == mode
    batch = training.collate(encoded, tok.pad_token_id)
    exact, exact_parts = training.micro_loss(model, batch, cfg)
    cached, cached_parts = training.micro_loss(model, batch, cfg, targets)
    assert float(cached) == pytest.approx(float(exact), abs=1e-5)
    assert cached_parts == pytest.approx(exact_parts, abs=1e-5) and exact_parts["entropy_pen"] >= 0

    few = cfg.model_copy(update={"kl_top_k": 8})
    _, top_parts = training.micro_loss(model, batch, few, training.base_targets(model, encoded, few, tok.pad_token_id, [False] * 4))
    assert 0 < top_parts["kl"] <= exact_parts["kl"] + 1e-6
    assert top_parts["entropy_pen"] == pytest.approx(exact_parts["entropy_pen"], abs=1e-5)
    # With the whole vocabulary kept the rest bucket is empty, and still the gradient is finite.
    cached.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_kl_uses_the_base_model_on_the_regularised_rows_only(tiny):
    """micro_loss runs the base model only on rows holding a regularised position; its KL term is
    the one computed from a base pass over the whole batch."""
    from reverie.sleep.data import Example, encode
    from reverie.sleep.regularisers import kl_to_base
    from reverie.sleep.train import _positions, collate, log_probs, micro_loss

    tok = tiny.tokenizer
    cfg = load_settings(overrides={"sleep": {"rank": 4, "kl_weight": 1.0, "entropy_weight": 0.0}}).sleep
    model = _moved_lora(tiny, cfg)
    rows = [encode(tok, Example("Rome.", "What is the capital of Italy?", "new"), 100),
            encode(tok, Example("The fox jumps over the dog.", None, "general"), 100),
            encode(tok, Example("Madrid.", "What is the capital of Spain?", "new"), 100)]
    batch = collate(rows, tok.pad_token_id)
    _, parts = micro_loss(model, batch, cfg)
    learn, reg = _positions(batch, True)
    with torch.no_grad():
        adapted = log_probs(model, batch, reg)
        with model.disable_adapter():
            base = log_probs(model, batch, reg)
    assert parts["kl"] > 0
    assert abs(parts["kl"] - float(kl_to_base(adapted, base))) < 1e-5


def test_self_replay_paragraphs_are_written_by_the_base_and_replayed(sleepy, monkeypatch):
    """Without a general text, sleep.self_replay has the base model write general paragraphs,
    stored with the night's plan (a resumed night trains on the same) and trained on as general
    text; the same seed writes the same paragraphs."""
    from reverie.sleep import self_replay

    monkeypatch.setenv("REVERIE_SLEEP__EPOCHS", "1")
    monkeypatch.setenv("REVERIE_SLEEP__SELF_REPLAY", "2")
    monkeypatch.setattr(self_replay, "MAX_NEW_TOKENS", 12)
    monkeypatch.setattr(self_replay, "MIN_WORDS", 0)  # the tiny model's replies are not real words
    rv = _rv()
    _add_dreams(rv)

    _killed_in(rv, sleepy, "replay")
    assert rv.store.night(1)["status"] == "interrupted"  # the night had started: it resumes
    phases = set()
    result = _rv().sleep(quiz_file=sleepy, progress=lambda e: phases.add(e.phase))
    assert result.resumed and result.night_id == 1
    texts = json.loads(rv.store.night(1)["config"])["self_replay"]["texts"]
    assert len(texts) == 2 * 6 and "replay" in phases
    assert result.tokens["examples"] == 6 + len(texts)
    assert result.timings["replay"] > 0
    from reverie.models.lora import activate

    with activate(rv.loaded.model, None):
        again = self_replay.write_general(rv.backend, 12, json.loads(rv.store.night(1)["config"])["seed"])
    assert again == texts
