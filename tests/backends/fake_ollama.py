"""FakeOllamaServer: a test double that speaks Ollama's HTTP API over a real loopback socket.

No Ollama binary can be installed on the build machines, so the Ollama backend is tested with the official
``ollama`` Python client against this server. It replays scripted model behaviour (thinking, text, tool
calls) the way Ollama's ``/api/chat`` streams it *after* its Gemma 4 parser has taken the control tokens out,
and it injects the failures a user meets: an unknown model, a context overflow, a 500 then success, a
connection cut mid-stream, a slow server. Every request is recorded so tests can assert what the client sent.

Behaviour is taken from ollama/ollama at commit fb30760996871fa9460115c753afd2c60d4ab0f7 (file:line below)
and its ``docs/api.md``. Only what the backend relies on is modelled; anything else answers like gin's
default 404.
"""

from __future__ import annotations

import copy
import json
import secrets
import socket
import string
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentkit.gemma4.tokens import CONTROL_TOKENS

__all__ = ["GEMMA4_CAPABILITIES", "FakeOllamaServer", "RecordedRequest", "ScriptedReply", "closed_port"]

#: What ``/api/show`` reports for a Gemma 4 model with vision/audio (capability names: types/model/capability.go).
GEMMA4_CAPABILITIES = ("completion", "vision", "audio", "tools", "thinking")

VERSION = "0.13.5"


@dataclass
class ScriptedReply:
    """One model answer (or one failure) for the next ``/api/chat`` or ``/api/generate`` request.

    ``thinking``/``content``/``tool_calls`` are what Ollama's Gemma 4 parser would have extracted;
    ``raw`` is the model's native output, used by raw ``/api/generate``. Faults: ``status`` + ``error``
    answer with an error status before any output; ``error_after`` sends an ``{"error": ...}`` line after
    that many chunks; ``drop_after`` cuts the connection after that many chunks, without the final message;
    ``end_after`` ends the body cleanly after that many chunks, also without it (a proxy giving up).
    """

    content: str = ""
    thinking: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    raw: str = ""
    done_reason: str = "stop"
    chunk_size: int = 4
    delay_s: float = 0.0
    prompt_eval_count: int = 17
    eval_count: int | None = None
    eval_duration_ns: int = 200_000_000
    status: int | None = None
    error: str = ""
    error_after: int | None = None
    drop_after: int | None = None
    end_after: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Any  # the decoded JSON body, or None
    headers: Mapping[str, str] = field(default_factory=dict)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released), for "server not running" tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _strip_control_tokens(text: str) -> str:
    # Raw generate has no parser, so no preserved tokens: llama-server renders control tokens as nothing
    # (server/routes.go:440-446 sets up the parser only when !req.Raw; routes.go:668 and 2314-2319).
    for token in CONTROL_TOKENS:
        text = text.replace(token, "")
    return text


def _decode_problem(messages: Any) -> str | None:
    """What Go's JSON decoding of ``[]api.Message`` would reject, as its error text, or None.

    Images are ``[]byte`` (``api.ImageData``, base64 in JSON) and call arguments an ordered map
    (``api/types.go:197-207, 293-296``): a non-base64 image or string arguments fail the whole request.
    """
    if messages is None:
        return None
    if not isinstance(messages, list):
        return "json: cannot unmarshal object into Go struct field ChatRequest.messages of type []api.Message"
    for message in messages:
        for image in message.get("images") or ():
            alphabet = set(string.ascii_letters + string.digits + "+/=")
            bad = next((i for i, ch in enumerate(str(image)) if ch not in alphabet), None)
            if not isinstance(image, str) or bad is not None or len(image) % 4:
                return f"illegal base64 data at input byte {bad if bad is not None else len(str(image))}"
        for call in message.get("tool_calls") or ():
            arguments = call.get("function", {}).get("arguments", {})
            if not isinstance(arguments, dict):
                kind = "string" if isinstance(arguments, str) else type(arguments).__name__
                return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    return None


def _pieces(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), max(1, size)):
        yield text[i : i + size]


class FakeOllamaServer:
    """A threaded HTTP server on 127.0.0.1 (random port) answering like ``ollama serve``.

    Use as a context manager; ``url`` is the base URL for ``OllamaBackend(host=...)``. ``models`` maps
    model names to their capabilities. Queue answers with :meth:`script`; requests land in ``requests``.
    """

    def __init__(self, models: Mapping[str, Sequence[str]] | None = None) -> None:
        self.models: dict[str, tuple[str, ...]] = {
            self._canonical(name): tuple(caps)
            for name, caps in (models if models is not None else {"gemma4:e4b": GEMMA4_CAPABILITIES}).items()
        }
        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()  # set when a client went away while a stream was being written
        self.chunks_written = 0  # chunks of the most recent stream that reached the socket
        # What a _debug_render_only chat request answers; the fake does not reimplement Ollama's renderer.
        self.rendered_template = ""
        self._replies: list[ScriptedReply] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a slow scripted stream must not hold up stop()
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="FakeOllamaServer", daemon=True
        )

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeOllamaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOllamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------------------

    def script(self, *replies: ScriptedReply) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._replies)

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies received on ``path``, oldest first."""
        with self._lock:
            return [r.body for r in self.requests if r.path == path]

    def _next_reply(self) -> ScriptedReply | None:
        with self._lock:
            return self._replies.pop(0) if self._replies else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    @staticmethod
    def _canonical(name: str) -> str:
        # Model names default to the "latest" tag (docs/api.md "Model names").
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    def _find(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        canonical = self._canonical(name)
        caps = self.models.get(canonical)
        return None if caps is None else (canonical, caps)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (a closed stream, a cancelled test) are normal here, not errors to print.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as Go's net/http serves them
    server_version = "FakeOllama"

    @property
    def fake(self) -> FakeOllamaServer:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def setup(self) -> None:
        super().setup()
        # Go's net package turns Nagle off on every TCP connection; without this, small NDJSON lines would
        # wait for delayed ACKs and streaming would look slower than Ollama's.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return None

    # -- routing: server/routes.go:1879-1909 --------------------------------------------------------

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as exc:
                bad_json = str(exc)
        self.fake._record(RecordedRequest(method, self.path, copy.deepcopy(body), dict(self.headers.items())))
        routes = {
            ("GET", "/api/version"): self._version,
            ("HEAD", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("HEAD", "/api/tags"): self._tags,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/generate"): self._generate,
        }
        handler = routes.get((method, self.path.split("?", 1)[0]))
        if handler is None:
            self._send(404, b"404 page not found", "text/plain")  # gin's NoRoute default
            return
        if method == "POST":
            # ChatHandler/GenerateHandler/ShowHandler: routes.go:2444-2450, 248-253, 1303-1310.
            if not raw:
                self._error(400, "missing request body")
                return
            if bad_json is not None or not isinstance(body, dict):
                self._error(400, bad_json or "json: cannot unmarshal into Go value")
                return
        handler(body or {})

    # -- small endpoints ------------------------------------------------------------------------------

    def _version(self, body: dict[str, Any]) -> None:
        self._json(200, {"version": VERSION})  # routes.go:1879-1880

    def _tags(self, body: dict[str, Any]) -> None:
        # ListHandler routes.go:1632-1645; shape from docs/api.md "List Local Models" (api.ListModelResponse).
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2026-11-01T10:00:00Z",
                "size": 9_600_000_000,
                "digest": secrets.token_hex(32),
                "details": {"format": "gguf", "family": "gemma4", "families": ["gemma4"]},
            }
            for name in self.fake.models
        ]
        self._json(200, {"models": models})

    def _show(self, body: dict[str, Any]) -> None:
        name = str(body.get("model") or body.get("name") or "")
        if not name:
            self._error(400, "model is required")  # ShowHandler routes.go:1316-1318
            return
        found = self.fake._find(name)
        if found is None:
            self._error(404, f"model '{name}' not found")  # routes.go:1367
            return
        self._json(
            200,
            {
                "modelfile": f"# Modelfile generated by FakeOllamaServer\nFROM {found[0]}\n",
                "parameters": "temperature 1\ntop_k 64\ntop_p 0.95",
                "renderer": "gemma4",
                "parser": "gemma4",
                "details": {"format": "gguf", "family": "gemma4", "families": ["gemma4"]},
                "model_info": {"general.architecture": "gemma4", "gemma4.context_length": 131072},
                "capabilities": list(found[1]),
                "modified_at": "2026-11-01T10:00:00Z",
            },
        )

    # -- /api/chat: ChatHandler routes.go:2440-3000 -----------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> None:
        problem = _decode_problem(body.get("messages"))
        if problem is not None:
            self._error(400, problem)  # a ShouldBindJSON failure (routes.go:2447-2449)
            return
        model = self._model_checks(body, needs_tools=bool(body.get("tools")))
        if model is None:
            return
        if body.get("_debug_render_only"):
            # routes.go:2708-2718: the rendered prompt instead of a generation (no scripted reply is used).
            images = sum(len(m.get("images") or ()) for m in body.get("messages") or ())
            debug = {"rendered_template": self.fake.rendered_template, "image_count": images}
            self._json(
                200,
                {
                    "model": body["model"],
                    "created_at": _now(),
                    "message": {"role": "", "content": ""},
                    "done": False,
                    "_debug_info": debug,
                },
            )
            return
        reply = self._reply()
        if reply is None:
            return
        chunks: list[dict[str, Any]] = []

        def chunk(**message: Any) -> dict[str, Any]:
            return {
                "model": body["model"],
                "created_at": _now(),
                "message": {"role": "assistant", "content": "", **message},
                "done": False,
            }

        # The Gemma 4 parser emits thinking, then content, then each call once its <tool_call|> is read
        # (model/parsers/gemma4.go:115-141); every call gets an id (routes.go:2817-2821, 2305-2312).
        if body.get("think") and reply.thinking:
            chunks += [chunk(thinking=p) for p in _pieces(reply.thinking, reply.chunk_size)]
        chunks += [chunk(content=p) for p in _pieces(reply.content, reply.chunk_size)]
        for index, (name, arguments) in enumerate(reply.tool_calls):
            call = {
                "id": "call_" + secrets.token_hex(4),
                "function": {"index": index, "name": name, "arguments": dict(arguments)},
            }
            chunks.append(chunk(tool_calls=[call]))
        final = {**chunk(), "done": True, **self._metrics(reply, "".join([reply.thinking, reply.content]))}
        if body.get("stream", True):
            self._stream(reply, [*chunks, final])
            return
        # stream=false: writeChatResponse folds the chunks into one object (routes.go:2387-2434).
        merged = final
        merged["message"]["content"] = "".join(c["message"].get("content", "") for c in chunks)
        thinking = "".join(c["message"].get("thinking", "") for c in chunks)
        if thinking:
            merged["message"]["thinking"] = thinking
        calls = [tc for c in chunks for tc in c["message"].get("tool_calls", ())]
        if calls and body.get("tools"):
            merged["message"]["tool_calls"] = calls
        self._json(200, merged)

    # -- /api/generate: GenerateHandler routes.go:245-790 ------------------------------------------------

    def _generate(self, body: dict[str, Any]) -> None:
        if body.get("raw") and (body.get("template") or body.get("system") or body.get("context")):
            self._error(400, "raw mode does not support template, system, or context")  # routes.go:422-425
            return
        model = self._model_checks(body, needs_tools=False)
        if model is None:
            return
        reply = self._reply()
        if reply is None:
            return
        if body.get("raw"):
            text, thinking = _strip_control_tokens(reply.raw or reply.content), ""
        else:
            text, thinking = reply.content, reply.thinking if body.get("think") else ""

        def chunk(**fields: Any) -> dict[str, Any]:
            return {"model": body["model"], "created_at": _now(), "response": "", "done": False, **fields}

        chunks = [chunk(thinking=p) for p in _pieces(thinking, reply.chunk_size)]
        chunks += [chunk(response=p) for p in _pieces(text, reply.chunk_size)]
        final = {**chunk(), "done": True, **self._metrics(reply, thinking + text)}
        if not body.get("raw"):
            final["context"] = [1, 2, 3]  # raw mode returns no context (docs/api.md "Request (Raw Mode)")
        if body.get("stream", True):
            self._stream(reply, [*chunks, final])
            return
        merged = final
        merged["response"] = text
        if thinking:
            merged["thinking"] = thinking
        self._json(200, merged)

    # -- shared pieces --------------------------------------------------------------------------------

    def _model_checks(self, body: dict[str, Any], *, needs_tools: bool) -> str | None:
        name = str(body.get("model") or "")
        if not name:
            self._error(400, "model is required")  # routes.go:2457-2461
            return None
        found = self.fake._find(name)
        if found is None:
            self._error(404, f"model '{name}' not found")  # routes.go:2482-2485
            return None
        canonical, caps = found
        if "think" not in body and "thinking" in caps:
            body["think"] = True  # an absent think means *on* for thinking models (routes.go:2615-2620)
        if body.get("think") and "thinking" not in caps:
            self._error(400, f'"{name}" does not support thinking')  # routes.go:2621-2630
            return None
        if needs_tools and "tools" not in caps:
            # scheduleRunner wraps CheckCapabilities: routes.go:211-212, server/images.go:43-45,543-575.
            self._error(400, f"registry.ollama.ai/library/{canonical} does not support tools")
            return None
        return canonical

    def _reply(self) -> ScriptedReply | None:
        reply = self.fake._next_reply()
        if reply is None:
            self._error(500, "FakeOllamaServer: no scripted reply left for this request")
            return None
        if reply.status is not None:
            # Errors before any output are sent as a plain JSON body with their status (routes.go:2109-2119).
            self._error(reply.status, reply.error or "internal error")
            return None
        return reply

    @staticmethod
    def _metrics(reply: ScriptedReply, text: str) -> dict[str, Any]:
        # Final message fields: routes.go:2787-2805 (done_reason, durations) and api.Metrics (api/types.go:557-564).
        return {
            "done_reason": reply.done_reason,
            "total_duration": reply.eval_duration_ns + 60_000_000,
            "load_duration": 40_000_000,
            "prompt_eval_count": reply.prompt_eval_count,
            "prompt_eval_duration": 20_000_000,
            "eval_count": reply.eval_count if reply.eval_count is not None else max(1, len(text) // 4),
            "eval_duration": reply.eval_duration_ns,
        }

    def _stream(self, reply: ScriptedReply, chunks: list[dict[str, Any]]) -> None:
        # streamResponse (routes.go:2097-2140): NDJSON, one object per line, flushed as produced. Go's
        # net/http sends a body of unknown length with chunked transfer encoding.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Date", self.date_time_string())
        self.end_headers()
        self.fake.chunks_written = 0
        self.fake.disconnected.clear()
        try:
            for i, item in enumerate(chunks):
                if reply.drop_after is not None and i == reply.drop_after:
                    # A server restart: the socket closes with the chunked body unfinished.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if reply.end_after is not None and i == reply.end_after:
                    break
                if reply.error_after is not None and i == reply.error_after:
                    # Errors after output are written as one more NDJSON line (routes.go:2119-2123).
                    self._write_chunk(json.dumps({"error": reply.error or "internal error"}).encode() + b"\n")
                    break
                if reply.delay_s and i:
                    time.sleep(reply.delay_s)
                self._write_chunk(json.dumps(item).encode() + b"\n")
                self.fake.chunks_written += 1
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.fake.disconnected.set()
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
