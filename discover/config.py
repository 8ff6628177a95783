"""Run configuration: one frozen, validated object, merged once from defaults, an optional
TOML file and command-line flags; unknown keys fail loudly. The effective configuration is
written into the workspace with every run."""

from __future__ import annotations

import importlib.util
import json
import os
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from evaluator.tiers import DEFAULT_TIER, TIERS
from sandbox.executors import EXECUTORS
from sandbox.ray_executor import INSTALL_HINT


class ConfigError(ValueError):
    pass


LLM_CACHE_MODES = ("record", "replay", "off")  # agents.llm.CACHE_MODES, without importing litellm's client here
LLM_ROLES = ("researcher", "coder", "analyst", "judge")  # agents.llm.ROLE_NAMES


@dataclass(frozen=True)
class RunConfig:
    workspace: str = "runs"          # folder holding experience.db, the archive and logs
    tier: str = DEFAULT_TIER         # evaluation tier for proposals and references
    budget: int = 8                  # evaluations to spend (duplicates are free; failures count)
    seed: int = 0                    # evaluation seed and agents' random seed
    workers: int = 0                 # parallel evaluations; 0 = one per CPU core
    model: str = "offline"           # agent backend: "offline", or a litellm model string for every LLM role
    executor: str = "local"          # where evaluations run: "local" (process pool) or "ray" (one Ray task each)
    ray_address: str = ""            # a running Ray cluster ("auto", "HOST:PORT", "ray://HOST:10001"); empty: start one
    reference_seeds: int = 1         # seeds per baseline when references are seeded
    race_seeds: int = 3              # seeds a design that could reach the top gets, within the budget; 1 = no racing
    max_attempts: int = 3            # coder attempts per proposal, pre-check failures included (self-debugging)
    references: tuple[str, ...] = ()  # baselines seeded as references; empty = all of them
    # The LLM backend (any model other than "offline"); see agents/llm.
    researcher_model: str = ""       # per-role litellm model strings; empty = `model`
    coder_model: str = ""
    analyst_model: str = ""
    judge_model: str = ""            # the optional judge; empty = no judge
    api_base: str = ""               # an OpenAI-compatible endpoint (vLLM, llama.cpp, a proxy); empty = the provider's
    max_cost: float = 0.0            # dollars the run may spend on LLM calls; 0 = no cap
    max_tokens: int = 0              # prompt + completion tokens the run may use; 0 = no cap
    fewshot: int = 3                 # designs from memory shown to the researcher as examples (FSAP: n = 3)
    llm_timeout_s: float = 120.0     # per HTTP attempt
    llm_retries: int = 3             # further attempts after a timeout, dropped or cut reply, 429 or 5xx
    llm_backoff_s: float = 1.0       # first wait between attempts; doubles each time
    llm_cache: str = "record"        # "record" every reply, "replay" only recorded replies (no model), or "off"
    llm_cache_from: str = ""         # an experience.db whose recorded replies are replayed; empty = this workspace's
    max_llm_failures: int = 5        # agent failures in a row (no usable reply) that stop the run
    # Reply caps per role, sent as max_tokens with each request (agents.llm.REPLY_TOKENS); 0 = no cap.
    researcher_reply_tokens: int = 1024  # a proposal: a few sentences of JSON
    coder_reply_tokens: int = 4096   # a whole design file
    analyst_reply_tokens: int = 512  # an analysis: three to six sentences
    judge_reply_tokens: int = 512    # a score and two or three sentences

    def __post_init__(self) -> None:
        _check_types(self)
        if self.tier not in TIERS:
            raise ConfigError(f"tier must be one of {', '.join(TIERS)}, got {self.tier!r}")
        if self.budget < 0:
            raise ConfigError(f"budget must be >= 0, got {self.budget}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if isinstance(self.references, list):
            object.__setattr__(self, "references", tuple(self.references))
        if self.reference_seeds < 1:
            raise ConfigError(f"reference_seeds must be >= 1, got {self.reference_seeds}")
        if self.race_seeds < 1:
            raise ConfigError(f"race_seeds must be >= 1, got {self.race_seeds}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.ray_address and self.executor != "ray":
            raise ConfigError("ray_address is read only when executor = 'ray'")
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError(f"executor 'ray' needs the ray package: {INSTALL_HINT}")
        self._check_llm()

    def _check_llm(self) -> None:
        if not self.model:
            raise ConfigError("model must be 'offline' or a litellm model string such as 'openai/gpt-4o-mini'")
        role_models = [f"{role}_model" for role in LLM_ROLES]
        if self.backend == "offline" and (named := [k for k in role_models if getattr(self, k)]):
            raise ConfigError(f"{', '.join(named)} need(s) the LLM backend; set model to a litellm model string")
        if self.llm_cache not in LLM_CACHE_MODES:
            raise ConfigError(f"llm_cache must be one of {', '.join(LLM_CACHE_MODES)}, got {self.llm_cache!r}")
        if self.llm_cache_from and self.llm_cache != "replay":
            raise ConfigError("llm_cache_from is read only when llm_cache = 'replay'")
        if self.llm_cache_from and not Path(self.llm_cache_from).is_file():
            raise ConfigError(f"llm_cache_from: no experience database at {self.llm_cache_from}")
        minimum = {"max_attempts": 1, "max_cost": 0, "max_tokens": 0, "fewshot": 0, "llm_retries": 0,
                   "llm_backoff_s": 0, "max_llm_failures": 1,
                   **{f"{role}_reply_tokens": 0 for role in LLM_ROLES}}
        for key, low in minimum.items():
            if getattr(self, key) < low:
                raise ConfigError(f"{key} must be >= {low}, got {getattr(self, key)}")
        if self.llm_timeout_s <= 0:
            raise ConfigError(f"llm_timeout_s must be > 0, got {self.llm_timeout_s}")

    @property
    def backend(self) -> str:
        """"offline" for the embedded roles, "llm" for any other model string."""
        return "offline" if self.model == "offline" else "llm"

    @property
    def effective_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)

    @property
    def executor_options(self) -> dict:
        """What the executor needs beyond ``workers``: for Ray, the cluster and a GPU per job on a GPU tier."""
        if self.executor != "ray":
            return {}
        return {"address": self.ray_address or None, "gpus": 1 if TIERS[self.tier].device == "cuda" else 0}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _check_types(config: RunConfig) -> None:
    """Each value has its field's type (an int is accepted for a float and becomes one; a list for a tuple)."""
    for f in fields(config):
        value, expected = getattr(config, f.name), type(f.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(config, f.name, float(value))
        elif expected is tuple and isinstance(value, list):
            object.__setattr__(config, f.name, tuple(value))
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{f.name} must be {expected.__name__}, got {type(value).__name__} {value!r}")


def llm_settings(config: RunConfig):
    """The LLM backend's settings (agents.llm.LLMSettings) from a run configuration."""
    from agents.llm import ClientSettings, LLMSettings

    client = ClientSettings(api_base=config.api_base or None, timeout_s=config.llm_timeout_s,
                            retries=config.llm_retries, backoff_s=config.llm_backoff_s, max_cost=config.max_cost,
                            max_tokens=config.max_tokens, cache=config.llm_cache)
    reply_tokens = {role: getattr(config, f"{role}_reply_tokens") for role in LLM_ROLES}
    return LLMSettings(model=config.model, researcher_model=config.researcher_model, coder_model=config.coder_model,
                       analyst_model=config.analyst_model, judge_model=config.judge_model, fewshot=config.fewshot,
                       max_attempts=config.max_attempts, reply_tokens=reply_tokens, client=client)


def check_llm(config: RunConfig) -> None:
    """Before a run: ConfigError (one line: the cause and the fix) when the LLM configuration cannot
    work: an unknown provider, a missing API key, an ``api_base`` that does not answer, a model the
    endpoint does not serve (agents.llm.check_llm). Nothing to check offline or in replay, where no
    model is called; no model is called here either."""
    if config.backend == "offline" or config.llm_cache == "replay":
        return
    from agents.llm import LLMConfigError
    from agents.llm import check_llm as check

    try:
        check(llm_settings(config).models(), config.api_base or None)
    except LLMConfigError as exc:
        raise ConfigError(str(exc)) from None


def merge(base: RunConfig, overrides: dict) -> RunConfig:
    """``base`` with ``overrides`` applied; None values are ignored, unknown keys are errors."""
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def load(path: str | Path | None = None, **flags) -> RunConfig:
    """Defaults, then the TOML file (if any), then flags."""
    config = RunConfig()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from None
        config = merge(config, data.get("discover", data))
    return merge(config, flags)
