"""Hundreds of randomized malformed or hostile replies: each becomes a recorded call with a named status,
a role either returns a valid result or a named AgentFailure, and nothing else ever escapes."""

import random
import re
from collections import Counter, deque
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.base import AgentFailure, Context, DesignSummary, Outcome, Proposal
from agents.llm import ClientSettings, InMemoryJournal, LLMAnalyst, LLMClient, LLMCoder, LLMJudge, LLMResearcher
from agents.llm.parsing import parse_design
from evaluator.design import check_static
from tests.llm_server import Fault, Raw, hostile_reply

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
MODEL = "openai/test-model"
NAMED = re.compile(r"^(ok|empty|malformed|no-code|syntax|unsafe|contract|llm-error|timeout|connection|truncated"
                   r"|bad-response|schema-refused|http-\d{3})$")
REPLIES = 600


def context() -> Context:
    designs = tuple(DesignSummary(i, f"design-{i}", "baseline", None, 0.5, {"mqar_acc": 0.5}, "ok", (), GOOD)
                    for i in (1, 2, 3))
    return Context("full-tiny", 1, 0, designs, designs, (), {})


class ScriptedTransport:
    """Stands in for litellm.completion: answers each request with the next scripted reply."""

    def __init__(self):
        self.replies: deque = deque()
        self.served = 0

    def __call__(self, **request):
        import litellm

        self.served += 1
        reply = self.replies.popleft()
        if isinstance(reply, Fault):
            raise litellm.APIError(status_code=reply.status, message=reply.message, llm_provider="openai",
                                   model=request["model"])
        if isinstance(reply, Raw):
            return SimpleNamespace(choices=[] if reply.body else [SimpleNamespace(message=SimpleNamespace(
                content=None))], usage=None)
        message = SimpleNamespace(content=reply)
        return SimpleNamespace(choices=[SimpleNamespace(message=message)],
                               usage=SimpleNamespace(prompt_tokens=len(str(request)) // 4, completion_tokens=7))


def test_hundreds_of_hostile_replies_become_named_recorded_failures():
    rng = random.Random(20240611)
    transport, journal = ScriptedTransport(), InMemoryJournal()
    client = LLMClient(ClientSettings(retries=1, backoff_s=0.0), journal, completion=transport)
    researcher = LLMResearcher(client, MODEL, seed=3)
    coder = LLMCoder(client, MODEL, max_attempts=2, static_check=check_static)
    analyst, judge = LLMAnalyst(client, MODEL), LLMJudge(client, MODEL)
    proposal = Proposal("p", "m", "plan", (1,))
    outcome = Outcome(2, proposal, "ok", "", {"mqar_acc": 0.4}, 0.8)
    steps = {
        "researcher": lambda: researcher.propose(context()),
        "coder": lambda: coder.write(proposal, context()),
        "fix": lambda: coder.write(proposal, context(), feedback="shape: wrong output shape"),
        "analyst": lambda: analyst.analyse(outcome, context()),
        "judge": lambda: judge.judge(outcome, context()),
    }
    results: Counter = Counter()
    while transport.served < REPLIES:
        step = rng.choice(sorted(steps))
        transport.replies.extend(hostile_reply(rng, GOOD) for _ in range(4))  # more than any step can use
        try:
            value = steps[step]()
        except AgentFailure as failure:
            if failure.status == "attempts":  # a fix asked for once the proposal's attempts are spent: no call
                assert step == "fix" and not failure.calls
            else:
                assert NAMED.match(failure.status) and failure.status != "ok", failure.status
                assert failure.calls and all(0 < c <= len(journal.calls) for c in failure.calls)
            results[f"{step}:{failure.status}"] += 1
        else:
            assert value is not None
            results[f"{step}:ok"] += 1
        transport.replies.clear()
    assert len(journal.calls) == transport.served >= REPLIES, "every reply is recorded exactly once"
    statuses = Counter(call.status for call in journal.calls)
    assert all(NAMED.match(status) for status in statuses), statuses
    for call in journal.calls:
        if call.role == "coder" and call.status == "ok":
            parse_design(call.reply, check_static)  # a design that reached "ok" passed the pre-check
        assert (call.status == "ok") == (call.error is None)
    failures = {s for s in statuses if s != "ok"}
    assert {"empty", "malformed", "no-code", "syntax", "unsafe", "contract"} <= failures
    assert any(s.startswith("http-") for s in failures) and "bad-response" in failures
    assert any(key.endswith(":ok") for key in results), "valid replies still get through"


@pytest.mark.parametrize("seed", range(3))
def test_hostile_replies_are_deterministic_for_a_seed(seed):
    first = [hostile_reply(random.Random(seed), GOOD) for _ in range(20)]
    assert first == [hostile_reply(random.Random(seed), GOOD) for _ in range(20)]
