"""`reverie demo`: the main job in one minute, on the default model.

Reads a sample document shipped with reverie, searches it, and chats: once about what it read
(the answer can use recalled notes), once about general knowledge. Uses the configured home.
"""

from __future__ import annotations

from importlib import resources

from rich.markup import escape
from rich.rule import Rule

from reverie.cli.app import app, console, reverie
from reverie.cli.wake import highlighted


def sample_paths() -> list[str]:
    folder = resources.files("reverie").joinpath("samples")
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith(".md"))


@app.command()
def demo() -> None:
    """Read a sample document, search it, and chat about it with the current model."""
    rv = reverie(generation={"temperature": 0.0, "max_new_tokens": 64})
    console.print(Rule("wake: read"))
    report = rv.read(sample_paths())
    console.print(
        f"read {len(report.new)} new, {len(report.updated)} updated, {len(report.unchanged)} unchanged document(s)"
    )
    console.print(Rule("search: lantern festival"))
    for hit in rv.search("lantern festival", 2):
        console.print(f"[dim]{escape(hit.title)}:[/dim] {highlighted(hit.snippet)}", highlight=False)
    console.print(Rule(f"chat ({escape(rv.settings.model.path)} model, greedy)"))
    session = rv.chat_session()
    for question in ("When is the Lantern Festival held in Vell Harbour?", "What is the capital of France?"):
        turn = session.ask(question)
        console.print(f"[bold]you>[/bold] {escape(question)}", highlight=False)
        console.print(f"[bold]model>[/bold] {escape(turn.answer)}", highlight=False, soft_wrap=True)
    s = rv.status()
    console.print(Rule("status"))
    console.print(
        f"{s['documents']} documents, {s['chunks']} chunks, {s['conversations']} conversations in {escape(s['home'])}",
        highlight=False,
    )
