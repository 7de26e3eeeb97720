"""Exporting dreams as a Hugging Face-ready dataset: JSON lines or Parquet, one row per dream.

    export_dreams(rows, Path("dreams.parquet"))   # rows from store.list_dreams(...)
    datasets.load_dataset("parquet", data_files="dreams.parquet")   # or "json" for .jsonl

Columns: id, text, generator, status, drop_reason, source_chunk_ids (list[int]), prompt, model,
seed, sampling (JSON string: its keys vary by generator), metrics (JSON string), run_id,
created_at. JSON-valued fields are strings so every row has the same flat schema.
"""

from __future__ import annotations

import json
from pathlib import Path

from reverie.errors import ReverieError

FORMATS = ("jsonl", "parquet")


def row_dict(r) -> dict:
    return {
        "id": r["id"],
        "text": r["text"],
        "generator": r["generator"],
        "status": r["status"],
        "drop_reason": r["drop_reason"],
        "source_chunk_ids": json.loads(r["source_chunk_ids"]),
        "prompt": r["prompt"],
        "model": r["model"],
        "seed": r["seed"],
        "sampling": r["sampling"],
        "metrics": r["metrics"],
        "run_id": r["run_id"],
        "created_at": r["created_at"],
    }


def export_dreams(rows, path: Path, fmt: str | None = None) -> int:
    """Write the rows to `path` (format from `fmt` or the suffix); returns how many were written."""
    fmt = fmt or path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ReverieError(f"unknown export format {fmt!r}; use --format jsonl or parquet")
    data = [row_dict(r) for r in rows]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            with open(path, "w", encoding="utf-8") as fh:
                for d in data:
                    fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema([
                ("id", pa.int64()), ("text", pa.string()), ("generator", pa.string()), ("status", pa.string()),
                ("drop_reason", pa.string()), ("source_chunk_ids", pa.list_(pa.int64())), ("prompt", pa.string()),
                ("model", pa.string()), ("seed", pa.int64()), ("sampling", pa.string()), ("metrics", pa.string()),
                ("run_id", pa.int64()), ("created_at", pa.string()),
            ])
            pq.write_table(pa.Table.from_pylist(data, schema=schema), path)
    except OSError as exc:
        raise ReverieError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(data)
