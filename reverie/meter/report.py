"""Rich tables for `reverie meter` and `reverie probe`.

    console.print(meter_table({"a.jsonl": metrics_a, "b.jsonl": metrics_b}))  # one column per set
    console.print(comparison_table(compare_per_chunk(...)))                     # per chunk, equal count
    for part in probe_report(result): console.print(part)
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from reverie.meter.probe import ProbeResult

# (key in meter_texts' dict, label, format); a missing key is left out of the table.
METRIC_ROWS: list[tuple[str, str, str]] = [
    ("n_texts", "texts", "{:d}"),
    ("mean_tokens", "tokens per text", "{:.1f}"),
    ("distinct_1", "distinct-1", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("distinct_3", "distinct-3", "{:.3f}"),
    ("distinct_4", "distinct-4", "{:.3f}"),
    ("compression_ratio", "compression ratio", "{:.2f}"),
    ("self_bleu", "self-BLEU", "{:.3f}"),
    ("self_repetition", "self-repetition", "{:.3f}"),
    ("vendi", "Vendi score", "{:.2f}"),
    ("mean_cosine_distance", "mean cosine distance", "{:.3f}"),
    ("n_clusters", "semantic clusters", "{:d}"),
    ("cluster_sizes", "largest clusters", "sizes"),
    ("rare_word_rate", "rare-word rate", "{:.3f}"),
    ("degenerate_rate", "degenerate texts", "{:.1%}"),
    ("perplexity", "perplexity", "{:.1f}"),
    ("perplexity_median", "perplexity (median)", "{:.1f}"),
    ("next_token_entropy", "first-token entropy (nats)", "{:.3f}"),
    ("kl_base_adapted", "KL(base || adapted)", "{:.4f}"),
]

CLUSTER_ROWS = 20  # clusters shown with an example; a diverse probe has as many as answers

# Columns of the per-prompt table of a probe over several prompts.
PROBE_COLUMNS: list[tuple[str, str, str]] = [
    ("n_distinct", "distinct", "{:.3g}"),
    ("answer_tokens", "tokens", "{:.1f}"),
    ("vendi", "Vendi", "{:.2f}"),
    ("self_bleu", "self-BLEU", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("degenerate_rate", "degenerate", "{:.0%}"),
]


def _fmt(fmt: str, value) -> str:
    if value is None:
        return "-"
    if fmt == "sizes":
        return ", ".join(str(v) for v in value[:4]) + (", …" if len(value) > 4 else "")
    if fmt == "{:d}":
        return f"{int(value):d}"
    return fmt.format(value)


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def meter_table(columns: dict[str, dict]) -> Table:
    """Metrics side by side: one row per metric, one column per named set."""
    table = Table(show_header=True, header_style="bold")
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key, label, fmt in METRIC_ROWS:
        if any(key in m for m in columns.values()):
            table.add_row(label, *(_fmt(fmt, m.get(key)) for m in columns.values()))
    embedders = {m["embedder"] for m in columns.values() if "embedder" in m}
    if embedders:
        table.caption = f"embeddings: {', '.join(sorted(embedders))}"
    return table


# (key in compare_per_chunk's sets, label, format), in the order shown.
COMPARISON_ROWS: list[tuple[str, str, str]] = [
    ("vendi", "Vendi score", "{:.2f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("compression_ratio", "compression ratio", "{:.2f}"),
    ("mean_tokens", "tokens per text", "{:.1f}"),
]


def comparison_table(comparison: dict) -> Table:
    """`compare_per_chunk`'s result: one row per metric (a mean over chunks), one column per set."""
    names = list(comparison["sets"])
    k = comparison["texts_per_chunk"]
    chunks = comparison["chunks"]
    table = Table(
        title=f"{names[0]} vs {names[1]}, per source chunk at equal count",
        show_header=True, header_style="bold",
    )
    table.add_column("mean over chunks")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row("texts per chunk", *(f"{k:.1f}" for _ in names))
    for key, label, fmt in COMPARISON_ROWS:
        if key in comparison["sets"][names[0]]:
            table.add_row(label, *(_fmt(fmt, comparison["sets"][n][key]) for n in names))
    caption = [f"{chunks} chunk{'s' if chunks != 1 else ''}, each side drawn at random to the smaller count"]
    if comparison.get("skipped_chunks"):
        caption.append(f"{comparison['skipped_chunks']} with under two texts on a side left out")
    if "vendi_ratio" in comparison:
        caption.append(f"Vendi {comparison['vendi_ratio']:.2f}x (mean of per-chunk ratios)")
    if "embedder" in comparison:
        caption.append(f"embeddings: {comparison['embedder']}")
    table.caption = "; ".join(caption)
    return table


def probe_report(result: ProbeResult, width: int = 100) -> list:
    """Renderables: a header line, then the clusters of a single prompt (size and one example
    each) with its metrics, or for several prompts one row per prompt and a mean row."""
    s = result.sampling
    how = "greedy" if s["temperature"] <= 0 else f"temperature {s['temperature']}, top-p {s['top_p']}, min-p {s['min_p']}"
    header = Text(
        f"{result.model}{' + ' + result.adapter if result.adapter else ''}: {result.n} answers per prompt, "
        f"{how}, max {s['max_new_tokens']} new tokens, seed {result.seed} ({result.seconds:.0f} s)"
    )
    if len(result.prompts) == 1:
        one = result.prompts[0]
        clusters = Table(
            title=f"{one.n_distinct} distinct answer{'s' if one.n_distinct != 1 else ''} of {result.n}: "
            f"{_one_line(one.prompt, 60)}",
            header_style="bold",
        )
        clusters.add_column("size", justify="right")
        clusters.add_column("example")
        for members in one.clusters[:CLUSTER_ROWS]:
            clusters.add_row(str(len(members)), _one_line(one.answers[members[0]], width))
        if one.n_distinct > CLUSTER_ROWS:
            rest = one.clusters[CLUSTER_ROWS:]
            clusters.add_row(str(sum(len(c) for c in rest)), f"… {len(rest)} more clusters (--json lists them all)")
        return [header, clusters, meter_table({"answers": {**one.metrics, **result.model_metrics}})]
    table = Table(header_style="bold", show_footer=True)
    table.add_column("prompt", footer="mean")
    mean = result.mean()
    for key, label, fmt in PROBE_COLUMNS:
        table.add_column(label, justify="right", footer=_fmt(fmt, mean.get(key)))
    for p in result.prompts:
        values = {"n_distinct": p.n_distinct, "answer_tokens": p.answer_tokens, **p.metrics}
        table.add_row(_one_line(p.prompt, 50), *(_fmt(fmt, values.get(key)) for key, _, fmt in PROBE_COLUMNS))
    model = [f"{label} {_fmt(fmt, result.model_metrics[key])}" for key, label, fmt in METRIC_ROWS
             if key in result.model_metrics]
    return [header, table, Text("; ".join(model))] if model else [header, table]
