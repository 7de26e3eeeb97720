"""`reverie sleep` (one night), `reverie nights`, `reverie quiz`, `reverie adapters`, `reverie use`,
`reverie merge`.

    reverie sleep --budget 20000 --quiz quiz.jsonl
    reverie nights               # every night: kept or rejected and why, with its figures
    reverie quiz --quiz quiz.jsonl --adapter night-3 --general-text wikitext2_valid.txt
    reverie adapters
    reverie use night-3          # or: reverie use base
    reverie merge --out merged/  # the adapter in use, merged into a standalone model

Thin: the work is in `reverie.sleep` and `reverie.quiz`. Ctrl-C during a night leaves it
interrupted; the next `reverie sleep` resumes it from its last checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from reverie.cli.app import app, console, live_progress, notice, reverie, warn
from reverie.errors import ReverieError

ROWS = (  # (label, key, format) of the figures tables
    ("quiz accuracy (contained)", "accuracy", "{:.1%}"),
    ("quiz token F1", "f1", "{:.3f}"),
    ("gold answers' log-prob a token", "answer_logp", "{:.3f}"),
    ("earlier nights' questions (retained)", "retained", "{:.1%}"),
    ("earlier nights' answers' log-prob", "retained_logp", "{:.3f}"),
    ("perplexity (general text)", "perplexity", "{:.2f}"),
    ("probe Vendi", "vendi", "{:.2f}"),
    ("probe distinct answers", "n_distinct", "{:.1f}"),
    ("probe answer tokens", "answer_tokens", "{:.1f}"),
    ("probe KL from base (nats/token)", "probe_kl", "{:.3f}"),
)
LOOKUP_ROWS = (  # `reverie quiz --lookup`: the same questions, closed book above
    ("with lookup: accuracy", "lookup_accuracy", "{:.1%}"),
    ("with lookup: token F1", "lookup_f1", "{:.3f}"),
    ("with the gold passage: accuracy", "gold_accuracy", "{:.1%}"),
    ("with the gold passage: token F1", "gold_f1", "{:.3f}"),
    ("questions with a gold passage", "n_gold", "{}"),
    ("retrieval recall@k of the gold passage", "recall_at_k", "{:.1%}"),
)


def _figures_table(columns: dict[str, dict], title: str, lookup: bool = False) -> Table:
    table = Table(title=title)
    table.add_column("")
    for label in columns:
        table.add_column(escape(label), justify="right")
    table.add_row("questions", *(str(c["n_questions"]) for c in columns.values()))
    # The per-question likelihoods (what the gate tests, paired) are shown as their means.
    columns = {label: {k: (sum(v) / len(v) if v else None) if k in ("answer_logp", "retained_logp") else v
                       for k, v in c.items()} for label, c in columns.items()}
    rows = ROWS[:2] + LOOKUP_ROWS + ROWS[2:] if lookup else ROWS
    if lookup:
        k = next((c.get("lookup_k") for c in columns.values() if c.get("lookup_k")), None)
        rows = tuple((label.replace("@k", f"@{k}") if k else label, key, fmt) for label, key, fmt in rows)
    for label, key, fmt in rows:
        table.add_row(label, *("-" if c.get(key) is None else fmt.format(c[key]) for c in columns.values()))
    return table


@app.command("sleep")
def sleep_cmd(
    budget: int | None = typer.Option(None, "--budget", help="Tokens of dreams (default: sleep.budget or dream.budget)."),
    quiz: Path | None = typer.Option(
        None, "--quiz", help="JSONL of question/answer (default: quiz.file, else questions held out from the dreams)."
    ),
    user: str | None = typer.Option(
        None, "--user", help="A user's night: the shared reading and their own conversations, into their adapter."
    ),
) -> None:
    """One night: dream over what was read, train a LoRA adapter on the dreams, quiz it, and keep
    it only if the model learned without forgetting or collapsing. Under `torchrun` or `accelerate
    launch`, every rank trains its share of the night's batches; rank 0 does the rest and writes."""
    rv = reverie()
    rank = _launched(rv)
    if rank is None:
        with live_progress() as progress:
            result = rv.sleep(budget=budget, quiz_file=quiz, progress=progress, user=user)
        show_night(result, user)
        return
    from reverie.sleep.train import finish_training, serve_training

    if rank != 0:
        jobs = serve_training(rv.load_base)
        notice(f"rank {rank}: trained its share of {jobs} night(s); rank 0 wrote them")
        return
    try:
        with live_progress() as progress:
            result = rv.sleep(budget=budget, quiz_file=quiz, progress=progress, user=user)
    finally:
        finish_training()
    show_night(result, user)


def _launched(rv) -> int | None:
    """This process's rank when a launcher (torchrun, accelerate launch) started several, after
    joining their process group (gloo on the CPU, NCCL on GPUs, one GPU per local rank); None alone."""
    import os

    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    m = rv.settings.model
    if m.device in ("auto", "cuda") and torch.cuda.is_available():
        m.device = f"cuda:{local}"
        torch.cuda.set_device(local)
    elif m.device == "auto":
        m.device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if m.device.startswith("cuda") else "gloo")
    return dist.get_rank()


def show_night(result, user: str | None = None) -> None:
    """What a night learned, the gate's checks, its cost and its verdict (reverie.sleep.NightResult)."""
    if result.resumed:
        notice(f"night {result.night_id} was resumed from where it stopped")
    figs = result.figures
    columns = {"base": figs["base"]}
    if "reference" in figs:
        columns[f"{result.parent} (before)"] = figs["reference"]
    chosen = figs.get("strength", {}).get("chosen", 1.0)
    strength = f", strength {chosen:g}" if chosen != 1.0 else ""  # the gate shrank it to fit the bounds
    columns[f"{result.adapter} (candidate{strength})"] = figs["candidate"]
    console.print(_figures_table(columns, f"night {result.night_id}: what was learned"))
    checks = Table(title="gate")
    for col in ("check", "passed", "detail"):
        checks.add_column(col)
    for c in result.checks:
        checks.add_row(c.name, "yes" if c.passed else "[red]no[/red]", escape(c.detail))
    console.print(checks)
    t, k = result.timings, result.tokens
    console.print(
        f"cost: dream {t['dream']:.0f} s ({k['dreamed']:.0f} tokens kept of {k['generated']:.0f} generated), "
        + (f"replay text {t['replay']:.0f} s, " if t.get("replay") else "")
        + (f"teacher {t['teacher']:.0f} s, " if t.get("teacher") else "")
        + f"train {t['train']:.0f} s ({k['examples']:.0f} examples, {k['trained']:.0f} tokens at "
        f"{k['tokens_per_second']:.0f} tokens/s), quiz {t['quiz']:.0f} s; total {t['total']:.0f} s",
        highlight=False,
    )
    if result.status == "kept":
        console.print(f"kept: {escape(result.adapter)} is now in use" + (f" for {escape(user)}" if user else ""),
                      highlight=False)
    else:
        console.print(
            f"rejected: {escape(result.adapter)} rolled back; its dreams stay for a later night", highlight=False
        )


@app.command("quiz")
def quiz_cmd(
    quiz: Path | None = typer.Option(None, "--quiz", help="JSONL of question/answer (default: held-out questions)."),
    adapter: list[str] = typer.Option([], "--adapter", "-a", help="Also quiz this adapter (repeatable)."),
    general_text: Path | None = typer.Option(
        None, "--general-text", help="Text for perplexity (forgetting); default: quiz.general_text."
    ),
    lookup: bool = typer.Option(
        False, "--lookup", help="Also answer with lookup from the store and with the gold passage (a `context` field), "
        "and measure retrieval recall@k.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Closed-book quiz (SQuAD scoring), perplexity and diversity probe of the base model, the
    adapter in use and any --adapter; with --lookup, the same questions with lookup and with the
    gold passage side by side."""
    rv = reverie()
    with live_progress() as progress:
        results = rv.quiz(adapter, quiz_file=quiz, general_text=general_text, progress=progress, lookup=lookup)
    if as_json:
        console.print_json(json.dumps([r.as_dict() for r in results]))
        return
    console.print(_figures_table({r.label: r.as_dict() for r in results}, "quiz", lookup=lookup))


@app.command("adapters")
def adapters_cmd() -> None:
    """List adapters with their verdicts and figures; * marks the one in use."""
    rv = reverie()
    rows = rv.store.adapters()
    if not rows:
        console.print("no adapters yet: run `reverie sleep`")
        return
    in_use = rv.store.get_state("adapter")
    table = Table()
    for col in ("", "id", "name", "verdict", "night", "accuracy", "perplexity", "vendi", "base model", "created"):
        table.add_column(col)
    for r in rows:
        cand = json.loads(r["metrics"]).get("figures", {}).get("candidate", {})
        cells = [cand.get("accuracy"), cand.get("perplexity"), cand.get("vendi")]
        fmt = ["{:.1%}", "{:.2f}", "{:.2f}"]
        table.add_row(
            "*" if r["name"] == in_use else "", str(r["id"]), escape(r["name"]), r["verdict"], str(r["night_id"] or ""),
            *("" if v is None else f.format(v) for v, f in zip(cells, fmt, strict=True)),
            escape(r["base_model"]), r["created_at"],
        )
    console.print(table)


@app.command("nights")
def nights_cmd(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per night, with every figure."),
) -> None:
    """List nights with their figures: kept or rejected and why."""
    rv = reverie()
    rows = rv.store.nights()
    if as_json:
        for r in rows:
            print(json.dumps({"id": r["id"], "status": r["status"], "started_at": r["started_at"],
                              "finished_at": r["finished_at"], "seed": r["seed"],
                              "timings": json.loads(r["timings"] or "{}"), **json.loads(r["metrics"] or "{}")}))
        return
    if not rows:
        console.print("no nights yet: read something (`reverie read PATH`) and run `reverie sleep`")
        return
    table = Table()
    for col in ("night", "started", "verdict", "strength", "accuracy", "with lookup", "retained", "perplexity", "vendi",
                "minutes", "why"):
        table.add_column(col)
    for r in rows:
        m = json.loads(r["metrics"] or "{}")
        f = m.get("figures", {})
        base, cand = f.get("base", {}), f.get("candidate", {})
        reference = f.get("reference", base)
        failed = [c["detail"] if c["name"] == "finite" else f"{c['name']}: {c['detail']}"
                  for c in m.get("checks", []) if not c["passed"]]
        total = json.loads(r["timings"] or "{}").get("total")
        table.add_row(
            str(r["id"]), (r["started_at"] or "")[:16].replace("T", " "), r["status"],
            _fmt((f.get("strength") or {}).get("chosen"), "{:g}"),
            _pair(reference.get("accuracy"), cand.get("accuracy"), "{:.1%}"),
            _pair(reference.get("lookup_accuracy"), cand.get("lookup_accuracy"), "{:.1%}"),
            _pair(reference.get("retained"), cand.get("retained"), "{:.1%}"),
            _pair(base.get("perplexity"), cand.get("perplexity"), "{:.2f}"),
            _pair(base.get("vendi"), cand.get("vendi"), "{:.2f}"),
            _fmt(total and total / 60, "{:.1f}"), escape("; ".join(failed)),
        )
    console.print(table)
    console.print("figures: reference -> candidate (accuracy, with lookup, retained) and base -> candidate (perplexity, vendi); "
                  "`reverie nights --json` for all of them", highlight=False)


def _fmt(value, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _pair(before, after, fmt: str) -> str:
    return "" if after is None else f"{_fmt(before, fmt)} -> {_fmt(after, fmt)}".strip()


@app.command("use")
def use_cmd(adapter: str = typer.Argument(..., help="Adapter name or id, or 'base' for no adapter.")) -> None:
    """Select the adapter that chat, probe and quiz use ('base': none)."""
    from reverie.models import model_identity
    from reverie.models.lora import registered

    rv = reverie()
    if adapter in ("base", "none"):
        rv.store.set_state("adapter", None)
        console.print("using the base model (no adapter)")
        return
    row = registered(rv.store, adapter, model_identity(rv.model_path))
    if row["verdict"] != "kept":
        warn(f"{row['name']} was {row['verdict']} by its night's gate")
    rv.store.set_state("adapter", row["name"])
    console.print(f"using {escape(row['name'])}", highlight=False)


@app.command("merge")
def merge_cmd(
    adapter: str | None = typer.Argument(None, help="Adapter name or id (default: the one in use)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the merged model (new or empty)."),
) -> None:
    """Merge an adapter into the base weights and write a standalone Hugging Face model."""
    from reverie.models.lora import merge, registered

    rv = reverie()
    name = adapter or rv.store.get_state("adapter")
    if not name:
        raise ReverieError("no adapter in use; name one: reverie merge ADAPTER --out DIR")
    loaded = rv.load_base()
    row = registered(rv.store, name, loaded.identity)
    path = merge(loaded, row, out)
    rv.store.register_artifact("merged_model", path.resolve(), {"adapter": row["name"], "base_model": loaded.identity})
    console.print(f"wrote {escape(str(path))}: {escape(loaded.name)} + {escape(row['name'])}", highlight=False)
