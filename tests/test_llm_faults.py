"""LLM transport faults against a real HTTP server on 127.0.0.1, reached through litellm: a connection dropped or
refused, a reply later than the timeout or stalling mid-body, a body cut short of its Content-Length, JSON cut
mid-way or not JSON at all. Each is retried within the limit, every attempt is recorded exactly once under a named
status, tokens and dollars count only for replies, and in a run no fault costs an evaluation."""

import shutil
import socket
from collections import Counter
from pathlib import Path

import pytest

from agents.base import AgentFailure
from agents.llm import ClientSettings, InMemoryJournal, LLMClient
from agents.llm.client import TRANSPORT_STATUSES
from discover.config import RunConfig
from discover.loop import run
from memory import ExperienceDB
from tests.llm_server import (
    Drop,
    Fault,
    LLMServer,
    Raw,
    Reply,
    Script,
    Stall,
    Truncated,
    code_reply,
    cut_json,
    proposal_reply,
)

MESSAGES = [{"role": "system", "content": "Role: researcher."}, {"role": "user", "content": "propose"}]
PRICED = "openai/gpt-4o-mini"  # litellm knows its price: $0.15 / $0.60 per million prompt / completion tokens
PRICE = 100 * 0.15e-6 + 20 * 0.6e-6  # of one Reply(..., 100, 20)
TIMEOUT_S = 0.5
LATE_S = 1.5

# fault case -> (what the server does, the status its attempt is recorded with)
FAULTS = {
    "dropped connection": (Drop(), "connection"),
    "body shorter than its Content-Length": (Truncated(missing=40), "truncated"),
    "JSON cut mid-way": (cut_json(keep=0.5), "bad-response"),
    "invalid JSON": (Raw("{not json"), "bad-response"),
    "an HTML page with status 200": (Raw("<html><body>502 Bad Gateway</body></html>", "text/html"), "bad-response"),
    "a completion without choices": (Raw('{"choices": []}'), "bad-response"),
    "an empty body": (Raw(""), "bad-response"),
    "reply later than the timeout": (Reply("late", delay_s=LATE_S), "timeout"),
    "body stalling past the timeout": (Stall(sent=30, stall_s=LATE_S), "timeout"),
    "HTTP 502": (Fault(502, "bad gateway"), "http-502"),
}
CASES = sorted(FAULTS)


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")


def client(url, journal, retries=2, sleeps=None):
    # local=False: these are a hosted endpoint's faults, retried on plain backoff with a fixed timeout
    # (a self-hosted one's patience is tested in test_llm_structured.py)
    settings = ClientSettings(api_base=url, timeout_s=TIMEOUT_S, retries=retries, backoff_s=0.25, local=False)
    return LLMClient(settings, journal, sleep=sleeps.append if sleeps is not None else lambda s: None)


def as_text(reply: str) -> str:
    return reply


def test_every_status_a_fault_is_recorded_with_is_a_documented_one():
    assert {status for _, status in FAULTS.values()} - {"http-502"} <= set(TRANSPORT_STATUSES)


@pytest.mark.parametrize("case", CASES)
def test_a_fault_is_retried_and_only_the_reply_is_counted(case):
    action, status = FAULTS[case]
    journal = InMemoryJournal()
    with LLMServer(Script().push("researcher", action, Reply("fine", 100, 20))) as server:
        llm = client(server.url, journal)
        result = llm.complete("researcher", PRICED, MESSAGES, as_text)
        served = len(server.requests)
    assert result.text == "fine" and result.calls == (1, 2)
    assert served == 2 and len(journal.calls) == 2, "one request per attempt, each recorded once"
    failed, ok = journal.calls
    assert (failed.status, failed.attempt, ok.status, ok.attempt) == (status, 1, "ok", 2)
    assert failed.reply is None and failed.error and failed.cost == 0.0
    assert failed.prompt_tokens is None and failed.completion_tokens is None
    assert llm.usage.calls == 2 and llm.usage.tokens == 120 and llm.usage.cost == pytest.approx(PRICE)


@pytest.mark.parametrize("case", CASES)
def test_a_fault_that_persists_becomes_a_named_agent_failure_after_the_retries(case):
    action, status = FAULTS[case]
    journal = InMemoryJournal()
    with LLMServer(Script().push("researcher", *[action] * 3, Reply("after", 100, 20))) as server:
        llm = client(server.url, journal, retries=2)
        with pytest.raises(AgentFailure) as failure:
            llm.complete("researcher", PRICED, MESSAGES, as_text)
        assert len(server.requests) == 3, "exactly retries + 1 attempts"
        assert llm.complete("researcher", PRICED, MESSAGES, as_text).text == "after", "the client is still usable"
    assert failure.value.status == status and "after 3 attempts" in failure.value.reason
    assert failure.value.calls == (1, 2, 3)
    assert [(c.status, c.attempt) for c in journal.calls[:3]] == [(status, 1), (status, 2), (status, 3)]
    assert llm.usage.calls == 4 and llm.usage.tokens == 120 and llm.usage.cost == pytest.approx(PRICE)


def test_a_refused_connection_is_retried_and_named():
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    journal = InMemoryJournal()
    with pytest.raises(AgentFailure) as failure:
        client(f"http://127.0.0.1:{port}/v1", journal, retries=1).complete("researcher", PRICED, MESSAGES, as_text)
    assert failure.value.status == "connection" and [c.status for c in journal.calls] == ["connection"] * 2


def test_one_call_survives_every_fault_in_a_row_with_backoff_between_attempts():
    actions = [FAULTS[case][0] for case in CASES]
    journal, sleeps = InMemoryJournal(), []
    with LLMServer(Script().push("researcher", *actions, Reply("at last", 100, 20))) as server:
        llm = client(server.url, journal, retries=len(actions), sleeps=sleeps)
        result = llm.complete("researcher", PRICED, MESSAGES, as_text)
        served = len(server.requests)
    handled = Counter(c.status for c in journal.calls[:-1])
    print(f"{len(CASES)} LLM fault cases handled in one call: {dict(sorted(handled.items()))}")
    assert result.text == "at last" and served == len(journal.calls) == len(CASES) + 1
    assert handled == Counter(FAULTS[case][1] for case in CASES)
    assert sleeps == [min(0.25 * 2 ** i, 60.0) for i in range(len(CASES))]
    assert llm.usage.tokens == 120 and llm.usage.cost == pytest.approx(PRICE), "no fault is counted"


# The discovery loop: faults cost no evaluation and are counted once in the run's LLM usage.

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
REFS = ("softmax_attention", "linear_attention")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A workspace whose references are evaluated (a run with budget 0)."""
    workspace = tmp_path_factory.mktemp("seeded") / "ws"
    run(RunConfig(workspace=str(workspace), tier="full-tiny", budget=0, workers=2, references=REFS))
    return workspace


def test_in_a_run_faults_cost_no_evaluation_and_are_counted_once(seeded, tmp_path):
    workspace = tmp_path / "ws"
    shutil.copytree(seeded, workspace)
    script = Script()
    script.push("researcher", Drop(), Truncated(), cut_json(),  # three attempts: an agent failure
                Stall(stall_s=LATE_S), Reply(proposal_reply("Gated linear attention"), 100, 20))
    script.push("coder", Raw("{not json"), Drop(), Reply(code_reply(GOOD), 100, 20))
    script.push("analyst", Truncated(), Reply("Matched its parent.", 100, 20))
    with LLMServer(script) as server:
        summary = run(RunConfig(workspace=str(workspace), tier="full-tiny", budget=1, workers=1, references=REFS,
                                model=PRICED, api_base=server.url, llm_timeout_s=TIMEOUT_S, llm_retries=2,
                                llm_backoff_s=0.0))
        served = len(server.requests)
    assert summary.status == "finished" and summary.spent == summary.budget == 1
    db = ExperienceDB(workspace / "experience.db")
    evaluations = [e for d in db.records.designs("llm") for e in db.records.evaluations(d.id)]
    assert [e.status for e in evaluations] == ["ok"], "one evaluation: the faults cost none"
    calls = db.journal.llm_calls(summary.run_id)
    assert len(calls) == served == 10, "every attempt recorded exactly once"
    by_role = {role: [c["status"] for c in calls if c["role"] == role] for role in ("researcher", "coder", "analyst")}
    assert by_role == {"researcher": ["connection", "truncated", "bad-response", "timeout", "ok"],
                       "coder": ["bad-response", "connection", "ok"], "analyst": ["truncated", "ok"]}
    failures = [e.data for e in db.records.events(summary.run_id) if e.kind == "agent-failure"]
    assert [(f["step"], f["status"]) for f in failures] == [("propose", "bad-response")]
    assert failures[0]["calls"] == [c["id"] for c in calls[:3]]
    assert all(c["cost"] == 0.0 and c["prompt_tokens"] is None for c in calls if c["status"] != "ok")
    usage = db.journal.llm_usage(summary.run_id)
    assert usage["calls"] == 10 and usage["prompt_tokens"] == 300 and usage["completion_tokens"] == 60
    assert usage["cost"] == pytest.approx(3 * PRICE) and usage["unknown_cost_calls"] == 0
    assert summary.llm == usage
