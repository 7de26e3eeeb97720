"""`reverie search`, `reverie status`, `reverie chat`: looking things up and talking."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.table import Table

from reverie.cli.app import app, console, reverie
from reverie.errors import ReverieError
from reverie.store.documents import MARK_END, MARK_START


def highlighted(snippet: str) -> str:
    """Rich markup for an FTS5 snippet: matched words in bold, everything else escaped."""
    flat = escape(" ".join(snippet.split()))
    return flat.replace(MARK_START, "[bold]").replace(MARK_END, "[/bold]")


@app.command()
def search(
    query: str = typer.Argument(..., help="Words to look for (any may match; BM25 ranks)."),
    limit: int = typer.Option(5, "--limit", "-n", min=1, help="How many chunks to show."),
) -> None:
    """List the chunks that best match QUERY, with their sources."""
    rv = reverie()
    hits = rv.search(query, limit)
    if not hits:
        console.print("no matches")
        return
    table = Table(show_lines=False)
    for col in ("#", "score", "source", "chars", "text"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(hits, 1):
        table.add_row(str(i), f"{h.score:.2f}", escape(h.source), f"{h.start_char}-{h.end_char}", highlighted(h.snippet))
    console.print(table)


@app.command()
def status() -> None:
    """Show what the store holds: documents, chunks, conversations, dreams, nights, adapters."""
    rv = reverie()
    s = rv.status()
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("home", escape(s["home"]))
    table.add_row("model", escape(s["model"]))
    table.add_row("adapter", escape(s["adapter"] or "none"))
    for key in ("documents", "chunks", "conversations", "messages", "dreams", "dreams_dropped", "nights", "adapters"):
        table.add_row(key.replace("_", " "), str(s[key]))
    console.print(table)


@app.command()
def chat(
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Answer this once and exit (for scripts)."),
    conversation: int | None = typer.Option(None, "--continue", help="Continue conversation ID."),
    temperature: float | None = typer.Option(None, help="Sampling temperature (0 = greedy)."),
    max_new_tokens: int | None = typer.Option(None, help="Longest answer, in tokens."),
) -> None:
    """Talk with the current model. Every turn is stored; what you read is recalled when relevant.

    Interactive: type a message, an empty line or /exit (or Ctrl-D) to quit.
    """
    rv = reverie(generation={"temperature": temperature, "max_new_tokens": max_new_tokens})
    if conversation is not None and not rv.store.messages(conversation):
        raise ReverieError(f"no conversation {conversation}")
    session = rv.chat_session(conversation)
    if prompt is not None:
        turn = session.ask(prompt)
        console.print(turn.answer, markup=False, highlight=False, soft_wrap=True)
        return
    interactive = sys.stdin.isatty()
    if interactive:
        console.print("[dim]chatting with the model; empty line, /exit or Ctrl-D to quit[/dim]")
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        if line.strip() in ("", "/exit", "/quit"):
            break
        turn = session.ask(line)
        console.print(f"[bold]model>[/bold] {escape(turn.answer)}", highlight=False, soft_wrap=True)
    if session.conversation_id is not None:
        console.print(f"[dim]conversation {session.conversation_id} stored[/dim]")
