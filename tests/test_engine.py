"""The generation engine (reverie.models.engine) against transformers on a tiny model: the same
logits and greedy texts, prefix reuse that changes nothing but the work, per-row settings, and a
sampler whose top-k / top-p / min-p cut is exactly transformers' cut."""

import pytest
import torch

from reverie.models import SamplingParams, TransformersBackend, load_model
from reverie.models.engine import Engine, Sampling, sample, supports

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France? Tell me about its history and rivers."}],
    "Paris is",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a joke about a cat"}],
    [{"role": "user", "content": "What is the capital of France? Tell me about its bridges."}],
]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir, tmp_path_factory):
    return load_model(str(tiny_model_dir), tmp_path_factory.mktemp("models"))


def _texts(gens):
    return [g.text for g in gens]


def test_supported_models_use_the_engine(loaded):
    assert supports(loaded.model)
    assert TransformersBackend(loaded).engine is not None
    assert TransformersBackend(loaded, engine=False).engine is None
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50))
    assert not supports(gpt2)  # other architectures go through transformers' generate


def test_prefill_logits_match_the_full_forward_pass(loaded):
    """Right-aligned rows of different lengths, some reusing a cached prefix: each row's logits
    are the model's own logits for that prompt alone."""
    tok, model = loaded.tokenizer, loaded.model
    ids = [tok(TransformersBackend(loaded).format(p), add_special_tokens=False)["input_ids"] for p in PROMPTS]
    engine = Engine(model, {tok.eos_token_id})
    arrays = [torch.tensor(i).numpy() for i in ids]
    with torch.inference_mode():
        engine._remember(arrays[:1], engine._prefill(arrays[:1], 0)[1], len(arrays[0]))  # cache prompt 0
        order, _, _, logits = engine._prefill(arrays, 4)
        assert engine.stats["reused_tokens"] > 0  # prompts 0 and 3 share their opening
        for row, i in enumerate(order):
            alone = model(input_ids=torch.tensor([ids[i]])).logits[0, -1]
            torch.testing.assert_close(logits[row], alone, atol=1e-4, rtol=1e-4)
        # Fully cached prompts: a window of one token per row (not the decode path).
        engine._remember(arrays, engine._prefill(arrays, 0)[1], max(len(a) for a in arrays))
        order, _, _, logits = engine._prefill(arrays[:2], 0)
        for row, i in enumerate(order):
            alone = model(input_ids=torch.tensor([ids[i]])).logits[0, -1]
            torch.testing.assert_close(logits[row], alone, atol=1e-4, rtol=1e-4)


def test_greedy_texts_match_transformers_generate(loaded):
    fast, slow = TransformersBackend(loaded, batch_size=3), TransformersBackend(loaded, batch_size=3, engine=False)
    greedy = SamplingParams(temperature=0, max_new_tokens=10)
    want = _texts(slow.generate(PROMPTS, greedy))
    assert _texts(fast.generate(PROMPTS, greedy)) == want
    assert _texts(fast.generate(PROMPTS, greedy)) == want  # again, now reusing cached prefixes
    assert fast.engine.stats["reused_tokens"] > 0


def test_repetition_penalty_matches_transformers(loaded):
    fast, slow = TransformersBackend(loaded, batch_size=1), TransformersBackend(loaded, batch_size=1, engine=False)
    p = SamplingParams(temperature=0, repetition_penalty=1.5, max_new_tokens=12)
    assert _texts(fast.generate(PROMPTS, p)) == _texts(slow.generate(PROMPTS, p))


def test_lora_adapter_layers_are_applied(loaded, tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    fresh = load_model(str(tiny_model_dir), tmp_path)
    torch.manual_seed(0)
    fresh.model = get_peft_model(fresh.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                                                         init_lora_weights=False))
    fresh.model.eval()
    greedy = SamplingParams(temperature=0, max_new_tokens=8)
    adapted = _texts(TransformersBackend(fresh).generate(PROMPTS, greedy))
    assert adapted == _texts(TransformersBackend(fresh, engine=False).generate(PROMPTS, greedy))
    assert adapted != _texts(TransformersBackend(loaded).generate(PROMPTS, greedy))


def test_mixed_settings_share_a_batch(loaded):
    """Each row keeps its own settings: a greedy row gives its greedy text whatever shares its
    batch, lengths and stop strings are per row, and the call is reproducible by its seed."""
    backend = TransformersBackend(loaded, batch_size=4)
    greedy = SamplingParams(temperature=0, max_new_tokens=10)
    alone = backend.generate(PROMPTS[:1], greedy)[0]
    params = [greedy, SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=3),
              SamplingParams(temperature=0.8, min_p=0.1, top_k=5, repetition_penalty=1.2, max_new_tokens=7),
              SamplingParams(temperature=1.0, max_new_tokens=10, stop=[alone.text[:1] or "a"])]
    a = backend.generate_mixed(PROMPTS, params, seed=5)
    b = backend.generate_mixed(PROMPTS, params, seed=5)
    assert _texts(a) == _texts(b)
    assert a[0].text == alone.text
    assert a[1].n_tokens <= 3 and a[2].n_tokens <= 7
    assert (alone.text[:1] or "a") not in a[3].text


def _hf_kept(probs: torch.Tensor, top_k: int, top_p: float, min_p: float) -> set[int]:
    from transformers.generation.logits_process import MinPLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = probs.log()[None]
    if top_k > 0:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    if min_p > 0:
        scores = MinPLogitsWarper(min_p)(None, scores)
    return set(torch.isfinite(scores[0]).nonzero().squeeze(1).tolist())


@pytest.mark.parametrize(("top_k", "top_p", "min_p"), [
    (0, 0.9, 0.0),  # flat tail: the cut lies beyond the 256-token shortlist (fallback path)
    (0, 0.3, 0.0),  # decided inside the shortlist
    (0, 1.0, 0.5),
    (400, 1.0, 0.0),  # top-k wider than the shortlist
    (20, 0.95, 0.05),
])
def test_sampler_cut_is_exactly_transformers_cut(top_k, top_p, min_p):
    """Drawn tokens all lie in transformers' kept set, and (with enough draws) cover it."""
    V = 6000
    g = torch.Generator().manual_seed(0)
    logits = torch.cat([torch.linspace(6, 3, 40), torch.linspace(0.5, 0.0, V - 40)])  # a head, a long flat tail
    logits = logits[torch.randperm(V, generator=g)]
    kept = _hf_kept(torch.softmax(logits, -1), top_k, top_p, min_p)
    rows = 20000
    params = [SamplingParams(temperature=1.0, top_k=top_k, top_p=top_p, min_p=min_p)] * rows
    drawn = sample(logits.expand(rows, V).clone(), Sampling.of(params), torch.rand(rows, generator=g))
    got = set(drawn.tolist())
    assert len(got - kept) <= 1  # at most the boundary token, where float sums in another order may differ
    if len(kept) <= 400:
        assert len(kept - got) <= 1
    else:
        assert len(got) > 0.5 * len(kept)  # spread over the kept set, not a corner of it


def test_continuous_batching_changes_nothing_but_the_work(loaded):
    """Rows that finish make room for waiting prompts, merged into the running batch: every text
    is the one it gets alone (greedy: transformers' own; sampled: its own stream's), whatever
    the batch size, and follow-up requests made by `done` run too."""
    from reverie.models.engine import Request

    prompts = PROMPTS * 3
    params = [SamplingParams(temperature=0, max_new_tokens=2 + 3 * (i % 4)) for i in range(len(prompts))]
    slow = TransformersBackend(loaded, engine=False)
    want = [slow.generate([p], q)[0].text for p, q in zip(prompts, params, strict=True)]
    for size in (2, 5):  # 12 prompts through 2 or 5 rows: several merges each
        got = TransformersBackend(loaded, batch_size=size).generate_mixed(prompts, params, seed=0)
        assert _texts(got) == want
    sampled = [SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=2 + 3 * (i % 4)) for i in range(12)]
    by_size = [_texts(TransformersBackend(loaded, batch_size=n).generate_mixed(prompts, sampled, seed=3))
               for n in (1, 3, 12)]
    assert by_size[0] == by_size[1] == by_size[2]

    backend = TransformersBackend(loaded, batch_size=3)
    ids = [loaded.tokenizer(backend.format(p), add_special_tokens=False)["input_ids"] for p in PROMPTS]
    queue = [Request(x, params[i], 7, None, ("first", i)) for i, x in enumerate(ids)]  # rows end at different steps
    penalised = SamplingParams(temperature=0, repetition_penalty=1.3, max_new_tokens=6)  # merged into rows without
    results = {}

    def pull(n):
        taken = queue[:n]
        del queue[:n]
        return taken

    def done(r, out):
        results[r.tag] = out.ids
        if r.tag[0] == "first":  # a second step, as a dream generator's answer follows its question
            queue.append(Request(list(r.ids) + out.ids, penalised, 8, None, ("second", r.tag[1])))

    with torch.inference_mode():
        backend.engine.serve(pull, done, max_rows=3)
    assert len(results) == 8
    for i, x in enumerate(ids):
        follow = slow.generate([loaded.tokenizer.decode(x + results[("first", i)])], penalised)[0].text
        assert loaded.tokenizer.decode(results[("second", i)], skip_special_tokens=True).strip() == follow


def test_bfloat16_models_generate(tiny_model_dir, tmp_path):
    bf16 = load_model(str(tiny_model_dir), tmp_path, dtype="bfloat16")
    gens = TransformersBackend(bf16, batch_size=2).generate(PROMPTS, SamplingParams(temperature=1.0, max_new_tokens=5))
    assert all(g.n_tokens <= 5 for g in gens) and any(g.n_tokens for g in gens)
