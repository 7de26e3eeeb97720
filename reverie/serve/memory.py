"""What the server looks up and keeps: models, recall, prompts, and conversations as reading.

Everything here runs on the server's one store thread (SQLite connections belong to the thread
that opened them; the tokenizer is encoded from this thread only, the model thread decodes).

Recall, as `reverie chat` does it (reverie.wake.lookup): the last user message is looked up in
the store (BM25 and embeddings, fused; chunks below `wake.min_similarity` are not relevant) and
the best `wake.recall_chunks` chunks are appended to the system message as numbered notes. The response lists them as `citations` (source, title, character
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

Callers (reverie.serve.auth): the owner, or a user with their token. What each recalls, keeps
and is answered by is theirs (reverie.store.users): a user recalls the shared reading and their
own conversations and documents; their conversations and the documents they send
(`POST /v1/documents`) are stored as theirs; `reverie` is the base model with their own kept
adapter, and only their adapters answer by name. The request's `user` field is recorded with
the messages, never trusted: it is the client's claim.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from reverie.models.backend import SamplingParams
from reverie.models.engine import row_seed
from reverie.serve.auth import Caller, LazyStore
from reverie.serve.protocol import ApiError, ChatRequest, DocumentRequest, Sampled
from reverie.store.documents import SearchHit
from reverie.store.users import SENT, adapter_key, conversation_source, scoped_source, unscoped_source
from reverie.wake.chat import notes_block
from reverie.wake.chunking import chunk_spans
from reverie.wake.lookup import Lookup

BASE, CURRENT = "reverie-base", "reverie"
CITE = "\nWhen a note helps, cite it by its number in brackets, like [1]."
DOCUMENT_KINDS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}  # anything else: txt


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
    user: str | None = None  # the request's `user` field (recorded, not trusted)
    caller: Caller = field(default_factory=Caller)
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
        return [{"index": i, "source": unscoped_source(h.source), "title": h.title, "document_id": h.document_id,
                 "chunk_id": h.chunk_id, "start_char": h.start_char, "end_char": h.end_char, "text": h.text,
                 "cited": any(f"[{i}]" in t for t in texts)}
                for i, h in enumerate(self.hits, 1)]


class Memory(LazyStore):
    def __init__(self, settings, loaded):
        super().__init__(settings)
        self.identity = loaded.identity
        self.tokenizer = loaded.tokenizer
        self.context = int(getattr(loaded.model.config, "max_position_embeddings", 2048))

    # -- models ----------------------------------------------------------------------------------
    def adapters(self, caller: Caller) -> list:
        """The caller's adapters of this base model that can answer (not forgotten)."""
        return [r for r in self.store.adapters(caller.user_id)
                if r["base_model"] == self.identity and r["verdict"] != "forgotten"]

    def in_use(self, caller: Caller) -> str | None:
        return self.store.get_state(adapter_key(caller.user_id))

    def target(self, model: str, caller: Caller) -> Target:
        from reverie.models.lora import check_dir

        name = model
        if model == BASE:
            name = None
        elif model == CURRENT:
            name = self.in_use(caller)
        row = self.store.adapter(name) if name else None
        if name and (row is None or row["name"] != name or row["base_model"] != self.identity
                     or row["user_id"] != caller.user_id or row["verdict"] == "forgotten"):
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

    @property
    def lookup(self) -> Lookup:
        """Hybrid search over this thread's store connection (its embedder is made on first use)."""
        lookup = self.__dict__.get("_lookup")
        if lookup is None or lookup.store is not self.store:
            old = lookup.__dict__.get("embedder") if lookup is not None else None
            lookup = self.__dict__["_lookup"] = Lookup(self.store, self.settings.wake, embedder=old)
        return lookup

    def _recall(self, text: str, caller: Caller, skip: int | None) -> list[SearchHit]:
        """What the caller may recall (reverie.store.users), but the conversation it continues;
        nothing when no chunk is relevant."""
        skipped = conversation_source(skip) if skip is not None else None
        return self.lookup.recall(text, user_id=caller.user_id, skip_source=skipped).hits

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

    def prepare_chat(self, req: ChatRequest, target: Target, keep: bool, caller: Caller) -> Prepared:
        messages = [(m.stored_role, m.text) for m in req.messages]
        continues = None
        if keep and len(messages) > 1:
            row = self.store.message_by_meta("thread", thread_key(req.user, messages[:-1]), caller.user_id)
            if row is not None and row["ord"] == row["last_ord"]:
                continues = row["conversation_id"]
        last_user = next((t for r, t in reversed(messages) if r == "user"), "")
        hits = self._recall(last_user, caller, continues)
        while True:  # notes first make room when the prompt would not fit
            prompt = self._chat_prompt(messages, hits)
            ids = self._encode(prompt)
            if len(ids) < self.context or not hits:
                break
            hits = hits[:-1]
        params = self._params(req, len(ids))
        return Prepared(target, [(prompt, ids)], params, req.n, hits, keep, req.user, caller, messages,
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
            conv = store.new_conversation(model=self.identity, title=title, adapter_id=prep.target.adapter_id,
                                          user_id=prep.caller.user_id)
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
        self._write_reading(prep.conversation_id, prep.caller)

    def _write_reading(self, conversation_id: int, caller: Caller) -> None:
        rows = self.store.messages(conversation_id)
        turns = [r for r in rows if r["role"] != "system" and not json.loads(r["meta"]).get("unfinished")]
        text = "\n\n".join(f"{'User' if r['role'] == 'user' else 'Assistant'}: {r['content'].strip()}" for r in turns)
        if not text.strip():
            return
        first = next((r["content"] for r in turns if r["role"] == "user"), "")
        wake = self.settings.wake
        spans = chunk_spans(text, self.tokenizer, wake.chunk_tokens, wake.chunk_overlap)
        self.store.put_document(
            source=conversation_source(conversation_id), title=f"conversation {conversation_id}: {first[:60]}",
            kind="conversation", sha256=hashlib.sha256(text.encode()).hexdigest(), text=text, spans=spans,
            user_id=caller.user_id)

    # -- documents the caller sends --------------------------------------------------------------
    def add_document(self, req: DocumentRequest, caller: Caller) -> dict:
        """Keep a document the caller sent as theirs (the owner's: shared reading), chunked as
        `reverie read` chunks; the same `source` again replaces it."""
        from reverie.errors import ReverieError

        sha = hashlib.sha256(req.text.encode()).hexdigest()
        name = req.source or f"sent/{sha[:16]}"
        title = req.title or name.rsplit("/", 1)[-1]
        wake = self.settings.wake
        spans = chunk_spans(req.text, self.tokenizer, wake.chunk_tokens, wake.chunk_overlap)
        kind = DOCUMENT_KINDS.get(PurePosixPath(name).suffix.lower(), "txt")
        try:
            doc_id, outcome = self.store.put_document(source=scoped_source(caller.user_id, SENT + name),
                                                      title=title, kind=kind, sha256=sha, text=req.text, spans=spans,
                                                      user_id=caller.user_id)
        except ReverieError as exc:
            raise ApiError(400, str(exc), param="source") from None
        return {"object": "document", "id": doc_id, "source": name, "title": title, "chunks": len(spans),
                "status": outcome}

    def documents(self, caller: Caller) -> list[dict]:
        """The documents the caller sent (not the shared reading, not conversations)."""
        prefix = scoped_source(caller.user_id, SENT)
        return [{"object": "document", "id": d["id"], "source": d["source"][len(prefix):], "title": d["title"],
                 "kind": d["kind"], "read_at": d["read_at"], "updated_at": d["updated_at"]}
                for d in self.store.documents(user_id=caller.user_id)
                if d["user_id"] == caller.user_id and d["source"].startswith(prefix)]
