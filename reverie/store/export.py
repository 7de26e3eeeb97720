"""Everything the store keeps about a user, as JSON-ready records (`reverie export --user NAME`).

    for record in export_user(store, "alice"):
        print(json.dumps(record))

One record per line of the JSONL, each with its `type`: the `user` first (name, dates, the
adapter in use; never the token's hash), then each `conversation` with its messages, each
`document` they sent or had read for them with its text, each `dream` made from those, each
`night` with its settings and figures, and each `adapter`'s metadata (its files stay where
`path` says). The shared reading is the owner's, not the user's, and is not exported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from reverie.store.users import adapter_key


def _json(text: str | None):
    return json.loads(text) if text else {}


def export_user(store, name: str) -> Iterator[dict]:
    user = store.user(name)
    uid = user["id"]
    conn = store.conn
    yield {"type": "user", "name": user["name"], "created_at": user["created_at"], "revoked_at": user["revoked_at"],
           "active": user["token_sha256"] is not None, "adapter_in_use": store.get_state(adapter_key(uid))}
    for c in conn.execute("SELECT * FROM conversations WHERE user_id = ? ORDER BY id", (uid,)).fetchall():
        messages = [{"role": m["role"], "content": m["content"], "meta": _json(m["meta"]), "created_at": m["created_at"]}
                    for m in store.messages(c["id"])]
        yield {"type": "conversation", "id": c["id"], "title": c["title"], "model": c["model"],
               "started_at": c["started_at"], "messages": messages}
    for d in conn.execute("SELECT * FROM documents WHERE user_id = ? ORDER BY id", (uid,)).fetchall():
        yield {"type": "document", "id": d["id"], "source": d["source"], "title": d["title"], "kind": d["kind"],
               "sha256": d["sha256"], "read_at": d["read_at"], "updated_at": d["updated_at"], "text": d["text"]}
    for r in conn.execute(
        "SELECT * FROM dreams WHERE id IN (SELECT s.dream_id FROM dream_sources s "
        "JOIN chunk_documents cd ON cd.chunk_id = s.chunk_id JOIN documents doc ON doc.id = cd.document_id "
        "WHERE doc.user_id = ?) ORDER BY id", (uid,)).fetchall():
        yield {"type": "dream", "id": r["id"], "generator": r["generator"], "text": r["text"], "status": r["status"],
               "drop_reason": r["drop_reason"], "created_at": r["created_at"]}
    for n in conn.execute("SELECT * FROM nights WHERE user_id = ? ORDER BY id", (uid,)).fetchall():
        yield {"type": "night", "id": n["id"], "status": n["status"], "seed": n["seed"], "started_at": n["started_at"],
               "finished_at": n["finished_at"], "config": _json(n["config"]), "timings": _json(n["timings"]),
               "metrics": _json(n["metrics"])}
    for a in store.adapters(uid):
        yield {"type": "adapter", "name": a["name"], "verdict": a["verdict"], "night_id": a["night_id"],
               "base_model": a["base_model"], "path": a["path"], "created_at": a["created_at"],
               "metrics": _json(a["metrics"])}
