"""The gate: keep a candidate adapter only if the model learned and did not forget or collapse.

    verdict = decide(base, reference, candidate, settings.sleep)   # QuizResults (reverie.quiz.run)
    verdict.keep, verdict.checks    # [Check(name, passed, detail), ...]

Checks, each against a figure measured on the same inputs:
- learned: quiz accuracy (answer contained) is strictly higher than the reference's, the model the
  user has now (the last kept adapter, or the base model on the first night);
- forgetting: general-text perplexity at most `max_perplexity_rise` above the base model's
  (default +5%), against the base so that drift cannot accumulate night after night;
- diversity: probe Vendi score at most `max_vendi_drop` below the base model's (default -10%);
- length: mean probe answer length (tokens) within `max_length_change` of the base model's
  (default +-20%): a night that teaches short answers ("Super Bowl" for "Tell me a joke.") can
  raise Vendi, since short random phrases embed far apart, but not keep its length;
- drift: KL(base || candidate) per token on the base model's own probe answers at most
  `max_probe_kl` (default 0.2 nats): how much less likely the candidate finds what the base says;
  without a general text it is the check that tracks forgetting of real text (docs/LOG.md);
- retained: accuracy on earlier nights' held-out questions at least (1 - `max_retention_drop`)
  of the reference's (default 70%): a night may not buy today's facts with last week's.
Before the quiz, the night looks for the strongest adapter strength (`sleep.strengths`) that
passes every check but `learned` (`bounds`; reverie.sleep.night.choose_strength), and the verdict
is taken at that strength. A candidate whose training diverged (non-finite weights) is rejected
unmeasured. A figure that was not measured (no general text given, no probe prompts) is reported
as not checked and does not block; a missing quiz does block, since nothing shows the night helped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Verdict:
    keep: bool
    checks: list[Check]

    @property
    def reasons(self) -> list[str]:
        """Why the candidate was rejected (empty when kept)."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]


def decide(base, reference, candidate, cfg) -> Verdict:
    """`candidate` is None when training diverged (weights not finite): nothing to measure."""
    if candidate is None:
        return Verdict(False, [Check("finite", False, "training diverged: the adapter's weights are not finite")])
    checks = []
    if candidate.accuracy is None:
        checks.append(Check("learned", False, "no quiz questions, so no evidence the night helped"))
    else:
        checks.append(Check(
            "learned", candidate.accuracy > reference.accuracy,
            f"quiz accuracy {reference.accuracy:.1%} ({reference.label}) -> {candidate.accuracy:.1%}",
        ))
    checks += bounds(base, candidate, cfg)
    checks.append(_retained(reference, candidate, cfg))
    return Verdict(all(c.passed for c in checks), checks)


def bounds(base, candidate, cfg) -> list[Check]:
    """The forgetting, diversity, length and drift checks (no quiz needed): how strong a candidate may be."""
    checks = []
    if base.perplexity is None or candidate.perplexity is None:
        checks.append(Check("forgetting", True, "perplexity not checked (no general text)"))
    else:
        limit = base.perplexity * (1 + cfg.max_perplexity_rise)
        checks.append(Check(
            "forgetting", candidate.perplexity <= limit,
            f"perplexity {base.perplexity:.2f} (base) -> {candidate.perplexity:.2f}, limit {limit:.2f}",
        ))
    if base.vendi is None or candidate.vendi is None:
        checks.append(Check("diversity", True, "probe Vendi not checked"))
    else:
        floor = base.vendi * (1 - cfg.max_vendi_drop)
        checks.append(Check(
            "diversity", candidate.vendi >= floor,
            f"probe Vendi {base.vendi:.2f} (base) -> {candidate.vendi:.2f}, floor {floor:.2f}",
        ))
    return checks + [_length(base, candidate, cfg), _drift(candidate, cfg)]


def _length(base, candidate, cfg) -> Check:
    if base.answer_tokens is None or candidate.answer_tokens is None:
        return Check("length", True, "probe answer length not checked")
    change = cfg.max_length_change
    low, high = base.answer_tokens * (1 - change), base.answer_tokens * (1 + change)
    return Check(
        "length", low <= candidate.answer_tokens <= high,
        f"probe answers {base.answer_tokens:.1f} tokens (base) -> {candidate.answer_tokens:.1f}, "
        f"allowed {low:.1f} to {high:.1f}",
    )


def _drift(candidate, cfg) -> Check:
    if candidate.probe_kl is None:
        return Check("drift", True, "KL from the base model not checked")
    return Check(
        "drift", candidate.probe_kl <= cfg.max_probe_kl,
        f"KL(base || candidate) {candidate.probe_kl:.3f} nats/token on the base's probe answers, "
        f"limit {cfg.max_probe_kl:g}",
    )


def _retained(reference, candidate, cfg) -> Check:
    if not candidate.n_retained or reference.retained is None or candidate.retained is None:
        return Check("retained", True, "retention not checked (no earlier nights' questions)")
    floor = reference.retained * (1 - cfg.max_retention_drop)
    return Check(
        "retained", candidate.retained >= floor,
        f"earlier nights' questions {reference.retained:.1%} ({reference.label}) -> {candidate.retained:.1%}, "
        f"floor {floor:.1%} of {candidate.n_retained}",
    )
