"""`reverie search`, `reverie status`, `reverie chat`: looking things up and talking."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.table import Table

from reverie.cli.app import app, console, err_console, live_progress, reverie
from reverie.errors import ReverieError
from reverie.store.documents import MARK_END, MARK_START


def highlighted(snippet: str) -> str:
    """Rich markup for an FTS5 snippet: matched words in bold, everything else escaped."""
    flat = escape(" ".join(snippet.split()))
    return flat.replace(MARK_START, "[bold]").replace(MARK_END, "[/bold]")


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for: words (BM25) and meaning (embeddings), fused."),
    limit: int = typer.Option(5, "--limit", "-n", min=1, help="How many chunks to show."),
) -> None:
    """List the chunks that best match QUERY, with their sources and which search found each
    (bm25, embedding or both)."""
    if not query.strip():
        raise ReverieError("empty query")
    rv = reverie()
    with live_progress() as progress:
        hits = rv.search(query, limit, progress=progress, relevant_only=True)
    if not hits:
        console.print("no matches")
        return
    table = Table(show_lines=False)
    for col in ("#", "score", "found by", "similarity", "source", "chars", "text"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(hits, 1):
        sim = "-" if h.similarity is None else f"{h.similarity:.2f}"
        score = f"{h.score:.2f}" if h.found_by == "bm25" and h.embedding_rank is None and h.similarity is None \
            else f"{h.score:.4f}"
        table.add_row(str(i), score, h.found_by, sim, escape(h.source), f"{h.start_char}-{h.end_char}",
                      highlighted(h.snippet))
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
        _mark(turn)
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
        _mark(turn)
    if session.conversation_id is not None:
        console.print(f"[dim]conversation {session.conversation_id} stored[/dim]")


def _mark(turn) -> None:
    """Say where the answer came from: the chunks it was shown, or the model alone."""
    if turn.from_reading:
        shown = ", ".join(escape(h.title or h.source) for h in turn.recalled)
        err_console.print(f"[dim]looked up: {shown}[/dim]", highlight=False)
    else:
        err_console.print("[dim]not from your reading: nothing relevant was found; the model's own answer[/dim]",
                          highlight=False)
