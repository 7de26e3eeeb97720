"""What the server looks up and keeps: models, recall, prompts, and conversations as reading.

Everything here runs on the server's one store thread (SQLite connections belong to the thread
that opened them; the tokenizer is encoded from this thread only, the model thread decodes).

Recall, as `reverie chat` does it: the last user message, minus very common words, is searched
in the store (FTS5/BM25) and the best `wake.recall_chunks` chunks are appended to the system
message as numbered notes. The response lists them as `citations` (source, title, character
span in the document) and says which ones the answer cites with an `[n]` marker: a small model
often cites nothing, and markers are never added to its text.

Conversations become reading: each answered exchange is stored as chat turns are
(conversations/messages, with the sampling settings, seed and recalled chunk ids), and the
conversation's transcript is (re)written as a document, source `serve:conversation/ID`, so the
next night dreams over it like anything read. With `n` > 1 the first choice is kept. Text
completions (`/v1/completions`) are not conversations: they recall nothing and are not kept.
`store: false` keeps nothing. A client resending the history of a conversation it had with this
server continues that conversation: the history's hash (`thread`, in the last answer's meta)
finds it. An answer the client left before it ended is stored marked `unfinished` and left out of
the document; a user turn without an answer is one the server never finished (killed).

Users: the store has no per-user tables, so conversations, nights and adapters are shared by
everyone. What `user` does: conversations are stored with it, their documents carry it in their
source (`serve:user/NAME/conversation/ID`), and recall through the server skips other users'
conversation documents. It is not a security boundary (any client may claim any user), and a
night still trains on every conversation into the one adapter everyone is served.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from reverie.models.backend import SamplingParams
from reverie.models.engine import row_seed
from reverie.serve.protocol import ApiError, ChatRequest, Sampled
from reverie.store import Store
from reverie.store.documents import SearchHit
from reverie.wake.chat import notes_block, recall_query
from reverie.wake.chunking import chunk_spans

BASE, CURRENT = "reverie-base", "reverie"
CITE = "\nWhen a note helps, cite it by its number in brackets, like [1]."
_SOURCE = re.compile(r"^serve:(?:user/([^/]*)/)?conversation/(\d+)$")


def conversation_source(conversation_id: int, user: str | None) -> str:
    owner = f"user/{quote(user, safe='')}/" if user else ""
    return f"serve:{owner}conversation/{conversation_id}"


def source_owner(source: str) -> tuple[str | None, int] | None:
    """(user, conversation id) of a served conversation's document; None for anything read."""
    m = _SOURCE.match(source)
    return (unquote(m.group(1)) if m.group(1) is not None else None, int(m.group(2))) if m else None


def thread_key(user: str | None, messages: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps([user, messages], ensure_ascii=False).encode()).hexdigest()[:32]


@dataclass
class Target:
    """What answers a request: the base model or one registered adapter."""

    model: str  # the name the client asked for
    adapter: dict | None  # {'name', 'path'}; None: the base model
    adapter_id: int | None
    fingerprint: str


@dataclass
class Prepared:
    """One request, ready for the model: its prompts, settings, recall and what to store."""

    target: Target
    prompts: list[tuple[str, list[int]]]  # (formatted prompt, token ids), one per prompt
    params: SamplingParams  # resolved: seed set, max_new_tokens clamped to the context
    n: int
    hits: list[SearchHit] = field(default_factory=list)
    keep: bool = False
    user: str | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)  # the client's (role, text)
    new: list[tuple[str, str]] = field(default_factory=list)  # what this request adds to the conversation
    continues: int | None = None
    conversation_id: int | None = None

    def seeds(self) -> list[int]:
        """Choice i of prompt p draws from its own stream: its text does not depend on its batch."""
        return [row_seed(self.params.seed, i) for i in range(len(self.prompts) * self.n)]

    @property
    def prompt_tokens(self) -> int:
        return sum(len(ids) for _, ids in self.prompts)

    def citations(self, texts: list[str]) -> list[dict]:
        return [{"index": i, "source": h.source, "title": h.title, "document_id": h.document_id,
                 "chunk_id": h.chunk_id, "start_char": h.start_char, "end_char": h.end_char, "text": h.text,
                 "cited": any(f"[{i}]" in t for t in texts)}
                for i, h in enumerate(self.hits, 1)]


class Memory:
    def __init__(self, settings, loaded):
        self.settings = settings
        self.identity = loaded.identity
        self.tokenizer = loaded.tokenizer
        self.context = int(getattr(loaded.model.config, "max_position_embeddings", 2048))
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:  # opened on the store thread, on first use
            self._store = Store.open(self.settings.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- models ----------------------------------------------------------------------------------
    def adapters(self) -> list:
        return [r for r in self.store.adapters() if r["base_model"] == self.identity]

    def target(self, model: str) -> Target:
        from reverie.models.lora import check_dir

        name = model
        if model == BASE:
            name = None
        elif model == CURRENT:
            name = self.store.get_state("adapter")
        row = self.store.adapter(name) if name else None
        if name and (row is None or row["name"] != name or row["base_model"] != self.identity):
            raise ApiError(404, f"no model {model!r}: GET /v1/models lists what this server answers with",
                           param="model", code="model_not_found")
        if row is None:
            return Target(model, None, None, f"{self.identity}/base")
        try:
            check_dir(row["path"], self.identity)
        except Exception as exc:
            raise ApiError(404, f"the adapter {name} cannot be loaded: {exc}", param="model",
                           code="model_not_found") from None
        night = f"/night-{row['night_id']}" if row["night_id"] is not None else ""
        return Target(model, {"name": row["name"], "path": row["path"]}, row["id"],
                      f"{self.identity}/{row['name']}{night}")

    # -- prompts ---------------------------------------------------------------------------------
    def _params(self, req: Sampled, prompt_tokens: int) -> SamplingParams:
        room = self.context - prompt_tokens
        if room < 1:
            raise ApiError(400, f"the prompt has {prompt_tokens} tokens; this model's context holds {self.context}",
                           param="messages", code="context_length_exceeded")
        limit = min(req.limit or self.settings.generation.max_new_tokens, room)
        seed = req.seed if req.seed is not None else random.SystemRandom().randrange(2**31)
        return SamplingParams.from_config(
            self.settings.generation, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k, min_p=req.min_p,
            repetition_penalty=req.repetition_penalty, max_new_tokens=limit, seed=seed, stop=req.stops)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _recall(self, text: str, user: str | None, skip: int | None) -> list[SearchHit]:
        k = self.settings.wake.recall_chunks
        query = recall_query(text)
        if not k or not query:
            return []
        hits = []
        for h in self.store.search(query, 4 * k + 4):  # more than k: some may be others' conversations
            owner = source_owner(h.source)
            if owner is not None and (owner[0] != user or owner[1] == skip):
                continue
            hits.append(h)
            if len(hits) == k:
                break
        return hits

    def _chat_prompt(self, messages: list[tuple[str, str]], hits: list[SearchHit]) -> str:
        notes = notes_block(hits) + (CITE if hits else "")
        msgs = [{"role": r, "content": t} for r, t in messages]
        if msgs and msgs[0]["role"] == "system":
            msgs[0] = {"role": "system", "content": msgs[0]["content"] + notes}
        else:
            msgs.insert(0, {"role": "system", "content": self.settings.wake.system_prompt + notes})
        try:
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja2 raises for orders a template refuses
            raise ApiError(400, f"the model's chat template refuses these messages: {exc}", param="messages") from None

    def prepare_chat(self, req: ChatRequest, target: Target, keep: bool) -> Prepared:
        messages = [(m.stored_role, m.text) for m in req.messages]
        continues = None
        if keep and len(messages) > 1:
            row = self.store.message_by_meta("thread", thread_key(req.user, messages[:-1]))
            if row is not None and row["ord"] == row["last_ord"]:
                continues = row["conversation_id"]
        last_user = next((t for r, t in reversed(messages) if r == "user"), "")
        hits = self._recall(last_user, req.user, continues)
        while True:  # notes first make room when the prompt would not fit
            prompt = self._chat_prompt(messages, hits)
            ids = self._encode(prompt)
            if len(ids) < self.context or not hits:
                break
            hits = hits[:-1]
        params = self._params(req, len(ids))
        return Prepared(target, [(prompt, ids)], params, req.n, hits, keep, req.user, messages,
                        messages[-1:] if continues is not None else messages, continues)

    def prepare_completion(self, req, target: Target) -> Prepared:
        prompts = []
        vocab = len(self.tokenizer)
        for p in req.prompts:
            if not isinstance(p, str) and (not p or not all(0 <= t < vocab for t in p)):
                raise ApiError(400, f"a token prompt must be a non-empty list of ids below {vocab}", param="prompt")
            text = p if isinstance(p, str) else self.tokenizer.decode(p)
            prompts.append((text, self._encode(p) if isinstance(p, str) else list(p)))
        params = self._params(req, max(len(ids) for _, ids in prompts))
        return Prepared(target, prompts, params, req.n)

    # -- keeping conversations -------------------------------------------------------------------
    def begin(self, prep: Prepared) -> None:
        """Store what the client sent (a new conversation, or the new turn of one it continues)."""
        if not prep.keep:
            return
        store = self.store
        conv = prep.continues
        if conv is None:
            title = next((t for r, t in prep.messages if r == "user"), "")[:80] or None
            conv = store.new_conversation(model=self.identity, title=title, adapter_id=prep.target.adapter_id)
        for role, text in prep.new:
            store.add_message(conv, role, text, meta={"served": True, "user": prep.user})
        prep.conversation_id = conv

    def finish(self, prep: Prepared, answers: list, seconds: float) -> None:
        """Store the answer (choice 0; unfinished when the client left or it failed) and rewrite
        the conversation's document."""
        if not prep.keep or prep.conversation_id is None:
            return
        job = answers[0]
        finished = job.finish_reason in ("stop", "length")
        meta = {"served": True, "user": prep.user, "model": self.identity, "adapter": prep.target.adapter
                and prep.target.adapter["name"], "sampling": {**prep.params.as_dict(), "seed": job.seed},
                "recalled_chunk_ids": [h.chunk_id for h in prep.hits], "tokens": job.n_tokens,
                "finish_reason": job.finish_reason, "seconds": round(seconds, 3), "choices": len(answers)}
        if finished:
            meta["thread"] = thread_key(prep.user, prep.messages + [("assistant", job.text)])
        else:
            meta["unfinished"] = True
        self.store.add_message(prep.conversation_id, "assistant", job.text, meta=meta)
        self._write_reading(prep.conversation_id, prep.user)

    def _write_reading(self, conversation_id: int, user: str | None) -> None:
        rows = self.store.messages(conversation_id)
        turns = [r for r in rows if r["role"] != "system" and not json.loads(r["meta"]).get("unfinished")]
        text = "\n\n".join(f"{'User' if r['role'] == 'user' else 'Assistant'}: {r['content'].strip()}" for r in turns)
        if not text.strip():
            return
        first = next((r["content"] for r in turns if r["role"] == "user"), "")
        wake = self.settings.wake
        spans = chunk_spans(text, self.tokenizer, wake.chunk_tokens, wake.chunk_overlap)
        self.store.put_document(
            source=conversation_source(conversation_id, user), title=f"conversation {conversation_id}: {first[:60]}",
            kind="conversation", sha256=hashlib.sha256(text.encode()).hexdigest(), text=text, spans=spans)
