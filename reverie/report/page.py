"""The nights report: every night in a home's store on one self-contained HTML page.

    from reverie.report import night_page, write_page
    page = night_page(store, embedder=None, home=home)   # embedder draws the dream map; None skips it
    write_page(page, home / "reports" / "report.html")

From the command line: `reverie report [--out PATH] [--no-map]`. Sections: the timeline of the
gate's figures with its bounds, a row per night with its verdict and reasons, each night's dream
set by generator with the drop reasons, the map of the dreams, saved probe answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path

from reverie.errors import ReverieError
from reverie.report import html as h
from reverie.report.dream_map import dream_map
from reverie.report.nights import DROP, PARTS, RISE, Night, ProbeRun, load_nights, night_dream_set, probe_runs
from reverie.report.svg import GREY, PALETTE, RED, Series, line_chart, percent, stacked_bars

PART_COLOURS = ("#1f77b4", "#9ecae1", "#2ca02c", "#d9d9d9")  # trained, replayed, quiz, dropped
PROBE_PROMPTS, PROBE_EXAMPLES = 3, 3


def night_page(store, embedder=None, home: Path | str | None = None) -> str:
    nights = load_nights(store)
    if not nights:
        return h.document("reverie: no nights yet", [_no_nights()], subtitle=str(home or ""))
    counts = {s: sum(n.status == s for n in nights) for s in ("kept", "rejected", "running", "interrupted", "failed")}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    subtitle = (f"{home} · " if home else "") + f"{summary} · written {datetime.now():%Y-%m-%d %H:%M}"
    svg, note = dream_map(store, embedder)
    parts = [
        h.section("Timeline", _timeline(nights)),
        h.section("Nights", _rows(nights)),
        h.section("Dreams by night", _dream_sets(store, nights)),
        h.section("Map of the dreams", h.paragraph(note, "note"), h.charts(h.figure("dreams and their sources", svg))
                  if svg else ""),
        h.section("Probe answers, before and after", _probe_answers(store, nights)),
    ]
    title = f"reverie: {len(nights)} night{'s' if len(nights) != 1 else ''}"
    return h.document(title, parts, subtitle=subtitle)


def _no_nights() -> str:
    return h.section("No nights yet", h.Raw(
        "<p>A night dreams over what the model read, trains an adapter on the dreams and keeps it only "
        "if the gate passes. Read something, sleep, then write this report again:</p>"
        "<pre><code>reverie read ~/notes\nreverie sleep\nreverie report</code></pre>"))


def _timeline(nights: Sequence[Night]) -> str:
    measured = [n for n in nights if n.figures("base") or n.figures("candidate")]
    rejected = frozenset(n.id for n in measured if n.status == "rejected")

    def points(which: str, key: str) -> list[tuple[float, float | None]]:
        return [(n.id, n.figure(which, key)) for n in measured]

    def bound(key: str, default: float) -> list[tuple[float, float | None]]:
        return [(n.id, n.bound(key, default)) for n in measured]

    accuracy = [Series("candidate, new questions", points("candidate", "accuracy"), PALETTE[0], hollow=rejected)]
    if any(y is not None for _, y in points("candidate", "retained")):  # nights that re-asked earlier questions
        accuracy.append(Series("candidate, earlier nights' questions", points("candidate", "retained"), PALETTE[2],
                               hollow=rejected))
    accuracy.append(Series("base model, new questions", points("base", "accuracy"), GREY))
    if any(y is not None for _, y in points("candidate", "lookup_accuracy")):  # nights that answered with lookup too
        accuracy.append(Series("candidate, with lookup", points("candidate", "lookup_accuracy"), PALETTE[4],
                               hollow=rejected))
        accuracy.append(Series("base model, with lookup", points("base", "lookup_accuracy"), GREY, dashed=True))
    ceiling = bound("perplexity", RISE)
    perplexity = [Series("candidate", points("candidate", "perplexity"), PALETTE[1], hollow=rejected),
                  Series("base model", points("base", "perplexity"), GREY),
                  Series("gate's ceiling", ceiling, RED, dashed=True, dots=False)]
    vendi = [Series("candidate", points("candidate", "vendi"), PALETTE[3], hollow=rejected),
             Series("base model", points("base", "vendi"), GREY),
             Series("gate's floor", bound("vendi", DROP), RED, dashed=True, dots=False)]
    # A diverged night's perplexity can be 1e60: past twice the ceiling it is drawn at the edge.
    ceilings = [y for _, y in ceiling if y is not None]
    cap = 2 * max(ceilings) if ceilings else None
    texts = [n.forgetting_text for n in measured if n.forgetting_text]
    where = h.paragraph(f"The latest night measured perplexity on {texts[-1]}.", "note") if texts else ""
    figures = [
        h.figure("Quiz accuracy, closed book and with lookup (higher is better)",
                 line_chart("chart-accuracy", "quiz accuracy", accuracy, percent, y_range=(0.0, 1.0))),
        h.figure("Perplexity on general text: forgetting (lower is better)",
                 line_chart("chart-perplexity", "perplexity", perplexity, cap=cap)),
        h.figure("Probe Vendi score: diversity of answers (higher is better)",
                 line_chart("chart-vendi", "probe Vendi", vendi)),
    ]
    if any(y is not None for _, y in points("candidate", "answer_logp")):  # nights since the gate tests them
        figures.append(h.figure(
            "What the gate tests: the gold answers' log-prob a token, closed book (higher is better)",
            line_chart("chart-likelihood", "gold answers' log-prob", _likelihood(measured, rejected))))
    return where + h.charts(*figures)


def _likelihood(nights: Sequence[Night], rejected: frozenset) -> list[Series]:
    """The candidate against the model in use before it (the gate's pair: the adapter kept last, or
    the base model), on tonight's questions and on earlier nights'."""
    def points(key: str, before: bool = False) -> list[tuple[float, float | None]]:
        which = lambda n: ("reference" if n.figures("reference") else "base") if before else "candidate"  # noqa: E731
        return [(n.id, n.figure(which(n), key)) for n in nights]

    series = [Series("candidate, new questions", points("answer_logp"), PALETTE[0], hollow=rejected),
              Series("in use before, new questions", points("answer_logp", before=True), GREY)]
    if any(y is not None for _, y in points("retained_logp")):
        series += [Series("candidate, earlier nights' questions", points("retained_logp"), PALETTE[2], hollow=rejected),
                   Series("in use before, earlier nights' questions", points("retained_logp", before=True), GREY,
                          dashed=True)]
    return series


def _rows(nights: Sequence[Night]) -> str:
    rows = []
    for n in nights:
        reasons = h.Raw("<br>".join(escape(r) for r in n.reasons)) if n.reasons else "—"
        strength = "" if n.strength is None else f"{n.strength:g}"
        seconds = "" if n.seconds is None else f"{n.seconds:.0f}"
        rows.append([n.id, n.date, h.badge(n.status), strength, reasons, seconds])
    return h.table(["night", "started (UTC)", "verdict", "strength", "reasons", "seconds"], rows, numeric=(0, 3, 5),
                   cls="nights")


def _dream_sets(store, nights: Sequence[Night]) -> str:
    blocks = []
    for n in reversed(nights):  # the latest night first, open
        ds = night_dream_set(store, n)
        if not ds.total:
            continue
        totals = {p: sum(c[p] for c in ds.by_generator.values()) for p in PARTS}
        summary = f"night {n.id} ({n.status}): {ds.total} dreams, " + ", ".join(f"{v} {p}" for p, v in totals.items())
        rows = [(g, [c[p] for p in PARTS]) for g, c in sorted(ds.by_generator.items())]
        chart = stacked_bars(f"chart-dreams-{n.id}", f"night {n.id}'s dreams by generator", rows,
                             list(zip(PARTS, PART_COLOURS, strict=True)))
        reasons = h.table(["drop reason", "dreams", "for example"],
                          [[k, v, ds.examples[k]] for k, v in ds.reasons.most_common(8)], numeric=(1,)) \
            if ds.reasons else h.paragraph("No dream was dropped.", "note")
        blocks.append(f"<details{' open' if not blocks else ''}><summary>{escape(summary)}</summary>"
                      + h.charts(h.figure("dreams by generator", chart)) + reasons + "</details>")
    return "".join(blocks) or h.paragraph("No night has dreams recorded.", "note")


def _probe_answers(store, nights: Sequence[Night]) -> str:
    """What the model says to the probe's prompts: the base model beside the last kept night's
    adapter (and the latest night's candidate when it was rejected), from the nights' figures;
    homes whose nights kept no answers show probe runs saved with `reverie probe --save`."""
    runs = _night_probes(nights)
    if runs:
        note = h.paragraph("One answer from each of the largest clusters of the gate's probe (temperature "
                           "sampling, the same draws for every model).", "note")
    else:
        note = h.paragraph(h.Raw(
            "No night kept its probe answers. Probe runs saved with <code>reverie probe --prompts FILE "
            "--save LABEL [--night N]</code> are shown here, the first beside the last."), "note")
        saved = probe_runs(store)
        runs = [saved[0]] if len(saved) == 1 else saved[:1] + saved[-1:]
    if not runs:
        return note
    shared = [p for p in runs[0].examples if all(p in r.examples for r in runs)][:PROBE_PROMPTS] \
        or list(runs[0].examples)[:PROBE_PROMPTS]

    def cell(run, prompt: str) -> h.Raw:
        said = run.examples.get(prompt, [])[:PROBE_EXAMPLES]
        return h.Raw("".join(f"<blockquote>{escape(a)}</blockquote>" for a in said) or "—")

    def head(run) -> str:
        return f"{run.label} ({run.created_at[:10]}{f', night {run.night_id}' if run.night_id else ''})"

    rows = [[p, *(cell(r, p) for r in runs)] for p in shared]
    return note + h.table(["prompt", *(head(r) for r in runs)], rows, cls="probe")


def _night_probes(nights: Sequence[Night]) -> list[ProbeRun]:
    """The base model's probe answers, the last kept night's and the latest night's if rejected."""
    def run(n: Night, which: str, label: str) -> ProbeRun | None:
        examples = n.figures(which).get("probe_examples")
        return ProbeRun(n.id, label, n.id, n.started_at or "", examples) if isinstance(examples, dict) and examples \
            else None

    base = next((r for n in nights if (r := run(n, "base", "base model"))), None)
    kept = next((r for n in reversed(nights) if n.status == "kept" and (r := run(n, "candidate", f"night-{n.id}, kept"))),
                None)
    latest = nights[-1] if nights else None
    rejected = run(latest, "candidate", f"night-{latest.id}, rejected") if latest and latest.status == "rejected" else None
    return [r for r in (base, kept, rejected) if r is not None] if base or kept else []


def default_path(home: Path | str) -> Path:
    return Path(home) / "reports" / f"report-{datetime.now():%Y%m%d-%H%M%S}.html"


def write_page(page: str, path: Path | str) -> Path:
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ReverieError(f"cannot write the report {path}: {exc.strerror or exc}") from None
    return path
