"""`reverie users add|list|remove`, `reverie forget`, `reverie export`: who may call `reverie
serve`, and what is kept about them.

    reverie users add alice        # prints alice's bearer token, once
    reverie users list
    reverie users remove alice     # revokes the token; what alice owns is kept
    reverie forget ~/notes/diary.md            # a document, and every adapter that learned it
    reverie forget --conversation 12
    reverie forget --user alice                # everything alice owns, and alice
    reverie export --user alice --out alice.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from reverie.cli.app import app, console, reverie, warn
from reverie.errors import ReverieError

users_app = typer.Typer(help="Users of `reverie serve` and their bearer tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(name: str = typer.Argument(..., help="The user's name (letters, digits, _ . @ -).")) -> None:
    """Add a user and print their bearer token (shown once: the store keeps only its hash)."""
    rv = reverie()
    token = rv.store.add_user(name)
    console.print(f"added {escape(name)}; their token (shown once, keep it):", highlight=False)
    print(token)


@users_app.command("list")
def users_list() -> None:
    """List users with what they own and whether their token is active."""
    rv = reverie()
    rows = rv.store.users()
    if not rows:
        console.print("no users: `reverie users add NAME`")
        return
    from reverie.store.users import adapter_key

    table = Table()
    for col in ("name", "token", "conversations", "documents", "kept adapters", "in use", "added"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["name"]), "active" if r["token_sha256"] else f"revoked {r['revoked_at'][:10]}",
                      str(r["n_conversations"]), str(r["n_documents"]), str(r["n_adapters"]),
                      escape(rv.store.get_state(adapter_key(r["id"])) or "base"), r["created_at"][:10])
    console.print(table)


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="The user.")) -> None:
    """Revoke a user's token. What they own is kept: `reverie forget --user NAME` deletes it."""
    rv = reverie()
    rv.store.revoke_user(name)
    console.print(f"revoked {escape(name)}'s token; `reverie forget --user {escape(name)}` deletes what they own",
                  highlight=False)


@app.command("forget")
def forget_cmd(
    source: str | None = typer.Argument(None, help="A document's source (the path it was read from)."),
    conversation: int | None = typer.Option(None, "--conversation", help="A conversation's id."),
    user: str | None = typer.Option(None, "--user", help="A user: alone, everything they own; with SOURCE, theirs."),
) -> None:
    """Delete a document, a conversation or a user from the store, and every adapter that learned
    from it; the adapter in use goes back to the last one that did not."""
    rv = reverie()
    report = rv.forget(source=source, conversation=conversation, user=user)
    console.print(
        f"forgot {escape(report.what)}: {len(report.documents)} document(s), {len(report.conversations)} "
        f"conversation(s), {report.dreams} dream(s)", highlight=False)
    if report.adapters:
        console.print(f"adapters that learned from it, files deleted: {escape(', '.join(report.adapters))}",
                      highlight=False)
    else:
        console.print("no adapter had learned from it", highlight=False)
    for whose, was, now in report.in_use:
        console.print(f"in use for {escape(whose)}: {escape(now or 'the base model')} (was {escape(was)})",
                      highlight=False)
    for path in report.merged:
        warn(f"the merged model {path} was made from a forgotten adapter; delete it too")


@app.command("export")
def export_cmd(
    user: str = typer.Option(..., "--user", help="The user whose data to write."),
    out: Path | None = typer.Option(None, "--out", "-o", help="JSONL file to write (default: standard output)."),
) -> None:
    """Write everything kept about a user as JSONL: the user, conversations with their messages,
    documents with their text, dreams made from them, nights, adapters' metadata."""
    rv = reverie()
    records = list(rv.export(user))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if out is None:
        sys.stdout.write(lines)
        return
    try:
        out.write_text(lines, encoding="utf-8")
    except OSError as exc:
        raise ReverieError(f"cannot write {out}: {exc.strerror}") from None
    kinds: dict[str, int] = {}
    for r in records:
        kinds[r["type"]] = kinds.get(r["type"], 0) + 1
    console.print(f"wrote {escape(str(out))}: " + ", ".join(f"{n} {k}(s)" for k, n in kinds.items()), highlight=False)
