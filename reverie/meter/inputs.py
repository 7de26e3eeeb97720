"""Reading texts and prompts from files, with one clear error line for every bad input.

    read_texts("dreams.jsonl")            # the field "text" of each JSON line
    read_texts("answers.jsonl", "answer") # another field
    read_texts("answers.txt")             # one text per line
    read_prompts("prompts.jsonl")         # field "prompt", else "text" (NoveltyBench uses "prompt")

A file is JSON Lines when its name ends in .jsonl or .ndjson, else plain text with one text per
line. Blank lines are skipped in both. Every problem raises `ReverieError` naming the file and
line: a missing or unreadable file, an empty one, a line that is not a JSON object, a missing or
non-string field.
"""

from __future__ import annotations

import json
from pathlib import Path

from reverie.errors import ReverieError

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in JSONL_SUFFIXES


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of the non-blank lines of a UTF-8 text file."""
    if not path.exists():
        raise ReverieError(f"{path} does not exist")
    if not path.is_file():
        raise ReverieError(f"{path} is not a file")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReverieError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ReverieError(f"cannot read {path}: {exc.strerror}") from None
    lines = [(no, line) for no, line in enumerate(content.splitlines(), 1) if line.strip()]
    if not lines:
        raise ReverieError(f"{path} is empty")
    return lines


def _field(path: Path, no: int, line: str, fields: tuple[str, ...], hint: str = "") -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReverieError(f"{path} line {no} is not valid JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise ReverieError(f"{path} line {no} is not a JSON object")
    for name in fields:
        if name in record:
            value = record[name]
            if not isinstance(value, str):
                raise ReverieError(f"{path} line {no}: field '{name}' is not a string")
            return value
    wanted = " or ".join(f"'{f}'" for f in fields)
    have = ", ".join(record) or "none"
    raise ReverieError(f"{path} line {no} has no field {wanted} (fields: {have}){hint}")


def read_texts(path: Path | str, field: str = "text") -> list[str]:
    """The texts of a JSONL file (`field` of each line) or a plain-text file (each line)."""
    path = Path(path)
    lines = _lines(path)
    if not is_jsonl(path):
        return [line for _, line in lines]
    return [_field(path, no, line, (field,), "; choose one with --field") for no, line in lines]


def read_prompts(path: Path | str) -> list[str]:
    """Prompts of a JSONL file: the field "prompt" of each line, else "text"."""
    path = Path(path)
    if not is_jsonl(path):
        raise ReverieError(f"{path}: prompts are read from a .jsonl file with a 'prompt' or 'text' field")
    return [_field(path, no, line, ("prompt", "text")) for no, line in _lines(path)]
