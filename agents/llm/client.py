"""The LLM client: one call through litellm, with retries, accounting, spending caps and a reply cache.

Every attempt is one ``LLMCall`` handed to a ``Journal`` (the loop writes it to the experience
database; agents never touch the database). Retries are ours, not litellm's (``num_retries=0``,
``max_retries=0``), so each HTTP attempt is recorded once, under a named status
(``TRANSPORT_STATUSES``): a timeout, a dropped connection, a truncated body, a reply that is not a
chat completion, 408/409/429 and 5xx are retried with exponential backoff; other HTTP errors are
final. Against a self-hosted endpoint (``local``), a timed-out request may still occupy the server's
only slot, so the retry waits at least as long as that attempt's timeout and gets twice its timeout
(up to ``MAX_TIMEOUT_GROWTH`` times the first); every retry records how long it waited and why. A
failed attempt records no tokens and no cost; only a reply counts toward the caps.

Each request carries the role's reply cap (``max_tokens``) and, for a reply that must be JSON, its
JSON schema as the structured-output format; a provider that refuses the format is recorded once
(``schema-refused``) and the run goes on in free text, parsed as before. A reply is handed to the
caller's ``parse`` function and the call is recorded with the parse verdict as its status (``ok``,
``malformed``, ``no-code``, ...), so a transcript shows why every reply was or was not used.

Caps: before each call the run's usage (tokens, dollars) is compared with ``max_tokens`` and
``max_cost``; a reached cap raises ``CapReached`` and the loop stops the run. A model litellm has no
price for is counted in tokens and its cost recorded as unknown (None), never guessed.

Cache: replies are keyed by a hash of (model, messages, how many times this exact request was made
before in the run). In ``record`` mode every reply is stored; in ``replay`` mode replies come only
from the cache, no model is called, and a miss raises ``ReplayMiss``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from agents.base import AgentFailure, StopRun
from agents.llm.preflight import api_key, is_local, load_litellm

CACHE_MODES = ("record", "replay", "off")
MAX_BACKOFF_S = 60.0
MAX_TIMEOUT_GROWTH = 4  # a self-hosted endpoint's timeout grows on retry to at most this many times timeout_s

T = TypeVar("T")


class CapReached(StopRun):
    """A spending cap (``max_cost`` dollars or ``max_tokens``) is reached."""


class ReplayMiss(StopRun):
    """Replay mode found no cached reply for a request: the run left the recorded one."""


class ParseError(Exception):
    """A reply that cannot be used, with the status recorded for its call (``malformed``, ``no-code``, ...)."""

    def __init__(self, status: str, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason
        self.calls: tuple[int, ...] = ()  # ids of the recorded attempts, set by the client (this reply's last)
        self.reply: str | None = None  # the unusable reply, set by the client


@dataclass(frozen=True)
class ClientSettings:
    api_base: str | None = None  # an OpenAI-compatible endpoint (vLLM, llama.cpp, a proxy); None: the provider's
    timeout_s: float = 120.0  # per HTTP attempt
    retries: int = 3  # further attempts after a retryable failure (timeout, connection, truncated, 429, 5xx, ...)
    backoff_s: float = 1.0  # first wait between attempts; doubles each time, at most MAX_BACKOFF_S
    max_cost: float = 0.0  # dollars the run may spend on LLM calls; 0 = no cap
    max_tokens: int = 0  # prompt + completion tokens the run may use; 0 = no cap
    cache: str = "record"  # "record" stores every reply, "replay" serves only stored replies, "off" neither
    local: bool | None = None  # a self-hosted endpoint (see the module docstring); None: api_base is on a local host

    def __post_init__(self) -> None:
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {self.cache!r}")
        for name in ("timeout_s", "retries", "backoff_s", "max_cost", "max_tokens"):
            if getattr(self, name) < 0 or (name == "timeout_s" and self.timeout_s == 0):
                raise ValueError(f"{name} must be {'> 0' if name == 'timeout_s' else '>= 0'}, "
                                 f"got {getattr(self, name)}")

    @property
    def self_hosted(self) -> bool:
        return is_local(self.api_base) if self.local is None else self.local


@dataclass(frozen=True)
class LLMCall:
    """One attempt at one LLM call, as recorded in the transcript."""

    role: str
    model: str
    status: str  # "ok", a parse failure ("malformed", "no-code", ...) or a transport one ("timeout", "http-429")
    request: dict  # as sent: {"messages", "timeout_s", "max_tokens"?, "response_format"?}, and "waited_s" and
    # "waited_because" on a retry
    reply: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None  # dollars; None = unknown (no price for the model)
    latency_s: float | None = None
    attempt: int = 1  # HTTP attempt number within the call (retries count up)
    cache_key: str | None = None
    cached: bool = False  # served from the cache, no model called
    design_id: int | None = None


@dataclass(frozen=True)
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # known cost in dollars
    unknown_cost_calls: int = 0  # answered calls whose cost is unknown

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, call: LLMCall) -> Usage:
        answered = call.reply is not None and not call.cached
        return Usage(self.calls + 1, self.prompt_tokens + (call.prompt_tokens or 0),
                     self.completion_tokens + (call.completion_tokens or 0), self.cost + (call.cost or 0.0),
                     self.unknown_cost_calls + (answered and call.cost is None))

    def describe(self) -> str:
        cost = f"${self.cost:.4f}"
        if self.unknown_cost_calls:
            cost += f" known, cost unknown for {self.unknown_cost_calls} call(s)"
        return f"{self.calls} LLM call(s), {self.tokens:,} tokens, {cost}"


class Journal(Protocol):
    """Where calls are recorded and cached replies looked up (the loop backs it with the experience db)."""

    def record(self, call: LLMCall) -> int:
        """Store the call (and, for a call with a reply and a cache key, the reply); return its id."""

    def cached(self, key: str) -> dict | None:
        """``{"reply", "prompt_tokens", "completion_tokens"}`` stored under ``key``, or None."""

    def usage(self) -> Usage:
        """What the run spent before this client started (a resumed run continues its caps)."""


@dataclass
class InMemoryJournal:
    """A journal in memory: for using the roles without a database, and for tests."""

    calls: list[LLMCall] = field(default_factory=list)
    cache: dict[str, dict] = field(default_factory=dict)

    def record(self, call: LLMCall) -> int:
        self.calls.append(call)
        if call.cache_key and call.reply is not None and not call.cached:
            self.cache.setdefault(call.cache_key, {"reply": call.reply, "prompt_tokens": call.prompt_tokens,
                                                   "completion_tokens": call.completion_tokens})
        return len(self.calls)

    def cached(self, key: str) -> dict | None:
        return self.cache.get(key)

    def usage(self) -> Usage:
        return Usage()


@dataclass(frozen=True)
class Completion:
    value: Any  # what ``parse`` returned
    text: str
    calls: tuple[int, ...]  # ids of the recorded attempts: failed ones first, this reply's last

    @property
    def call_id(self) -> int:
        return self.calls[-1]


def cache_key(model: str, messages: list[dict], occurrence: int) -> str:
    payload = json.dumps({"model": model, "messages": messages, "occurrence": occurrence}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


TRANSPORT_STATUSES: dict[str, str] = {
    "timeout": "no complete reply within timeout_s (late to answer, or stalled in the middle of the body)",
    "connection": "no connection, or the connection closed before any reply",
    "truncated": "the connection closed in the middle of the reply's body",
    "bad-response": "a reply that is not a chat completion (invalid or cut JSON, no choices, no message)",
    "http-NNN": "the server answered with HTTP status NNN",
    "schema-refused": "the provider refused the JSON-schema response format; the call and the rest of the run "
                      "go on without it",
    "llm-error": "anything else the client library raised; not retried",
}
_RETRYABLE_HTTP = (408, 409, 429)
_BAD_RESPONSE_WORDS = ("empty or invalid response", "invalid response object")  # litellm's, for unusable bodies


class TransportFailure(Exception):
    """One HTTP attempt that brought no usable reply; ``status`` is a key of TRANSPORT_STATUSES."""

    def __init__(self, status: str, retryable: bool, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status, self.retryable, self.reason = status, retryable, reason


def transport_status(exc: BaseException) -> tuple[str, bool]:
    """(status, retryable) for an exception raised by litellm.completion.

    litellm reports a dropped connection, a cut body and unparseable JSON alike as HTTP 500, which
    the server never sent; so the status is read from the whole chain of causes: the HTTP library's
    own errors say what really happened, and a status code counts only where a response carried it.
    """
    import httpx
    import litellm
    import openai

    chain = _causes(exc)
    if any(isinstance(e, litellm.Timeout | openai.APITimeoutError | httpx.TimeoutException | TimeoutError)
           for e in chain):
        return "timeout", True
    below = [e for e in chain if not type(e).__module__.startswith("litellm")]  # litellm's subclass openai's
    for e in below:
        if isinstance(e, openai.APIStatusError | httpx.HTTPStatusError):
            return _http_status(e.status_code if isinstance(e, openai.APIStatusError) else e.response.status_code)
    if any(isinstance(e, openai.APIConnectionError | httpx.TransportError | ConnectionError) for e in below):
        cut = any("message body" in str(e) or "incomplete" in str(e).lower() for e in below)
        return ("truncated" if cut else "connection"), True
    if any(isinstance(e, json.JSONDecodeError) for e in chain) or any(
            word in str(exc).lower() for word in _BAD_RESPONSE_WORDS):
        return "bad-response", True
    code = getattr(exc, "status_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return _http_status(code)
    if isinstance(exc, litellm.APIConnectionError):
        return "connection", True
    return "llm-error", False


def _http_status(code: int) -> tuple[str, bool]:
    return f"http-{code}", code in _RETRYABLE_HTTP or code >= 500


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _describe(exc: BaseException) -> str:
    """The error as recorded: litellm's message, and the first cause's when that says more (litellm words a
    dropped connection as "InternalServerError ... Connection error.")."""
    text = f"{type(exc).__name__}: {str(exc)[:500]}"
    root = _causes(exc)[-1]
    if root is not exc and str(root) and str(root) not in str(exc):
        text += f"; cause: {type(root).__name__}: {str(root)[:300]}"
    return text


def reply_text(response: Any) -> str:
    """The assistant message of a chat-completion response; TransportFailure ("bad-response") if it has none.

    A message whose content is None (a refusal, a tool call) reads as empty text, which the parsers name.
    """
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError) as exc:
        raise TransportFailure("bad-response", True,
                               f"the response is not a chat completion: {type(exc).__name__}: {exc}") from None
    return content if isinstance(content, str) else ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def price(response: Any, model: str) -> float | None:
    """The reply's cost in dollars, or None when litellm has no price for the model."""
    litellm = load_litellm()
    try:
        cost = float(litellm.completion_cost(completion_response=response))
    except Exception:  # litellm raises assorted error types for a model it cannot price
        return None
    if cost > 0:
        return cost
    try:  # litellm also answers 0 for unknown models; 0 is real only for a model priced at 0 (a local one)
        return 0.0 if litellm.get_model_info(model).get("input_cost_per_token") is not None else None
    except Exception:
        return None


@dataclass(frozen=True)
class Wait:
    """The pause before a retry, with the reason recorded on the retry."""

    seconds: float
    because: str


class LLMClient:
    """Calls models through litellm on behalf of the roles; see the module docstring."""

    def __init__(self, settings: ClientSettings, journal: Journal, *, sleep: Callable[[float], None] = time.sleep,
                 completion: Callable[..., Any] | None = None):
        """``completion`` replaces ``litellm.completion`` (same keyword arguments, an OpenAI-shaped response)."""
        self.settings, self.journal, self.sleep = settings, journal, sleep
        self.completion = completion
        self.usage = journal.usage()
        self.requests: Counter[str] = Counter()  # identical requests so far, for distinct cache keys
        self.structured = True  # False once a provider refused the JSON-schema response format

    def check_caps(self) -> None:
        s, u = self.settings, self.usage
        if s.max_tokens and u.tokens >= s.max_tokens:
            raise CapReached(f"token cap reached: {u.tokens:,} tokens used of max_tokens {s.max_tokens:,} "
                             f"({u.describe()})")
        if s.max_cost and u.cost >= s.max_cost:
            raise CapReached(f"cost cap reached: ${u.cost:.4f} spent of max_cost ${s.max_cost:.2f} ({u.describe()})")

    def complete(self, role: str, model: str, messages: list[dict], parse: Callable[[str], T],
                 design_id: int | None = None, *, max_tokens: int = 0,
                 response_format: dict | None = None) -> Completion:
        """One call: the parsed reply, or ParseError (the reply was unusable), AgentFailure (no reply after
        the retries), CapReached or ReplayMiss. Every attempt is recorded first.

        ``max_tokens`` caps the reply's length (0: the provider's default); ``response_format`` is the
        structured-output format of a reply that must be JSON (see ``schemas``), sent while the
        provider accepts it. Neither is part of the cache key, so recorded runs replay unchanged.
        """
        self.check_caps()
        base = cache_key(model, messages, 0)
        occurrence = self.requests[base]
        self.requests[base] += 1
        key = None if self.settings.cache == "off" else cache_key(model, messages, occurrence)
        request = {"messages": messages, **({"max_tokens": max_tokens} if max_tokens else {}),
                   **({"response_format": response_format} if response_format else {})}
        call = LLMCall(role, model, "ok", request, cache_key=key, design_id=design_id)
        if self.settings.cache == "replay":
            return self._replay(replace(call, request={"messages": messages}), parse)
        return self._call(call, parse)

    def _record(self, call: LLMCall) -> int:
        self.usage = self.usage.add(call)
        return self.journal.record(call)

    def _finish(self, call: LLMCall, text: str, parse: Callable[[str], T], failed: tuple[int, ...] = (),
                cut: bool = False) -> Completion:
        try:
            value = parse(text)
        except ParseError as exc:
            reason = exc.reason + (f" (the reply stopped at its cap of max_tokens {call.request['max_tokens']})"
                                   if cut and "max_tokens" in call.request else "")
            exc.calls = (*failed, self._record(replace(call, status=exc.status, error=reason)))
            exc.reply = text
            raise
        return Completion(value, text, (*failed, self._record(call)))

    def _replay(self, call: LLMCall, parse: Callable[[str], T]) -> Completion:
        hit = self.journal.cached(call.cache_key)
        if hit is None:
            raise ReplayMiss(f"replay: no cached reply for this {call.role} request to {call.model} "
                             f"(key {call.cache_key[:12]}); the run has left the recorded one")
        call = replace(call, reply=hit["reply"], prompt_tokens=hit.get("prompt_tokens"),
                       completion_tokens=hit.get("completion_tokens"), cost=0.0, latency_s=0.0, cached=True)
        return self._finish(call, hit["reply"], parse)

    def _call(self, call: LLMCall, parse: Callable[[str], T]) -> Completion:
        """Attempts until one brings a reply; each failed one is recorded (no tokens, no cost) before the next.

        A refused response format is not a retry: the same request goes again at once without it.
        """
        s, asked = self.settings, call.request
        failed: list[int] = []
        attempt, retries, timeout_s, wait = 0, 0, s.timeout_s, None
        while True:
            attempt += 1
            request = {key: value for key, value in asked.items()
                       if key != "response_format" or self.structured} | {"timeout_s": timeout_s}
            if wait is not None:
                request |= {"waited_s": round(wait.seconds, 3), "waited_because": wait.because}
            call = replace(call, attempt=attempt, request=request)
            started = time.monotonic()
            try:
                response, text = self._request(call)
            except TransportFailure as failure:
                failed.append(self._record(replace(call, status=failure.status, error=failure.reason, cost=0.0,
                                                   latency_s=time.monotonic() - started)))
                if failure.status == "schema-refused":
                    self.structured, wait = False, None
                    continue
                if not failure.retryable or retries == s.retries:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise AgentFailure(failure.status, f"{call.role} call to {call.model} failed{tries}: "
                                                       f"{failure.reason}", tuple(failed)) from None
                retries += 1
                wait = self._wait(failure.status, retries, timeout_s)
                if failure.status == "timeout" and s.self_hosted:
                    timeout_s = min(2 * timeout_s, MAX_TIMEOUT_GROWTH * s.timeout_s)
                self.sleep(wait.seconds)
                continue
            usage = getattr(response, "usage", None)
            call = replace(call, reply=text, latency_s=time.monotonic() - started,
                           prompt_tokens=_count(getattr(usage, "prompt_tokens", None)),
                           completion_tokens=_count(getattr(usage, "completion_tokens", None)),
                           cost=price(response, call.model))
            return self._finish(call, text, parse, tuple(failed), cut=finish_reason(response) == "length")

    def _wait(self, status: str, retry: int, timeout_s: float) -> Wait:
        """The pause before retry number ``retry`` after a failure with ``status``."""
        backoff = min(self.settings.backoff_s * 2 ** (retry - 1), MAX_BACKOFF_S)
        if status == "timeout" and self.settings.self_hosted and backoff < timeout_s:
            return Wait(timeout_s, f"the previous attempt timed out after {timeout_s:g} s and a self-hosted server "
                                   f"may still be answering it; a retry sent at once would queue behind it")
        return Wait(backoff, f"backoff after {status}")

    def _request(self, call: LLMCall) -> tuple[Any, str]:
        """One HTTP attempt: the response and its text, or TransportFailure naming what went wrong."""
        completion = self.completion or load_litellm().completion
        request, api_base = call.request, self.settings.api_base
        extra = {key: request[key] for key in ("max_tokens", "response_format") if key in request}
        try:
            response = completion(model=call.model, messages=request["messages"], api_base=api_base,
                                  api_key=api_key(call.model, api_base), timeout=request["timeout_s"],
                                  num_retries=0, max_retries=0, **extra)
        except Exception as exc:  # the boundary to a third-party client: every error becomes a named status
            if "response_format" in extra and format_refused(exc):
                raise TransportFailure("schema-refused", True, _describe(exc)) from None
            status, retryable = transport_status(exc)
            raise TransportFailure(status, retryable, _describe(exc)) from None
        return response, reply_text(response)


def format_refused(exc: BaseException) -> bool:
    """Whether the provider (or litellm for it) refused the structured-output format: litellm's
    UnsupportedParamsError, or an HTTP 400 whose message names the format."""
    import litellm

    if isinstance(exc, litellm.UnsupportedParamsError):
        return True
    text = str(exc).lower()
    return getattr(exc, "status_code", None) == 400 and any(
        word in text for word in ("response_format", "json_schema", "response format"))


def finish_reason(response: Any) -> str | None:
    try:
        return response.choices[0].finish_reason
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
