"""The roles' interface: what the researcher, coder and analyst receive and return.

Every backend (offline search, LLM) implements the same three small protocols. The loop builds a
``Context`` from memory and hands it to the roles; the roles never touch the database. All records
are frozen dataclasses so a proposal or an outcome cannot change after it was made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DesignSummary:
    """What memory hands the agents about one recorded design (its best evaluation at the tier)."""

    id: int
    name: str
    origin: str
    spec: dict | None  # the design-space point, when the design has one (offline and baseline designs)
    score: float | None
    metrics: dict
    status: str
    parents: tuple[int, ...] = ()
    code: str | None = None
    analysis: str | None = None
    # Its score per seed at the tier (``score`` is their mean); ``racing``: it is owed more seeds before it
    # ranks as an elite or a parent (``memory.racing``).
    seed_scores: tuple[float, ...] = ()
    racing: bool = False
    # The design it trained exactly as (``memory.twins``): not a design of its own, kept out of top and elites.
    twin_of: int | None = None


def nothing_known(code: str) -> bool:
    """The memory of a search that has recorded no design yet."""
    return False


@dataclass(frozen=True)
class Context:
    """Built by the loop from memory; everything a role may know about the search so far."""

    tier: str
    iteration: int
    seed: int
    top: tuple[DesignSummary, ...]  # best designs at this tier, best first
    baselines: tuple[DesignSummary, ...]
    recent: tuple[DesignSummary, ...]  # latest evaluated designs, failures included
    # {choice: {str(value): {"n": int, "mean_score": float | None, "fails": int}}}
    choice_stats: dict
    # Whether memory already holds a design file, as dedup's first layer would find it. The producer
    # passes a value (equal for equal memories), so that two contexts of the same memory compare equal.
    is_known: Callable[[str], bool] = nothing_known
    # The best design of each niche, (cost class, family), by the mean over seeds: a quality-diversity
    # archive, so parents come from every kind of design, not only the best-scoring kind.
    elites: tuple[DesignSummary, ...] = ()

    def designs(self) -> tuple[DesignSummary, ...]:
        """Every design the context mentions, each once, in the order top, elites, baselines, recent."""
        seen: dict[int, DesignSummary] = {}
        for design in (*self.top, *self.elites, *self.baselines, *self.recent):
            seen.setdefault(design.id, design)
        return tuple(seen.values())

    def design(self, design_id: int) -> DesignSummary | None:
        return next((d for d in self.designs() if d.id == design_id), None)


@dataclass(frozen=True)
class Proposal:
    name: str
    motivation: str
    plan: str
    parents: tuple[int, ...]
    spec: dict | None = None
    calls: tuple[int, ...] = ()  # ids of the recorded LLM calls that produced it (LLM backend only)


@dataclass(frozen=True)
class Draft:
    code: str
    proposal: Proposal
    attempt: int = 1  # 1 for the first file written for a proposal, +1 for each rewrite after feedback
    calls: tuple[int, ...] = ()  # ids of the recorded LLM calls that produced it, failed attempts included


@dataclass(frozen=True)
class Outcome:
    design_id: int
    proposal: Proposal
    status: str  # "ok" or a named failure
    reason: str
    metrics: dict
    score: float | None


@dataclass(frozen=True)
class Analysis:
    text: str
    data: dict  # e.g. {"changed": {choice: [old, new]}, "delta_score": ..., "parent_score": ...}


class Researcher(Protocol):
    def propose(self, context: Context) -> Proposal: ...


class Coder(Protocol):
    def write(self, proposal: Proposal, context: Context, feedback: str | None = None,
              previous: Draft | None = None) -> Draft:
        """A design file for ``proposal``. With ``feedback`` (why a draft failed) this is a fix of
        ``previous``, the failed draft as the loop recorded it; a coder must not rely on its own memory
        of it, which a resumed run does not have."""
        ...


class Analyst(Protocol):
    def analyse(self, outcome: Outcome, context: Context) -> Analysis: ...


class Judge(Protocol):
    """A qualitative score (``data["judge_score"]``, 0 to 10) recorded beside the measured one, never instead."""

    def judge(self, outcome: Outcome, context: Context) -> Analysis: ...


class AgentFailure(Exception):
    """A role could not produce its result (an unparseable reply, no code, an unreachable model).

    ``status`` names the failure as recorded with the LLM calls (``malformed``, ``no-code``,
    ``http-429``, ``timeout``, ...); ``calls`` are the ids of those calls. The loop records the failure
    and goes on; it costs no evaluation.
    """

    def __init__(self, status: str, reason: str, calls: tuple[int, ...] = ()):
        super().__init__(f"{status}: {reason}")
        self.status, self.reason, self.calls = status, reason, tuple(calls)


class StopRun(Exception):
    """The agents cannot go on (a spending cap is reached, a replayed run left its recording): the loop
    stops the run cleanly with this message."""


@dataclass(frozen=True)
class Roles:
    researcher: Researcher
    coder: Coder
    analyst: Analyst
    name: str  # the backend's name; the loop records it as the designs' origin
    judge: Judge | None = None  # optional
