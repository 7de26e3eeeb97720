"""`reverie meter FILE...` (set metrics of text files) and `reverie probe` (how many distinct answers
does the model give?). Thin: the work is in `reverie.meter`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from reverie.cli.app import app, console, live_progress, notice, reverie, warn
from reverie.errors import ReverieError
from reverie.progress import counter


def _check_night(rv, night: int | None, save: str | None) -> None:
    if night is None:
        return
    if save is None:
        raise ReverieError("--night attaches saved results to a night: use it with --save LABEL")
    if rv.store.night(night) is None:
        raise ReverieError(f"night {night} does not exist")


def _column_names(files: list[Path]) -> list[str]:
    names = [f.name for f in files]
    return names if len(set(names)) == len(names) else [str(f) for f in files]


@app.command("meter")
def meter_cmd(
    files: list[Path] = typer.Argument(
        ..., help="Sets to measure: .jsonl/.ndjson (one JSON object per line) or plain text (one text per line)."
    ),
    field: str = typer.Option("text", "--field", help="The JSON field that holds the text."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON ({file: metrics}) instead of a table."),
    save: str | None = typer.Option(None, "--save", help="Save the results in the store under this label."),
    night: int | None = typer.Option(None, "--night", help="Attach the saved results to this night (and its dreams)."),
    perplexity: bool = typer.Option(
        False, "--perplexity", help="Also measure perplexity under the reference model (the configured model)."
    ),
    reference_model: str | None = typer.Option(
        None, "--reference-model", help="Model for perplexity: 'default', a directory or a .gguf; implies --perplexity."
    ),
    embedder: str | None = typer.Option(None, "--embedder", help="auto (MiniLM if installed), minilm or tfidf."),
    threshold: float | None = typer.Option(None, "--threshold", help="Cosine similarity that makes two texts one cluster."),
) -> None:
    """Diversity of text sets, side by side: distinct-n, compression, self-BLEU, self-repetition,
    Vendi, semantic clusters, rare words, degenerate loops.

    No language model is loaded unless perplexity is asked for (--perplexity or --reference-model):
    the other metrics need only the small embedding model, and metering a file stays quick.
    """
    from reverie.meter import meter_texts
    from reverie.meter.embed import make_embedder
    from reverie.meter.inputs import read_texts
    from reverie.meter.report import meter_table

    rv = reverie(meter={"embedder": embedder, "cluster_threshold": threshold}, model={"path": reference_model})
    sets = {name: read_texts(path, field) for name, path in zip(_column_names(files), files, strict=True)}
    for name, texts in sets.items():
        if len(texts) < 2:
            raise ReverieError(f"{name} has {len(texts)} text; the set metrics need at least two")
    try:
        _check_night(rv, night, save)
        cfg = rv.settings.meter
        reference = rv.loaded if (perplexity or reference_model) else None
        emb = make_embedder(cfg.embedder, cfg.max_tokens, cfg.embed_precision, warn)
        results = {}
        for name, texts in sets.items():
            notice(f"metering {name}: {len(texts)} texts, embeddings by {emb.name}")
            results[name] = meter_texts(texts, config=cfg, embedder=emb, reference=reference)
        if save:
            for (name, metrics), path in zip(results.items(), files, strict=True):
                label = save if len(files) == 1 else f"{save}:{name}"
                params = {"file": str(path.resolve()), "field": field, "meter": cfg.model_dump(),
                          "reference": reference.identity if reference else None}
                run_id = rv.store.add_meter_run("meter", label, metrics, params, night)
                notice(f"saved meter run {run_id} as {label!r}")
    finally:
        rv.close()
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        console.print(meter_table(results))


@app.command("probe")
def probe_cmd(
    prompt: list[str] | None = typer.Option(None, "--prompt", help="A prompt (repeat for several)."),
    prompts_file: Path | None = typer.Option(
        None, "--prompts", help="JSONL file of prompts, field 'prompt' (or 'text')."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N prompts of --prompts."),
    n: int = typer.Option(10, "-n", "--samples", help="Answers sampled per prompt."),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature (config default)."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus mass (config default)."),
    min_p: float | None = typer.Option(None, "--min-p", help="Min-p cut (config default)."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Longest answer in tokens."),
    greedy: bool = typer.Option(False, "--greedy", help="Greedy decoding: one answer, repeated N times."),
    adapter: Path | None = typer.Option(None, "--adapter", help="A PEFT LoRA adapter directory to probe with."),
    save: str | None = typer.Option(None, "--save", help="Save the results in the store under this label."),
    night: int | None = typer.Option(None, "--night", help="Attach the saved results to this night."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (answers included) instead of tables."),
) -> None:
    """Ask the model each prompt N times and count its distinct answers (semantic clusters), with
    the cluster sizes, one example per cluster and the set metrics of the answers: the "it only
    knows three jokes" test. The sampling seed is printed and saved (--seed to repeat a probe)."""
    from reverie.meter.inputs import read_prompts
    from reverie.meter.model_metrics import with_adapter
    from reverie.meter.probe import probe
    from reverie.meter.report import probe_report
    from reverie.models import SamplingParams, TransformersBackend

    if bool(prompt) == (prompts_file is not None):
        raise ReverieError("give prompts with --prompt TEXT or --prompts FILE.jsonl (one of the two)")
    if greedy and temperature is not None:
        raise ReverieError("--greedy and --temperature contradict each other: choose one")
    if n < 2:
        raise ReverieError(f"-n must be at least 2 to compare answers, got {n}")
    if limit is not None and limit < 1:
        raise ReverieError(f"--limit must be at least 1, got {limit}")
    prompts = list(prompt) if prompt else read_prompts(prompts_file)[:limit]
    rv = reverie(generation={"temperature": 0.0 if greedy else temperature, "top_p": top_p, "min_p": min_p,
                             "max_new_tokens": max_new_tokens})
    try:
        _check_night(rv, night, save)
        loaded = with_adapter(rv.loaded, adapter) if adapter else rv.loaded
        backend = TransformersBackend(loaded, batch_size=rv.settings.generation.batch_size)
        params = SamplingParams.from_config(rv.settings.generation).resolved()
        notice(f"sampling {n} answers to {len(prompts)} prompt{'s' if len(prompts) > 1 else ''} (seed {params.seed})")
        with live_progress() as progress:
            total = len(prompts) * (1 if params.temperature <= 0 else n)
            result = probe(backend, prompts, n, params, config=rv.settings.meter,
                           adapter=str(adapter) if adapter else None, loaded=loaded, warn=warn,
                           progress=counter(progress, "sampling", total))
        if save:
            run_id = rv.store.add_meter_run(
                "probe", save, result.as_dict(answers=False),
                {"prompts": str(prompts_file.resolve()) if prompts_file else prompts, "n": n,
                 "sampling": result.sampling, "model": result.model, "adapter": result.adapter},
                night,
            )
            notice(f"saved probe run {run_id} as {save!r}")
    finally:
        rv.close()
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        for part in probe_report(result):
            console.print(part)
