"""The four roles over an LLM: researcher, coder (self-debugging), analyst and judge.

Each role renders its template from the context, makes calls through ``LLMClient`` (which records
every attempt) and parses the reply strictly. Every call carries the role's reply cap
(``reply_tokens``); the researcher's and the judge's also carry the JSON schema of their reply. A
role that cannot produce its result raises ``AgentFailure`` with the ids of the calls it made; the
loop records it and moves on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

from agents.base import AgentFailure, Analysis, Context, DesignSummary, Draft, Outcome, Proposal
from agents.llm import schemas, views
from agents.llm.client import LLMClient, ParseError
from agents.llm.parsing import (
    StaticCheck,
    parse_analysis,
    parse_design,
    parse_judgement,
    parse_proposal,
    parse_syntax,
)
from agents.llm.templates import knowledge, render, render_text

PROPOSAL_FORMAT = schemas.response_format("proposal", schemas.PROPOSAL)
JUDGEMENT_FORMAT = schemas.response_format("judgement", schemas.JUDGEMENT)
PARENT_POOL = 6  # the researcher picks its parent among the best few designs, better ones more often
MAX_PREVIOUS_CHARS = 12_000  # how much of an unusable reply goes back to the coder


class LLMResearcher:
    """Picks a parent from memory, shows it with its analysis, its siblings and ``fewshot`` of the best
    designs as examples, and asks for one proposal (JSON), with one repair attempt."""

    def __init__(self, client: LLMClient, model: str, seed: int = 0, fewshot: int = 3, reply_tokens: int = 0):
        self.client, self.model, self.fewshot, self.reply_tokens = client, model, fewshot, reply_tokens
        self.rng = random.Random(seed)

    def pick_parent(self, context: Context) -> DesignSummary:
        pool = views.ranked(context)[:PARENT_POOL] or [b for b in context.baselines if b.code]
        if not pool:
            raise AgentFailure("no-parent", "memory holds no design with code to build on (seed references first)")
        return self.rng.choices(pool, weights=[1 / (rank + 1) for rank in range(len(pool))])[0]

    def propose(self, context: Context) -> Proposal:
        parent = self.pick_parent(context)
        examples = [d for d in views.ranked(context) if d.id != parent.id][: self.fewshot]
        siblings = views.siblings(context, parent.id)
        recent = [d for d in context.recent if d.id not in {s.id for s in siblings}]
        shown = {parent.id} | {d.id for d in (*examples, *siblings, *context.baselines, *recent)}
        messages = render("researcher", knowledge=knowledge(), tier=context.tier, iteration=context.iteration,
                          parent=views.full(parent), siblings=views.listing(siblings),
                          examples=views.listing(examples, views.full), references=views.listing(context.baselines),
                          recent=views.listing(recent), elites=views.listing(context.elites))

        def parse(reply: str) -> dict:
            return parse_proposal(reply, shown, parent.id)

        calls: list[int] = []
        for repair in (False, True):
            try:
                result = self.client.complete("researcher", self.model, messages, parse,
                                              max_tokens=self.reply_tokens, response_format=PROPOSAL_FORMAT)
            except AgentFailure as failure:
                raise AgentFailure(failure.status, failure.reason, (*calls, *failure.calls)) from None
            except ParseError as error:
                calls.extend(error.calls)
                if repair:
                    raise AgentFailure(error.status, f"the researcher's reply was unusable after a repair "
                                                     f"attempt: {error.reason}", tuple(calls)) from None
                messages = [*messages, {"role": "assistant", "content": error.reply or ""},
                            *render("researcher_repair", error=error.reason,
                                    allowed_parents=", ".join(str(i) for i in sorted(shown)))]
                continue
            calls.extend(result.calls)
            p = result.value
            return Proposal(p["name"], p["motivation"], p["plan"], p["parents"], calls=tuple(calls))
        raise AssertionError("unreachable: the repair attempt returns or raises")


@dataclass
class _Attempts:
    used: int  # coder attempts spent on the proposal so far
    previous: str  # the last file (or unusable reply) written for it


class LLMCoder:
    """Writes the whole design file; a failed pre-check or evaluation goes back as an error to fix, until
    ``max_attempts`` attempts per proposal are spent. ``Draft.attempt`` counts them.

    ``static_check`` is the pre-check's static part (see ``parsing.precheck``): the evaluator's
    ``check_static`` rejects an unsafe file before it costs an evaluation.
    """

    def __init__(self, client: LLMClient, model: str, max_attempts: int = 3,
                 static_check: StaticCheck = parse_syntax, reply_tokens: int = 0):
        self.client, self.model, self.max_attempts, self.reply_tokens = client, model, max_attempts, reply_tokens
        self.parse = partial(parse_design, static_check=static_check)
        self.attempts: dict[tuple, _Attempts] = {}

    @staticmethod
    def _key(proposal: Proposal) -> tuple:
        return proposal.name, proposal.plan, proposal.parents

    def _fix(self, proposal: Proposal, previous: str, error: str, attempt: int) -> list[dict]:
        return render("coder_fix", contract=render_text("contract"), name=proposal.name, plan=proposal.plan,
                      error=error, previous=previous[:MAX_PREVIOUS_CHARS], attempt=attempt,
                      max_attempts=self.max_attempts)

    def write(self, proposal: Proposal, context: Context, feedback: str | None = None,
              previous: Draft | None = None) -> Draft:
        state = None
        if feedback is not None:  # the failed draft as the loop recorded it, else the last one written here
            state = (_Attempts(previous.attempt, previous.code) if previous is not None
                     else self.attempts.get(self._key(proposal)))
        attempt = state.used + 1 if state else 1
        if state is not None:
            messages = self._fix(proposal, f"```python\n{state.previous}```", feedback, attempt)
        else:
            parent = context.design(proposal.parents[0]) if proposal.parents else None
            messages = render("coder", contract=render_text("contract"), name=proposal.name,
                              motivation=proposal.motivation, plan=proposal.plan,
                              parent_code=(parent.code or "").strip() if parent else render_text("none"))
        calls: list[int] = []
        error: ParseError | None = None
        while attempt <= self.max_attempts:
            try:
                result = self.client.complete("coder", self.model, messages, self.parse, max_tokens=self.reply_tokens)
            except AgentFailure as failure:
                raise AgentFailure(failure.status, failure.reason, (*calls, *failure.calls)) from None
            except ParseError as unusable:
                error = unusable
                calls.extend(error.calls)
                self.attempts[self._key(proposal)] = _Attempts(attempt, error.reply or "")
                attempt += 1
                messages = self._fix(proposal, error.reply or "", f"{error.status}: {error.reason}", attempt)
                continue
            calls.extend(result.calls)
            self.attempts[self._key(proposal)] = _Attempts(attempt, result.value)
            return Draft(result.value, proposal, attempt, tuple(calls))
        last = f"; last: {error.status}: {error.reason}" if error else ""
        raise AgentFailure(error.status if error else "attempts",
                           f"no usable design file for {proposal.name!r} after {self.max_attempts} attempts{last}",
                           tuple(calls))


def _parent(outcome: Outcome, context: Context) -> DesignSummary | None:
    return context.design(outcome.proposal.parents[0]) if outcome.proposal.parents else None


class LLMAnalyst:
    """Writes the analysis stored with the design: what changed, what the metrics show, what to try next."""

    def __init__(self, client: LLMClient, model: str, reply_tokens: int = 0):
        self.client, self.model, self.reply_tokens = client, model, reply_tokens

    def analyse(self, outcome: Outcome, context: Context) -> Analysis:
        design, parent = context.design(outcome.design_id), _parent(outcome, context)
        messages = render("analyst", design_id=outcome.design_id, name=outcome.proposal.name, tier=context.tier,
                          plan=outcome.proposal.plan or "none", status=outcome.status, reason=outcome.reason or "",
                          score=views.number(outcome.score), metrics=views.metrics_text(outcome.metrics),
                          parent=views.brief(parent) if parent else render_text("none"),
                          siblings=views.listing(views.siblings(context, parent.id, exclude=outcome.design_id)
                                                 if parent else ()),
                          references=views.listing(context.baselines),
                          code=((design.code if design else None) or render_text("none")).strip())
        try:
            result = self.client.complete("analyst", self.model, messages, parse_analysis, outcome.design_id,
                                          max_tokens=self.reply_tokens)
        except ParseError as error:
            raise AgentFailure(error.status, f"the analyst's reply was unusable: {error.reason}",
                               error.calls) from None
        parent_score = parent.score if parent else None
        delta = (round(outcome.score - parent_score, 4)
                 if outcome.score is not None and parent_score is not None else None)
        return Analysis(result.value, {"status": outcome.status, "score": outcome.score,
                                       "parent_id": parent.id if parent else None, "parent_score": parent_score,
                                       "delta_score": delta, "model": self.model, "call_id": result.call_id})


class LLMJudge:
    """A qualitative 0-10 score of the idea and its code, recorded beside the measured score."""

    def __init__(self, client: LLMClient, model: str, fewshot: int = 3, reply_tokens: int = 0):
        self.client, self.model, self.fewshot, self.reply_tokens = client, model, fewshot, reply_tokens

    def judge(self, outcome: Outcome, context: Context) -> Analysis:
        design = context.design(outcome.design_id)
        examples = [d for d in views.ranked(context) if d.id != outcome.design_id][: self.fewshot]
        messages = render("judge", design_id=outcome.design_id, name=outcome.proposal.name,
                          motivation=outcome.proposal.motivation, status=outcome.status,
                          score=views.number(outcome.score), examples=views.listing(examples),
                          code=((design.code if design else None) or render_text("none")).strip())
        try:
            result = self.client.complete("judge", self.model, messages, parse_judgement, outcome.design_id,
                                          max_tokens=self.reply_tokens, response_format=JUDGEMENT_FORMAT)
        except ParseError as error:
            raise AgentFailure(error.status, f"the judge's reply was unusable: {error.reason}",
                               error.calls) from None
        judge_score, rationale = result.value
        return Analysis(rationale, {"judge_score": judge_score, "measured_score": outcome.score,
                                    "status": outcome.status, "model": self.model, "call_id": result.call_id})
