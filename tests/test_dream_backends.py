"""The OpenAI-compatible HTTP backend against a tiny local server, and the llama.cpp extra's error."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reverie.errors import ReverieError
from reverie.models.backend import SamplingParams
from reverie.models.openai_http import OpenAIBackend


class _Handler(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, obj, code=200):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"data": [{"id": "tiny-served"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append((self.path, body))
        if body.get("max_tokens") == 999:
            return self._send({"error": "too many"}, 400)
        text = body["messages"][-1]["content"].upper() if "messages" in body else body["prompt"] + "!"
        choice = {"message": {"content": text}} if "messages" in body else {"text": text}
        self._send({"choices": [{**choice, "finish_reason": "stop"}],
                    "usage": {"completion_tokens": 3, "prompt_tokens": 5}})


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    yield f"http://127.0.0.1:{srv.server_port}/v1"
    srv.shutdown()
    srv.server_close()


def test_openai_backend_chat_and_completion(server):
    backend = OpenAIBackend(server, batch_size=4)
    assert backend.model == "tiny-served" and backend.identity.startswith("tiny-served@")
    params = SamplingParams(temperature=0.8, min_p=0.05, max_new_tokens=7, seed=10)
    gens = backend.generate([[{"role": "user", "content": f"hi {i}"}] for i in range(5)] + ["raw"], params)
    assert [g.text for g in gens] == [f"HI {i}" for i in range(5)] + ["raw!"]
    assert [g.seed for g in gens] == list(range(10, 16)) and gens[0].n_tokens == 3
    paths = {p for p, _ in _Handler.seen}
    assert paths == {"/v1/chat/completions", "/v1/completions"}
    body = _Handler.seen[0][1]
    assert body["model"] == "tiny-served" and body["max_tokens"] == 7 and body["min_p"] == 0.05


def test_openai_backend_errors_are_one_line(server):
    backend = OpenAIBackend(server, model="m")
    with pytest.raises(ReverieError, match="answered 400"):
        backend.generate(["x"], SamplingParams(max_new_tokens=999, seed=1))
    with pytest.raises(ReverieError, match="cannot reach the server"):
        OpenAIBackend("http://127.0.0.1:9/v1", model="m", timeout=2).generate(["x"], SamplingParams(seed=1))


def test_llamacpp_extra_missing_is_a_clear_error():
    pytest.importorskip("reverie.models.llamacpp")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        from reverie.models.llamacpp import LlamaCppBackend

        with pytest.raises(ReverieError, match=r"pip install 'reverie\[llamacpp\]'"):
            LlamaCppBackend("default")
    else:
        pytest.skip("llama-cpp-python is installed")
