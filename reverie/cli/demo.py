"""`reverie demo`: the main job in one minute, on the default model; `--cycle` the whole cycle.

    reverie demo            # read a sample document, search it, chat about it (about a minute)
    reverie demo --cycle    # then dream, sleep one night, quiz and show the verdict (a few minutes)

Reads a sample document shipped with reverie, searches it, and chats: once about what it read
(the answer can use recalled notes), once about general knowledge. With --cycle, one night on
it (`reverie sleep` with the sample's quiz file: questions about the document, never trained
on), its dreams, the gate's figures and verdict, and three questions asked closed book of the
base model and of the night's adapter. Uses the configured home; seed 0 unless --seed is given.
"""

from __future__ import annotations

from importlib import resources

import typer
from rich.markup import escape

from reverie.cli.app import _GLOBAL, app, console, live_progress, notice, reverie, rule
from reverie.cli.sleep import show_night
from reverie.cli.wake import highlighted
from reverie.errors import ReverieError

QUIZ = "vell-harbour.quiz.jsonl"  # questions about the sample, asked by the gate, never trained on


def sample_paths() -> list[str]:
    folder = resources.files("reverie").joinpath("samples")
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith(".md"))


@app.command()
def demo(
    cycle: bool = typer.Option(False, "--cycle", help="Then dream, sleep one night, quiz and show the verdict."),
) -> None:
    """Read a sample document, search it, and chat about it with the current model (--cycle: then
    dream, sleep one night on it and show what the model learned)."""
    rv = reverie(generation={"temperature": 0.0, "max_new_tokens": 64})
    rule("wake: read")
    report = rv.read(sample_paths())
    console.print(
        f"read {len(report.new)} new, {len(report.updated)} updated, {len(report.unchanged)} unchanged document(s)"
    )
    rule("search: lantern festival")
    for hit in rv.search("lantern festival", 2):
        console.print(f"[dim]{escape(hit.title)}:[/dim] {highlighted(hit.snippet)}", highlight=False)
    rule(f"chat ({rv.settings.model.path} model, greedy)")
    session = rv.chat_session()
    for question in ("When is the Lantern Festival held in Vell Harbour?", "What is the capital of France?"):
        turn = session.ask(question)
        console.print(f"[bold]you>[/bold] {escape(question)}", highlight=False)
        console.print(f"[bold]model>[/bold] {escape(turn.answer)}", highlight=False, soft_wrap=True)
    s = rv.status()
    rule("status")
    console.print(
        f"{s['documents']} documents, {s['chunks']} chunks, {s['conversations']} conversations in {escape(s['home'])}",
        highlight=False,
    )
    rv.close()
    if cycle:
        _cycle()


def _cycle() -> None:
    """Dream and sleep one night on the sample, then show its dreams, verdict and what changed."""
    from reverie.sleep import records

    # No naive baseline beside the dreams: the demo does not show the comparison, and on the
    # default model it is a quarter of the night (249 of 1,002 s, measured on a loaded CPU).
    rv = reverie(generation={"seed": 0 if _GLOBAL.get("seed") is None else _GLOBAL["seed"]}, dream={"baseline": False})
    quiz = str(resources.files("reverie").joinpath("samples", QUIZ))
    rule("dream and sleep: one night on what was read")
    try:
        with live_progress() as progress:
            result = rv.sleep(quiz_file=quiz, progress=progress)
    except ReverieError as exc:
        if "no dreams to learn from" not in str(exc):
            raise
        notice("nothing new to sleep on: this home slept on the sample already (`reverie nights` shows it)")
        return
    rule(f"night {result.night_id}: its dreams")
    dreams = records.night_dreams(rv.store, result.night_id, ("train",))
    by_generator: dict[str, int] = {}
    for d in dreams:
        by_generator[d["generator"]] = by_generator.get(d["generator"], 0) + 1
    console.print(", ".join(f"{n} {g}" for g, n in sorted(by_generator.items())) + " dreams learned", highlight=False)
    for d in dreams[:: max(1, len(dreams) // 3)][:3]:
        console.print(f"[dim]{escape(d['generator'])}:[/dim] {escape(d['text'][:160])}", highlight=False)
    rule(f"night {result.night_id}: the gate")
    show_night(result)
    rule("what changed: asked closed book (no notes)")
    _before_after(rv, result.adapter, quiz)
    rv.close()


def _before_after(rv, adapter: str, quiz: str, n: int = 3) -> None:
    """The first `n` quiz questions, answered greedily by the base model and by `adapter`."""
    from reverie.models import SamplingParams, TransformersBackend
    from reverie.models.lora import activate, attach, registered
    from reverie.quiz.questions import load_questions

    loaded = rv.load_base()
    loaded = attach(loaded, registered(rv.store, adapter, loaded.identity))
    questions = load_questions(quiz)[:n]
    params = SamplingParams(temperature=0.0, max_new_tokens=24, seed=0)
    said = {}
    for name in (None, adapter):
        with activate(loaded.model, name):
            gens = TransformersBackend(loaded).generate([[{"role": "user", "content": q.question}] for q in questions],
                                                        params)
        said[name] = [g.text.strip() for g in gens]
    for i, q in enumerate(questions):
        console.print(f"[bold]{escape(q.question)}[/bold] (answer: {escape(q.answer)})", highlight=False)
        console.print(f"  base>    {escape(said[None][i])}", highlight=False, soft_wrap=True)
        console.print(f"  {escape(adapter)}> {escape(said[adapter][i])}", highlight=False, soft_wrap=True)
