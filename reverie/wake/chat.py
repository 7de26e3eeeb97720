"""Chat with the current model; every turn is stored, and relevant memories are recalled.

Recall (reverie.wake.lookup): before answering, the turn is looked up in the store (BM25 and
embeddings, fused) and the best `wake.recall_chunks` chunks that are relevant (cosine at least
`wake.min_similarity`) are put in front of the question in the user message, in the fixed format
of `lookup_message` (each chunk as `# title` and its text, then the question), so the model can
look facts up in what it read. Earlier turns are kept as they were said, without their chunks.
When nothing relevant is found, the answer is the model's own: the turn is marked
`from_reading: false`. The chunk ids used, the sampling parameters and the seed are stored with
each answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reverie.models.backend import Generation, SamplingParams, format_chat
from reverie.store.documents import SearchHit
from reverie.wake.lookup import lookup_message, recall_query

__all__ = ["ChatSession", "ChatTurn", "lookup_message", "notes_block", "recall_query"]


def notes_block(hits: list[SearchHit]) -> str:
    """The recalled chunks as numbered notes to append to a system message ('' for none)."""
    if not hits:
        return ""
    notes = "\n\n".join(f"[{i + 1}] ({h.title}) {h.text.strip()}" for i, h in enumerate(hits))
    return "\n\nNotes from what you have read (use them if they help):\n" + notes


@dataclass
class ChatTurn:
    answer: str
    generation: Generation
    recalled: list[SearchHit] = field(default_factory=list)
    conversation_id: int = 0
    seconds: float = 0.0
    from_reading: bool = False  # False: nothing relevant was recalled; the answer is the model's own


class ChatSession:
    """One conversation. `ask` adds a user turn, answers it, and stores both.

    Handed what it needs (reverie.app.Reverie.chat_session builds it): the store, the settings, and
    callables giving the backend (the model with the adapter in use) and the lookup, so that
    neither loads before the first question."""

    def __init__(self, store, settings, backend: Callable[[], object], lookup: Callable[[], object],
                 conversation_id: int | None = None):
        self.store = store
        self.settings = settings
        self._backend = backend
        self._lookup = lookup
        self.conversation_id = conversation_id
        self.history: list[dict[str, str]] = []
        if conversation_id is not None:
            rows = self.store.messages(conversation_id)
            self.history = [{"role": r["role"], "content": r["content"]} for r in rows if r["role"] != "system"]

    def _fit(self, backend, messages: list[dict[str, str]], max_new_tokens: int) -> list[dict[str, str]]:
        """Drop the oldest turns until the prompt fits the model's context."""
        tok = backend.tokenizer
        limit = getattr(backend.model.config, "max_position_embeddings", 2048) - max_new_tokens
        while len(messages) > 2:
            # the model's own template, as generation formats it (a system turn folded in where refused)
            n = len(tok(format_chat(tok, messages), add_special_tokens=False)["input_ids"])
            if n <= limit:
                break
            messages = [messages[0]] + messages[3:]  # drop the oldest user+assistant pair
        return messages

    def ask(self, text: str, **sampling) -> ChatTurn:
        text = text.strip()
        if not text:
            from reverie.errors import ReverieError

            raise ReverieError("empty prompt")
        backend = self._backend()  # load the model before opening a conversation
        if self.conversation_id is None:
            self.conversation_id = self.store.new_conversation(model=backend.identity, title=text[:80])
        recalled = self._lookup().recall(text)
        hits = recalled.hits
        params = SamplingParams.from_config(self.settings.generation, **sampling).resolved()
        messages = [{"role": "system", "content": self.settings.wake.system_prompt}, *self.history,
                    {"role": "user", "content": lookup_message(hits, text)}]
        messages = self._fit(backend, messages, params.max_new_tokens)
        self.store.add_message(self.conversation_id, "user", text)
        t0 = time.perf_counter()
        gen = backend.generate([messages], params)[0]
        seconds = time.perf_counter() - t0
        self.store.add_message(
            self.conversation_id,
            "assistant",
            gen.text,
            meta={
                "model": backend.identity,
                "sampling": params.as_dict(),
                "recalled_chunk_ids": [h.chunk_id for h in hits],
                "recalled": [{"chunk_id": h.chunk_id, "source": h.source, "found_by": h.found_by,
                              "similarity": None if h.similarity is None else round(h.similarity, 4)} for h in hits],
                "from_reading": recalled.relevant,
                "tokens": gen.n_tokens,
                "finish_reason": gen.finish_reason,
                "seconds": round(seconds, 3),
            },
        )
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": gen.text}]
        return ChatTurn(gen.text, gen, hits, self.conversation_id, seconds, recalled.relevant)
