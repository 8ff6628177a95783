"""What must hold before the first LLM call, and how the client reaches a self-hosted endpoint.

``check_llm(models, api_base)`` finds the configuration problems that would otherwise surface as
failed calls minutes into a run, and raises ``LLMConfigError`` whose message is one line naming
the cause and the fix:

- a model string whose provider litellm does not know;
- a hosted provider whose credentials are not in the environment (``litellm.validate_environment``
  names the variables each provider needs);
- an endpoint that does not answer: ``api_base``, or Ollama's server;
- a model the endpoint says it does not serve (its model listing, when it has one).

It never calls a model: at most one short ``GET`` of the model listing per self-hosted endpoint.
An OpenAI-compatible ``api_base`` needs no key: ``api_key`` gives litellm a placeholder when the
environment has none, since litellm refuses to send a request without one.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

PLACEHOLDER_KEY = "no-key"  # what a self-hosted server that checks no key receives
OLLAMA_DEFAULT_BASE = "http://localhost:11434"  # where litellm sends ollama/ models without an api_base
OLLAMA_PROVIDERS = ("ollama", "ollama_chat")
PROBE_TIMEOUT_S = 3.0
SERVED_SHOWN = 5  # served models named in an error


class LLMConfigError(ValueError):
    """The LLM configuration cannot work; the message names the cause and the fix on one line."""


def load_litellm():
    """litellm, imported on first use (it takes seconds) with its network fetches and chatter off."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def is_local(api_base: str | None) -> bool:
    """Whether ``api_base`` is on this machine or a private network: a self-hosted server, which keeps
    working on a request its client abandoned (a hosted API does not hold one client's slot)."""
    if not api_base:
        return False
    host = urlsplit(api_base).hostname or ""
    if host == "localhost" or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def api_key(model: str, api_base: str | None) -> str | None:
    """The key to hand litellm for one request: None (litellm reads the environment), or with an
    ``api_base`` whose provider's key is not set, a placeholder."""
    if not api_base:
        return None
    keys = load_litellm().validate_environment(model=model, api_base=api_base)
    return None if keys["keys_in_environment"] else PLACEHOLDER_KEY


def provider_of(model: str) -> tuple[str, str]:
    """(provider, the model's name at the provider); LLMConfigError for a provider litellm does not know."""
    litellm = load_litellm()
    try:
        name, provider, _, _ = litellm.get_llm_provider(model)
    except Exception:  # litellm raises BadRequestError, or ValueError for odd strings
        raise LLMConfigError(f"model {model!r} names no provider litellm knows; write it as provider/model, "
                             f"e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5 or ollama/qwen2.5-coder:14b") \
            from None
    return provider, name


def check_llm(models: Iterable[str], api_base: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise LLMConfigError for the first problem found with ``models`` (every role's model) and
    ``api_base``; see the module docstring. Each endpoint is probed once."""
    listings: dict[str, list[str] | None] = {}
    for model in dict.fromkeys(models):
        provider, name = provider_of(model)
        if provider in OLLAMA_PROVIDERS:
            base = api_base or os.environ.get("OLLAMA_API_BASE") or OLLAMA_DEFAULT_BASE
            url, prefix = base.rstrip("/") + "/api/tags", f"{provider}/"
        elif api_base:
            url, prefix = api_base.rstrip("/") + "/models", f"{provider}/"
        else:
            _check_keys(model)
            continue
        if url not in listings:
            listings[url] = _served(url, timeout_s, model)
        served = listings[url]
        if served is not None and not _serves(served, name):
            shown = ", ".join(served[:SERVED_SHOWN]) + (", ..." if len(served) > SERVED_SHOWN else "")
            fix = f"use --model {prefix}{served[0]}" if served else "load a model into it"
            raise LLMConfigError(f"the server at {url.rsplit('/', 1)[0]} does not serve model {name!r} "
                                 f"(it serves: {shown or 'nothing'}); {fix}")


def _check_keys(model: str) -> None:
    missing = load_litellm().validate_environment(model=model)["missing_keys"]
    if missing:
        names = ", ".join(missing)
        raise LLMConfigError(f"model {model!r} needs {names} in the environment, which is not set; "
                             f"export {missing[0]}=... (or give --api-base for a local server, which needs no key)")


def _serves(served: list[str], name: str) -> bool:
    """Whether ``name`` is among the served ids; Ollama serves "qwen2.5" as "qwen2.5:latest"."""
    return name in served or (":" not in name and f"{name}:latest" in served)


def _served(url: str, timeout_s: float, model: str) -> list[str] | None:
    """The ids the endpoint lists at ``url``; None when it has no usable listing (it still answered)."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_s, headers=_auth(model, url))
    except httpx.HTTPError as exc:
        reason = (f"no answer within {timeout_s:g} s" if isinstance(exc, httpx.TimeoutException)
                  else str(exc) or type(exc).__name__)
        raise LLMConfigError(f"no LLM server answers at {url.rsplit('/', 1)[0]} ({reason}); "
                             f"start it, or correct --api-base") from None
    if response.status_code in (401, 403):
        raise LLMConfigError(f"the server at {url.rsplit('/', 1)[0]} refuses requests without its key "
                             f"(HTTP {response.status_code}); export {_key_variable(model)}=<its key>")
    if response.status_code != 200:
        return None
    try:
        data = response.json()
        if isinstance(data.get("models"), list):  # Ollama's /api/tags
            return [str(entry["name"]) for entry in data["models"]]
        return [str(entry["id"]) for entry in data["data"]]
    except (ValueError, KeyError, TypeError, AttributeError):  # a server without an OpenAI-style listing
        return None


def _auth(model: str, url: str) -> dict[str, str]:
    key = os.environ.get(_key_variable(model))
    return {"Authorization": f"Bearer {key}"} if key else {}


def _key_variable(model: str) -> str:
    missing = load_litellm().validate_environment(model=model)["missing_keys"]
    provider = model.split("/", 1)[0]
    return missing[0] if missing else f"{provider.upper()}_API_KEY"
