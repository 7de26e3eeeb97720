"""The many-nights study on one page: a chart per metric, a line per arm, the base model and the
gate's bound drawn across.

    from reverie.report import study_page, write_page
    write_page(study_page(study), "bench/out/nights.html")   # what `bench/nights.py --report` does

`study` is {"title", "settings": {...}, "base": {metric: value}, "bounds": {"max_perplexity_rise",
"max_vendi_drop"}, "arms": {arm: [row, ...]}}, each row {"night", a value per metric, "kept",
optionally "train_meter": {...}}. Any key may be missing or None: that point is not drawn.
"""

from __future__ import annotations

import json

from reverie.report import html as h
from reverie.report.nights import DROP, RISE, numeric
from reverie.report.svg import GREY, PALETTE, RED, Series, line_chart, number, percent

# (key, caption, format, which bound applies)
METRICS = (
    ("accuracy_all", "Closed-book accuracy on every passage read so far", percent, None),
    ("accuracy_first", "Accuracy on the first night's passages: retention", percent, None),
    ("logp_first", "First night's gold answers: log-prob a token, closed book (retention, smooth)", number, None),
    ("perplexity", "WikiText perplexity: forgetting (lower is better)", number, "ceiling"),
    ("vendi", "Probe Vendi score: diversity (higher is better)", number, "floor"),
    ("distinct_2", "Probe distinct-2 (higher is more varied)", number, None),
    ("compression_ratio", "Probe compression ratio (higher is more repetitive)", number, None),
    ("n_distinct", "Probe distinct answers per prompt", number, None),
)
TRAIN_METRICS = (  # the meter of each night's training set, when the study recorded it
    ("vendi", "Training set Vendi score"),
    ("distinct_2", "Training set distinct-2"),
    ("compression_ratio", "Training set compression ratio"),
    ("self_bleu", "Training set self-BLEU (higher is more alike)"),
)
ARM_COLOURS = {"naive": "#ff7f0e", "accumulate": "#9467bd", "reverie": "#1f77b4"}


def _value(row: dict, key: str, train: bool = False) -> float | None:
    source = row.get("train_meter") if train else row
    return numeric(source.get(key)) if isinstance(source, dict) else None


def study_page(study: dict) -> str:
    arms = {str(name): [r for r in rows or [] if isinstance(r, dict) and _value(r, "night") is not None]
            for name, rows in (study.get("arms") or {}).items()}
    colours = {a: ARM_COLOURS.get(a, PALETTE[i % len(PALETTE)]) for i, a in enumerate(arms)}
    nights = [r["night"] for rows in arms.values() for r in rows]
    span = (min(nights), max(nights)) if nights else (0, 1)
    base, bounds = study.get("base") or {}, study.get("bounds") or {}
    rise, drop = _value(bounds, "max_perplexity_rise"), _value(bounds, "max_vendi_drop")

    def arm_series(key: str, train: bool = False) -> list[Series]:
        return [Series(a, [(r["night"], _value(r, key, train)) for r in rows], colours[a],
                       hollow=frozenset(r["night"] for r in rows if r.get("kept") is False))
                for a, rows in arms.items()]

    def across(label: str, value, colour: str, dashed: bool) -> list[Series]:
        """A horizontal line over every night: the base model, or the gate's bound."""
        if value is None:
            return []
        return [Series(label, [(span[0], value), (span[1], value)], colour, dashed=dashed, dots=False)]

    figures = []
    for key, caption, fmt, bound in METRICS:
        b = _value(base, key)
        series = arm_series(key) + across("base model", b, GREY, False)
        if bound == "ceiling" and b is not None:
            series += across("gate's ceiling", b * (1 + (RISE if rise is None else rise)), RED, True)
        if bound == "floor" and b is not None:
            series += across("gate's floor", b * (1 - (DROP if drop is None else drop)), RED, True)
        y_range = (0.0, 1.0) if fmt is percent else None
        figures.append(h.figure(caption, line_chart(f"chart-{key}", caption, series, fmt, y_range=y_range)))
    train = [h.figure(caption, line_chart(f"chart-train-{key}", caption, arm_series(key, train=True)))
             for key, caption in TRAIN_METRICS
             if any(_value(r, key, train=True) is not None for rows in arms.values() for r in rows)]
    settings = study.get("settings") or {}
    parts = [h.section("Every night, every arm", h.charts(*figures))]
    if train:
        parts.append(h.section("What each night trained on", h.charts(*train)))
    parts.append(h.section("Settings", h.table(["setting", "value"], [
        [k, v if isinstance(v, str) else json.dumps(v)] for k, v in settings.items()]) if settings
        else h.paragraph("No settings recorded.", "note")))
    hollow = h.paragraph("Hollow red dots: nights whose adapter the gate rejected (reverie arm).", "note")
    return h.document(study.get("title") or "reverie: many nights", [hollow, *parts],
                      subtitle=", ".join(f"{a}: {len(rows)} nights" for a, rows in arms.items()))
