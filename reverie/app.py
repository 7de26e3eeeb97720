"""The Python API over the whole cycle; the CLI is a thin layer over it.

    from reverie.app import Reverie
    rv = Reverie.from_settings(load_settings(home="/tmp/rv"))
    rv.read(["notes/"])                 # wake: ingest documents
    rv.search("capital of France")      # look facts up
    rv.chat_once("What did I read about Paris?")
    rv.status()

The store opens on first use; the model loads on first use (reading needs only its tokenizer).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from reverie.config import Settings, load_settings
from reverie.errors import ReverieError
from reverie.store import Store


class Reverie:
    def __init__(self, settings: Settings, log=None):
        self.settings = settings
        self.log = log or (lambda msg: None)  # one-line notices for the user (CLI prints them dim)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, log=None) -> Reverie:
        return cls(settings or load_settings(), log=log)

    # -- resources, opened lazily ---------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        return Store.open(self.settings.db_path)

    @cached_property
    def model_path(self):
        from reverie.models import resolve_model_path

        return resolve_model_path(self.settings.model.path, self.settings.models_dir, log=self.log)

    @cached_property
    def tokenizer(self):
        if "loaded" in self.__dict__:
            return self.loaded.tokenizer
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_path)

    def load_base(self):
        """A fresh copy of the base model, without the selected adapter (for training, quiz, merge)."""
        from reverie.models import load_model

        m = self.settings.model
        return load_model(str(self.model_path), self.settings.models_dir, m.dtype, m.threads, log=self.log,
                          device=m.device)

    @cached_property
    def loaded(self):
        loaded = self.load_base()
        # The adapter chosen with `reverie use` (or kept by the last night) applies to chat, probe, dream.
        name = self.store.get_state("adapter")
        if name:
            from reverie.models.lora import attach, registered

            try:
                loaded = attach(loaded, registered(self.store, name, loaded.identity))
            except ReverieError as exc:
                raise ReverieError(f"{exc} (`reverie use base` runs without an adapter)") from None
        return loaded

    @cached_property
    def backend(self):
        from reverie.models import TransformersBackend

        return TransformersBackend(self.loaded, batch_size=self.settings.generation.batch_size)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    # -- wake -----------------------------------------------------------------------------------
    @cached_property
    def lookup(self):
        """Hybrid search over the store (reverie.wake.lookup); its embedder loads on first use."""
        from reverie.wake.lookup import Lookup

        return Lookup(self.store, self.settings.wake, log=self.log)

    def read(self, paths, progress=None, reindex: bool = False):
        """Ingest files and folders (see `reverie.wake.reader.read_paths`) and embed their new chunks;
        `reindex`: embed every chunk in the store again first (no paths needed)."""
        from reverie.wake.reader import ReadReport, read_paths

        # Refuse a missing path before the store is created or the tokenizer loaded.
        for path in paths:
            if not Path(path).exists():
                raise ReverieError(f"no such file or folder: {path}")
        if not paths and not reindex:
            raise ReverieError("nothing to read: name at least one file or folder (or pass --reindex)")
        embedded = self.lookup.reindex(progress) if reindex else 0
        if not paths:
            return ReadReport(chunks_embedded=embedded)
        report = read_paths(self.store, paths, self.tokenizer, self.settings.wake, progress=progress, log=self.log,
                            lookup=self.lookup)
        report.chunks_embedded += embedded
        return report

    def search(self, query: str, limit: int = 5, progress=None, relevant_only: bool = True):
        """The best chunks for `query`: BM25 and embeddings fused (reverie.wake.lookup); each hit's
        `found_by` says which side found it; `relevant_only` (the default): without embedding-only hits below
        `wake.min_similarity`."""
        return self.lookup.search(query, limit, progress=progress, relevant_only=relevant_only)

    def chat_session(self, conversation_id: int | None = None):
        from reverie.wake.chat import ChatSession

        return ChatSession(self.store, self.settings, lambda: self.backend, lambda: self.lookup, conversation_id)

    def chat_once(self, prompt: str, **sampling):
        return self.chat_session().ask(prompt, **sampling)

    # -- dream ----------------------------------------------------------------------------------
    def dream(self, budget=None, generators=None, docs=None, fresh=False, progress=None, user_id=None):
        """Diverse, grounded synthetic text about what was read; see `reverie.dream.run`."""
        from reverie.dream import DreamContext, run_dream

        ctx = DreamContext(self.store, self.settings, lambda: self.loaded, self.log)
        return run_dream(ctx, budget=budget, generators=generators, docs=docs, fresh=fresh, progress=progress,
                         user_id=user_id)

    # -- sleep ----------------------------------------------------------------------------------
    def sleep(self, budget=None, quiz_file=None, progress=None, user: str | None = None):
        """One night: dream, train a LoRA adapter, quiz and gate it; see `reverie.sleep.night`.
        `user`: that user's night (the shared reading and their own conversations and documents)."""
        from reverie.sleep import NightContext, run_night

        user_id = self.store.user(user)["id"] if user else None
        ctx = NightContext(self.store, self.settings, self.load_base, self.dream, lambda: self.lookup, self.log)
        return run_night(ctx, budget=budget, quiz_file=quiz_file, progress=progress, user_id=user_id)

    def forget(self, source: str | None = None, conversation: int | None = None, user: str | None = None):
        """Delete a document, a conversation or a user, and every adapter that learned from it; see
        `reverie.sleep.forget`."""
        from reverie.sleep.forget import forget

        return forget(self.store, self.settings.home, source=source, conversation=conversation, user=user)

    def export(self, user: str):
        """Everything kept about `user`, as JSON-ready dicts (one per JSONL line); see `reverie.store.export`."""
        from reverie.store.export import export_user

        return export_user(self.store, user)

    def quiz(self, adapters=(), quiz_file=None, general_text=None, progress=None, lookup: bool = False):
        """Closed-book quiz, perplexity and probe of the base model, the adapter in use and `adapters`;
        `lookup`: also answered with lookup from the store and with the gold passage (reverie.quiz.run)."""
        from reverie.quiz.run import quiz_models

        return quiz_models(self.store, self.settings, self.load_base, adapters, quiz_file=quiz_file,
                           general_text=general_text, progress=progress, lookup=self.lookup if lookup else None,
                           log=self.log)

    def status(self) -> dict:
        counts = self.store.counts()
        counts["home"] = str(self.settings.home)
        counts["model"] = self.settings.model.path
        counts["adapter"] = self.store.get_state("adapter")
        return counts
