"""The gate: keep a candidate adapter only if the model learned and did not forget or collapse.

    verdict = decide(base, reference, candidate, settings.sleep)   # QuizResults (reverie.quiz.run)
    verdict.keep, verdict.checks    # [Check(name, passed, detail), ...]

Checks, each against a figure measured on the same inputs:
- learned: tonight's held-out quiz answers are more likely under the candidate than under the
  reference, the model the user has now (the last kept adapter, or the base model on the first
  night): per question, the gold answer's mean log-probability a token, closed book, paired; a
  one-sided Wilcoxon signed-rank test at `significance` (default 0.05). A count of right answers
  cannot decide this on a night's few dozen questions: one question more or less moved 7 of 10
  verdicts of the many-nights study, while the likelihood rose at p < 0.01 in five of them
  (docs/LOG.md, 2026-12-01). Accuracy is recorded beside it;
- forgetting: general-text perplexity at most `max_perplexity_rise` above the base model's
  (default +5%), against the base so that drift cannot accumulate night after night;
- diversity: probe Vendi score at most `max_vendi_drop` below the base model's (default -10%);
- length: mean probe answer length (tokens) within `max_length_change` of the base model's
  (default +-20%): a night that teaches short answers ("Super Bowl" for "Tell me a joke.") can
  raise Vendi, since short random phrases embed far apart, but not keep its length;
- drift: KL(base || candidate) per token on the base model's own probe answers at most
  `max_probe_kl` (default 0.2 nats): how much less likely the candidate finds what the base says;
  without a general text it is the check that tracks forgetting of real text (docs/LOG.md);
- retained: earlier nights' held-out answers are not less likely under the candidate than under
  the reference (the same test, the other side, rejecting at p below `significance`): a night may
  not buy today's facts with last week's.
Before the quiz, the night looks for the strongest adapter strength (`sleep.strengths`) that
passes the forgetting, diversity, length and drift checks (`bounds`; reverie.sleep.night.choose_strength),
and the quiz, `learned` and `retained` are taken at that strength. A candidate whose training diverged (non-finite weights) is rejected
unmeasured. A figure that was not measured (no general text given, no probe prompts) is reported
as not checked and does not block; a missing quiz does block, since nothing shows the night helped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
    checks = [_learned(reference, candidate, cfg)]
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


@dataclass
class Paired:
    """Two models' per-question figures on the same questions, and a one-sided signed-rank test."""

    before: float  # mean of the reference's
    after: float  # mean of the candidate's
    up: int  # questions where the candidate's is higher
    down: int
    p: float  # p-value of the one-sided test in the direction asked

    @classmethod
    def test(cls, reference: list[float], candidate: list[float], alternative: str) -> Paired:
        from scipy.stats import wilcoxon

        a, b = np.asarray(reference, dtype=float), np.asarray(candidate, dtype=float)
        d = b - a
        # No question moved: no evidence either way (scipy would divide by zero).
        p = float(wilcoxon(d, alternative=alternative).pvalue) if np.any(d != 0) else 1.0
        return cls(float(a.mean()), float(b.mean()), int((d > 0).sum()), int((d < 0).sum()), p)

    @classmethod
    def learned(cls, reference: list[float], candidate: list[float]) -> Paired:
        """The `learned` test: the candidate's answers likelier (pass when p < significance)."""
        return cls.test(reference, candidate, "greater")

    @classmethod
    def forgot(cls, reference: list[float], candidate: list[float]) -> Paired:
        """The `retained` test: the candidate's answers less likely (fail when p < significance)."""
        return cls.test(reference, candidate, "less")


def _learned(reference, candidate, cfg) -> Check:
    if candidate.accuracy is None:
        return Check("learned", False, "no quiz questions, so no evidence the night helped")
    if not candidate.answer_logp or len(reference.answer_logp) != len(candidate.answer_logp):
        return Check("learned", False, "the answers' likelihood was not measured on the same questions")
    n, alpha = len(candidate.answer_logp), cfg.significance
    accuracy = f"accuracy {reference.accuracy:.1%} ({reference.label}) -> {candidate.accuracy:.1%}"
    if 0.5 ** n >= alpha:  # the smallest p a signed-rank test on n questions gives: all n up
        need = math.floor(math.log2(1 / alpha)) + 1
        return Check("learned", False, f"{n} held-out question{'s' * (n != 1)} cannot show learning at p < {alpha:g}: "
                     f"the paired test needs at least {need} (read more, or quiz with --quiz); {accuracy}")
    t = Paired.learned(reference.answer_logp, candidate.answer_logp)
    return Check(
        "learned", t.p < alpha,
        f"held-out answers' log-prob a token {t.before:.2f} ({reference.label}) -> {t.after:.2f}, higher for "
        f"{t.up} of {n} (signed-rank p {t.p:.3g}, needs < {alpha:g}); {accuracy}",
    )


def _retained(reference, candidate, cfg) -> Check:
    if not candidate.n_retained or not candidate.retained_logp or len(reference.retained_logp) != len(
            candidate.retained_logp):
        return Check("retained", True, "retention not checked (no earlier nights' questions)")
    t = Paired.forgot(reference.retained_logp, candidate.retained_logp)
    return Check(
        "retained", t.p >= cfg.significance,
        f"earlier nights' answers' log-prob a token {t.before:.2f} ({reference.label}) -> {t.after:.2f}, lower "
        f"for {t.down} of {candidate.n_retained} (signed-rank p {t.p:.3g}, rejected below {cfg.significance:g}); "
        f"accuracy {reference.retained:.1%} -> {candidate.retained:.1%}",
    )
