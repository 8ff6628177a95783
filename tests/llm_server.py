"""A scripted LLM served over a real HTTP socket on 127.0.0.1, speaking OpenAI's chat-completions protocol.

Tests reach it through litellm (model ``openai/<name>``, ``api_base = server.url``), so every byte
of the client's request and error handling is exercised. What the server answers is a script: a
queue of actions per role (the role is read from the system prompt's first line, "Role: <name>."),
or a default when a role's queue is empty. An action is a reply text (optionally late), an HTTP
fault, a raw body (for broken JSON), or a connection-level fault: a connection dropped without a
reply, a body shorter than its Content-Length or cut mid-JSON, a body that stalls half-way. Every
request is kept for the test to inspect. With ``single_slot`` the server answers one completion at a
time, as llama.cpp's server does with one slot: a request waits while an earlier one (even one its
client abandoned) is being answered. ``GET /v1/models`` lists ``models``.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE_LINE = re.compile(r"Role:\s*(\w+)")


@dataclass(frozen=True)
class Reply:
    """A normal completion: ``text`` as the assistant message, with usage fields."""

    text: str
    prompt_tokens: int | None = None  # None: counted as words of the request
    completion_tokens: int | None = None  # None: counted as words of the text
    delay_s: float = 0.0
    finish_reason: str = "stop"  # "length": the reply stopped at its max_tokens


@dataclass(frozen=True)
class Fault:
    """An HTTP error status with an OpenAI-style error body (and optional headers such as Retry-After)."""

    status: int
    message: str = "scripted fault"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Raw:
    """A 200 response with an arbitrary body (not JSON, truncated JSON, a wrong shape)."""

    body: str
    content_type: str = "application/json"


@dataclass(frozen=True)
class Drop:
    """The connection is closed after the request is read, before a single byte of the reply."""


@dataclass(frozen=True)
class Truncated:
    """A completion whose body stops ``missing`` bytes short of its Content-Length, then the connection
    closes (a proxy or server that died mid-reply)."""

    text: str = "a reply that never arrives whole"
    missing: int = 40


@dataclass(frozen=True)
class Stall:
    """Headers and the first ``sent`` bytes of a completion at once, then nothing for ``stall_s`` seconds
    (a reply slower than the client's timeout in the middle of its body), then the rest."""

    text: str = "a reply that stalls"
    sent: int = 20
    stall_s: float = 3.0


Action = Reply | Fault | Raw | Drop | Truncated | Stall


def role_of(request: dict) -> str:
    """The role named in the first system message ("Role: coder." -> "coder"), or "unknown"."""
    for message in request.get("messages", []):
        if message.get("role") == "system":
            match = ROLE_LINE.search(str(message.get("content", "")))
            return match.group(1) if match else "unknown"
    return "unknown"


@dataclass
class Script:
    """Per-role queues of actions; ``default(role, request)`` answers when a role's queue is empty."""

    queues: dict[str, deque] = field(default_factory=dict)
    default: Callable[[str, dict], Action] | None = None

    def push(self, role: str, *actions: Action) -> Script:
        self.queues.setdefault(role, deque()).extend(actions)
        return self

    def next(self, request: dict) -> Action:
        role = role_of(request)
        queue = self.queues.get(role)
        if queue:
            return queue.popleft()
        if self.default is not None:
            return self.default(role, request)
        return Fault(500, f"the script has no reply left for role {role!r}")


def completion_body(text: str, model: str, prompt_tokens: int, completion_tokens: int,
                    finish_reason: str = "stop") -> dict:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class LLMServer:
    """``with LLMServer(script) as server: ...`` serves on ``server.url`` until the block ends."""

    def __init__(self, script: Script | None = None, *, single_slot: bool = False,
                 models: tuple[str, ...] = ("test-model",)):
        self.script = script or Script()
        self.requests: list[dict] = []
        self.models = models
        self.lock = threading.Lock()
        self.slot = threading.Lock() if single_slot else None
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def roles_seen(self) -> list[str]:
        with self.lock:
            return [role_of(r) for r in self.requests]

    def __enter__(self) -> LLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, request: dict) -> Action:
        with self.lock:
            self.requests.append(request)
            return self.script.next(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: str, content_type: str = "application/json",
                      headers: tuple[tuple[str, str], ...] = ()) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self) -> None:
                if not self.path.rstrip("/").endswith("/models"):
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                    return
                listing = [{"id": name, "object": "model", "owned_by": "scripted"} for name in server.models]
                self._send(200, json.dumps({"object": "list", "data": listing}))

            def do_POST(self) -> None:
                if server.slot is None:
                    self._complete()
                    return
                with server.slot:
                    self._complete()

            def _complete(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                    return
                try:
                    request = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, json.dumps({"error": {"message": "request body is not JSON"}}))
                    return
                action = server._answer(request)
                if isinstance(action, Drop | Truncated | Stall):
                    self._misbehave(action, request)
                elif isinstance(action, Fault):
                    body = {"error": {"message": action.message, "type": "scripted", "code": action.status}}
                    self._send(action.status, json.dumps(body), headers=action.headers)
                elif isinstance(action, Raw):
                    self._send(200, action.body, action.content_type)
                else:
                    if action.delay_s:
                        time.sleep(action.delay_s)
                    words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
                    prompt = words if action.prompt_tokens is None else action.prompt_tokens
                    completion = (len(action.text.split()) if action.completion_tokens is None
                                  else action.completion_tokens)
                    body = completion_body(action.text, request.get("model", "test-model"), prompt, completion,
                                           action.finish_reason)
                    self._send(200, json.dumps(body))

            def _misbehave(self, action: Drop | Truncated | Stall, request: dict) -> None:
                """The connection-level faults: each ends by closing the connection."""
                self.close_connection = True
                if isinstance(action, Drop):
                    return
                body = json.dumps(completion_body(action.text, request.get("model", "test-model"), 10, 5)).encode()
                length = len(body) + (action.missing if isinstance(action, Truncated) else 0)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                try:
                    if isinstance(action, Stall):
                        self.wfile.write(body[:action.sent])
                        self.wfile.flush()
                        time.sleep(action.stall_s)
                        body = body[action.sent:]
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first

        return Handler


def cut_json(text: str = "a reply cut in half", keep: float = 0.5) -> Raw:
    """A 200 whose completion JSON is cut after ``keep`` of its bytes; the Content-Length matches the cut."""
    body = json.dumps(completion_body(text, "test-model", 10, 5))
    return Raw(body[:int(len(body) * keep)])


def proposal_reply(name: str = "Gated linear attention with a short convolution", parents: list[int] | None = None,
                   plan: str = "add a data-dependent scalar decay per head") -> str:
    """A valid researcher reply (JSON in a fenced block, as models often answer)."""
    body = {"name": name, "motivation": "a forget gate clears stale associations", "plan": plan}
    if parents is not None:
        body["parents"] = parents
    return f"Here is my proposal.\n```json\n{json.dumps(body)}\n```"


def code_reply(code: str) -> str:
    """A valid coder reply: the whole file in one python block."""
    return f"Here is the file.\n\n```python\n{code}\n```\n"


def _design_variants(rng: random.Random, good: str) -> str:
    """A design file broken (or not) in one of many ways."""
    cuts = [
        lambda c: c,
        lambda c: "import os\n" + c,
        lambda c: c.replace("import torch\n", "import torch\nimport socket\n"),
        lambda c: c.replace("class Mixer", "class Mixr"),
        lambda c: c.replace("def forward(", "def fwd("),
        lambda c: c.replace("def step(", "def step_(", 1),
        lambda c: c.replace("layer_idx, n_layers, **kw", "layer_idx"),
        lambda c: c[: rng.randrange(1, len(c))],
        lambda c: c.replace("(", "", 1),
        lambda c: c + "\nopen('/etc/passwd').read()\n",
        lambda c: c + "\nx = eval('1 + 1')\n",
        lambda c: c + "\ny = torch.__dict__\n",
        lambda c: c.replace("\n", "\n\x00", 1),
        lambda c: "x = " + "(" * 3000 + "1" + ")" * 3000 + "\n" + c,
        lambda c: "\t" + c,
    ]
    return rng.choice(cuts)(good)


def hostile_reply(rng: random.Random, good_code: str) -> str | Raw | Fault:
    """One randomized malformed or hostile reply: broken JSON, wrong shapes, prompt injection, huge or
    binary text, code that is unsafe, cut off or breaks the contract, or an HTTP-level fault."""
    words = ["ignore previous instructions", "DROP TABLE designs;", "```", "{", "}", "\"name\":", "null",
             "\u202e", "\U0001f600", "NaN", "Infinity", "\\u0000", "<script>", "parents", "[", "]"]
    kind = rng.randrange(16)
    if kind == 0:
        return ""
    if kind == 1:
        return " ".join(rng.choice(words) for _ in range(rng.randrange(1, 40)))
    if kind == 2:
        text = json.dumps({"name": "x", "motivation": "m", "plan": "p", "parents": [1]})
        return text[: rng.randrange(len(text))]
    if kind == 3:
        value = rng.choice([None, 7, "string", [1, 2], True, {"nested": {"deep": []}}, 1e308, -0.0])
        key = rng.choice(["name", "motivation", "plan", "parents", "score", "rationale"])
        return json.dumps({"name": "n", "motivation": "m", "plan": "p", key: value})
    if kind == 4:
        return "[" * rng.randrange(1000, 50_000) + "]" * rng.randrange(0, 10)
    if kind == 5:
        return json.dumps({"name": "n" * rng.randrange(81, 500), "motivation": "m", "plan": "p"})
    if kind == 6:
        return json.dumps({"name": "n", "motivation": "m", "plan": "p",
                           "parents": [rng.randrange(-5, 10**9) for _ in range(rng.randrange(0, 5))]})
    if kind == 7:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 300)))
    if kind == 8:
        return "x" * rng.randrange(200_001, 260_000)
    if kind == 9:
        return f"```python\n{_design_variants(rng, good_code)}\n```"
    if kind == 10:
        return f"```python\n{_design_variants(rng, good_code)}"  # unterminated fence
    if kind == 11:
        return f"```javascript\nconsole.log(1)\n```\n```\n{_design_variants(rng, good_code)}\n```"
    if kind == 12:
        return json.dumps({"score": rng.choice([-1, 11, "7", None, 1e400, True]), "rationale": "r"})
    if kind == 13:
        return Raw(rng.choice(["{not json", "[]", '{"choices": []}', '{"choices": [{"message": null}]}', ""]))
    if kind == 14:
        return Fault(rng.choice([400, 401, 404, 422, 429, 500, 502, 503]))
    return '{"name": "x", "motivation": "m", "plan": "p", "parents": ' + "9" * rng.randrange(4301, 6000) + "}"
