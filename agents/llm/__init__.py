"""The LLM backend: the researcher, coder, analyst and judge over litellm.

``llm_roles(settings, journal, static_check=...)`` builds the roles around one ``LLMClient``.
``journal`` is where the calls are recorded and cached replies found (the loop backs it with the
experience database, since agents never touch it); ``static_check`` is how the coder pre-checks a
file (the loop passes the evaluator's ``check_static``, which agents do not import). Any litellm
model string works per role: ``openai/...``, ``anthropic/...``, ``ollama/...``, or any
OpenAI-compatible server through ``api_base``. ``check_llm`` finds a configuration that cannot work
(an unknown provider, a missing key, an endpoint that does not answer) before the first call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agents.base import Roles
from agents.llm.client import (
    CACHE_MODES,
    CapReached,
    ClientSettings,
    InMemoryJournal,
    Journal,
    LLMCall,
    LLMClient,
    ParseError,
    ReplayMiss,
    Usage,
)
from agents.llm.parsing import StaticCheck, parse_syntax
from agents.llm.preflight import LLMConfigError, check_llm
from agents.llm.roles import LLMAnalyst, LLMCoder, LLMJudge, LLMResearcher

ROLE_NAMES = ("researcher", "coder", "analyst", "judge")
# Reply caps sent as max_tokens: a proposal, an analysis and a judgement are a few sentences; a design file
# is ~150 lines of Python (~2k tokens) with room for a short preamble.
REPLY_TOKENS = {"researcher": 1024, "coder": 4096, "analyst": 512, "judge": 512}


@dataclass(frozen=True)
class LLMSettings:
    model: str  # every role's model unless a role names its own
    researcher_model: str = ""
    coder_model: str = ""
    analyst_model: str = ""
    judge_model: str = ""  # empty: no judge
    fewshot: int = 3  # examples from memory in the researcher's prompt (n = 3, the FSAP finding)
    max_attempts: int = 3  # coder attempts per proposal, pre-check failures and evaluations together
    reply_tokens: Mapping[str, int] = field(default_factory=lambda: dict(REPLY_TOKENS))  # per role; 0 = no cap
    client: ClientSettings = field(default_factory=ClientSettings)

    def __post_init__(self) -> None:
        if not self.model or self.model == "offline":
            raise ValueError(f"the LLM backend needs a litellm model string such as 'openai/gpt-4o-mini', "
                             f"got {self.model!r}")
        if self.fewshot < 0 or self.max_attempts < 1:
            raise ValueError(f"fewshot must be >= 0 and max_attempts >= 1, got {self.fewshot} and "
                             f"{self.max_attempts}")
        if unknown := sorted(set(self.reply_tokens) - set(ROLE_NAMES)):
            raise ValueError(f"reply_tokens names unknown role(s) {', '.join(unknown)}; "
                             f"expected {', '.join(ROLE_NAMES)}")
        if bad := {role: n for role, n in self.reply_tokens.items() if n < 0}:
            raise ValueError(f"reply_tokens must be >= 0 (0 = no cap), got {bad}")

    def model_for(self, role: str) -> str:
        if role not in ROLE_NAMES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLE_NAMES)}")
        return getattr(self, f"{role}_model") or self.model

    def models(self) -> list[str]:
        """The distinct models the roles call, researcher first."""
        return list(dict.fromkeys(self.model_for(r) for r in ROLE_NAMES if r != "judge" or self.judge_model))

    def reply_tokens_for(self, role: str) -> int:
        return self.reply_tokens.get(role, REPLY_TOKENS[role])


def llm_roles(settings: LLMSettings, journal: Journal, seed: int = 0,
              static_check: StaticCheck = parse_syntax) -> Roles:
    """The LLM roles; the coder pre-checks each file with ``static_check`` (Python's parser alone
    unless the caller passes the evaluator's ``check_static``)."""
    client, tokens = LLMClient(settings.client, journal), settings.reply_tokens_for
    judge = (LLMJudge(client, settings.judge_model, settings.fewshot, tokens("judge"))
             if settings.judge_model else None)
    return Roles(researcher=LLMResearcher(client, settings.model_for("researcher"), seed, settings.fewshot,
                                          tokens("researcher")),
                 coder=LLMCoder(client, settings.model_for("coder"), settings.max_attempts, static_check,
                                tokens("coder")),
                 analyst=LLMAnalyst(client, settings.model_for("analyst"), tokens("analyst")), name="llm",
                 judge=judge)


__all__ = ["CACHE_MODES", "REPLY_TOKENS", "CapReached", "ClientSettings", "InMemoryJournal", "Journal", "LLMAnalyst",
           "LLMCall", "LLMClient", "LLMConfigError", "LLMCoder", "LLMJudge", "LLMResearcher", "LLMSettings",
           "ParseError", "ReplayMiss", "StaticCheck", "Usage", "check_llm", "llm_roles"]
