"""The LLM client against a scripted chat-completions server on 127.0.0.1, through litellm: retries and
backoff, named failures, token and dollar accounting, caps, and the reply cache."""

import pytest

from agents.base import AgentFailure
from agents.llm import CapReached, ClientSettings, InMemoryJournal, LLMClient, ParseError, ReplayMiss, Usage
from tests.llm_server import Fault, LLMServer, Reply, Script

MESSAGES = [{"role": "system", "content": "Role: researcher."}, {"role": "user", "content": "propose"}]


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")


def client(server, journal=None, sleeps=None, **settings):
    settings = {"api_base": server.url, "timeout_s": 5.0, "retries": 2, "backoff_s": 0.5, **settings}
    return LLMClient(ClientSettings(**settings), journal or InMemoryJournal(),
                     sleep=(sleeps.append if sleeps is not None else lambda s: None))


def as_text(reply: str) -> str:
    return reply


def test_a_429_is_retried_with_backoff_and_both_attempts_are_recorded():
    script = Script().push("researcher", Fault(429, "rate limited"), Fault(503), Reply("fine", 7, 3))
    journal, sleeps = InMemoryJournal(), []
    with LLMServer(script) as server:
        result = client(server, journal, sleeps).complete("researcher", "openai/test-model", MESSAGES, as_text)
    assert result.text == "fine" and result.value == "fine"
    assert [c.status for c in journal.calls] == ["http-429", "http-503", "ok"]
    assert [c.attempt for c in journal.calls] == [1, 2, 3]
    assert sleeps == [0.5, 1.0], "exponential backoff between attempts"
    ok = journal.calls[-1]
    assert (ok.prompt_tokens, ok.completion_tokens) == (7, 3) and ok.latency_s >= 0
    assert ok.request["messages"] == MESSAGES and ok.reply == "fine"


def test_a_timeout_is_retried_then_reported_by_name_when_retries_run_out():
    script = Script().push("researcher", Reply("late", delay_s=3.0), Reply("on time"))
    journal = InMemoryJournal()
    with LLMServer(script) as server:
        result = client(server, journal, timeout_s=1.0).complete("researcher", "openai/test-model", MESSAGES, as_text)
        assert result.text == "on time"
        assert [c.status for c in journal.calls] == ["timeout", "ok"]
        script.push("researcher", *[Reply("late", delay_s=3.0)] * 2)
        with pytest.raises(AgentFailure) as failure:
            client(server, journal, timeout_s=1.0, retries=1).complete("researcher", "openai/test-model",
                                                                        MESSAGES, as_text)
    assert failure.value.status == "timeout" and "after 2 attempts" in failure.value.reason
    assert len(failure.value.calls) == 2 and [c.status for c in journal.calls[2:]] == ["timeout", "timeout"]


def test_an_http_error_that_retrying_cannot_fix_fails_at_once():
    script = Script().push("researcher", Fault(401, "bad key"), Reply("never asked"))
    journal = InMemoryJournal()
    with LLMServer(script) as server:
        with pytest.raises(AgentFailure) as failure:
            client(server, journal).complete("researcher", "openai/test-model", MESSAGES, as_text)
        assert len(server.requests) == 1
    assert failure.value.status == "http-401" and "bad key" in failure.value.reason
    assert [c.status for c in journal.calls] == ["http-401"]


def test_a_known_model_is_priced_and_an_unknown_one_counts_tokens_with_cost_unknown():
    script = Script().push("researcher", Reply("a", 1000, 500), Reply("b", 1000, 500))
    journal = InMemoryJournal()
    with LLMServer(script) as server:
        llm = client(server, journal)
        llm.complete("researcher", "openai/gpt-4o-mini", MESSAGES, as_text)
        llm.complete("researcher", "openai/test-model", MESSAGES, as_text)
    priced, unknown = journal.calls
    assert priced.cost == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)
    assert unknown.cost is None and unknown.prompt_tokens == 1000
    assert llm.usage.tokens == 3000 and llm.usage.unknown_cost_calls == 1
    assert "cost unknown for 1 call" in llm.usage.describe()


def test_caps_stop_before_the_next_call_and_name_the_spend():
    script = Script(default=lambda role, request: Reply("x", 600, 100))
    with LLMServer(script) as server:
        llm = client(server, max_tokens=1000)
        llm.complete("researcher", "openai/test-model", MESSAGES, as_text)
        llm.complete("researcher", "openai/test-model", MESSAGES, as_text)  # 700 < 1000: allowed, ends at 1400
        with pytest.raises(CapReached, match="token cap reached: 1,400 tokens used of max_tokens 1,000"):
            llm.complete("researcher", "openai/test-model", MESSAGES, as_text)
        assert len(server.requests) == 2
        priced = client(server, max_cost=0.0001)
        priced.complete("researcher", "openai/gpt-4o-mini", MESSAGES, as_text)  # $0.00015
        with pytest.raises(CapReached, match=r"cost cap reached: \$0.0001 spent of max_cost"):
            priced.complete("researcher", "openai/gpt-4o-mini", MESSAGES, as_text)


def test_caps_count_what_the_run_spent_before_a_resume():
    class Resumed(InMemoryJournal):
        def usage(self):
            return Usage(calls=3, prompt_tokens=900, completion_tokens=200)

    with LLMServer(Script()) as server:
        with pytest.raises(CapReached):
            client(server, Resumed(), max_tokens=1000).complete("researcher", "openai/test-model", MESSAGES, as_text)
        assert server.requests == []


def test_an_unusable_reply_is_recorded_with_the_parsers_status():
    def parse(reply):
        raise ParseError("malformed", f"not JSON: {reply[:10]}")

    journal = InMemoryJournal()
    with LLMServer(Script().push("researcher", Reply("no json here"))) as server:
        with pytest.raises(ParseError) as error:
            client(server, journal).complete("researcher", "openai/test-model", MESSAGES, parse)
    assert error.value.calls == (1,) and error.value.reply == "no json here"
    assert journal.calls[0].status == "malformed" and journal.calls[0].error == "not JSON: no json he"


def test_replay_serves_recorded_replies_in_order_without_a_model_and_fails_clearly_on_a_miss():
    script = Script().push("researcher", Reply("first"), Reply("second"))
    recording = InMemoryJournal()
    with LLMServer(script) as server:
        llm = client(server, recording)
        assert [llm.complete("researcher", "openai/m", MESSAGES, as_text).text for _ in range(2)] == ["first",
                                                                                                      "second"]
        url = server.url
    assert len(recording.cache) == 2, "identical requests get distinct cache keys by occurrence"
    replay_journal = InMemoryJournal(cache=recording.cache)
    replay = LLMClient(ClientSettings(api_base=url, cache="replay"), replay_journal)
    assert [replay.complete("researcher", "openai/m", MESSAGES, as_text).text for _ in range(2)] == ["first", "second"]
    assert all(c.cached and c.cost == 0.0 for c in replay_journal.calls)
    with pytest.raises(ReplayMiss, match="no cached reply for this researcher request"):
        replay.complete("researcher", "openai/m", MESSAGES, as_text)


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="cache must be one of"):
        ClientSettings(cache="sometimes")
    with pytest.raises(ValueError, match="max_cost must be >= 0"):
        ClientSettings(max_cost=-1)
