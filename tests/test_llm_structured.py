"""LLM calls that suit a small self-hosted server: reply caps, the JSON-schema response format with a
fallback to free text, and retries that do not queue behind an abandoned request on a single-slot
server. Against the scripted chat-completions server on 127.0.0.1, through litellm."""

import pytest

from agents.base import AgentFailure, Outcome, Proposal
from agents.llm import ClientSettings, InMemoryJournal, LLMClient, LLMSettings, llm_roles
from agents.llm.roles import JUDGEMENT_FORMAT, PROPOSAL_FORMAT
from evaluator.design import check_static
from tests.llm_server import Fault, LLMServer, Reply, Script, code_reply, proposal_reply
from tests.test_llm_roles import GOOD, context

MESSAGES = [{"role": "system", "content": "Role: researcher."}, {"role": "user", "content": "propose"}]
MODEL = "openai/test-model"
REFUSAL = "response_format json_schema is not supported by this server"


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")


def roles(server, journal, **settings):
    client = ClientSettings(api_base=server.url, retries=1, backoff_s=0.0, timeout_s=5.0)
    return llm_roles(LLMSettings(model=MODEL, client=client, judge_model=MODEL, **settings), journal, seed=1,
                     static_check=check_static)


def as_text(reply: str) -> str:
    return reply


def test_each_role_sends_its_reply_cap_and_the_json_roles_send_their_schema():
    script = (Script().push("researcher", Reply(proposal_reply("Gated DeltaNet v2")))
              .push("coder", Reply(code_reply(GOOD))).push("analyst", Reply("Fine."))
              .push("judge", Reply('{"score": 5, "rationale": "plain"}')))
    journal = InMemoryJournal()
    caps = {"researcher": 300, "coder": 3000, "analyst": 200, "judge": 100}
    outcome = Outcome(1, Proposal("p", "m", "plan", (1,)), "ok", "", {"mqar_acc": 0.2}, 0.2)
    with LLMServer(script) as server:
        team = roles(server, journal, reply_tokens=caps)
        team.researcher.propose(context())
        team.coder.write(Proposal("p", "m", "plan", (1,)), context())
        team.analyst.analyse(outcome, context())
        team.judge.judge(outcome, context())
        sent = {r["messages"][0]["content"].split(".")[0].removeprefix("Role: "): r for r in server.requests}
    assert {role: r["max_tokens"] for role, r in sent.items()} == caps
    assert sent["researcher"]["response_format"] == PROPOSAL_FORMAT
    assert sent["judge"]["response_format"] == JUDGEMENT_FORMAT
    assert "response_format" not in sent["coder"] and "response_format" not in sent["analyst"]
    assert PROPOSAL_FORMAT["json_schema"]["schema"]["required"] == ["name", "motivation", "plan", "parents"]
    recorded = {c.role: c.request for c in journal.calls}
    assert recorded["coder"]["max_tokens"] == 3000 and recorded["researcher"]["response_format"] == PROPOSAL_FORMAT


def test_a_provider_that_refuses_the_schema_is_recorded_once_and_the_run_goes_on_in_free_text():
    def refuse_formats(role, request):
        return Fault(400, REFUSAL) if "response_format" in request else Reply(proposal_reply("Plain proposal"))

    journal = InMemoryJournal()
    with LLMServer(Script(default=refuse_formats)) as server:
        researcher = roles(server, journal).researcher
        first = researcher.propose(context())
        second = researcher.propose(context())
        sent = [("response_format" in r) for r in server.requests]
    assert first.name == second.name == "Plain proposal"
    assert sent == [True, False, False], "asked once, then never again in this run"
    assert [c.status for c in journal.calls] == ["schema-refused", "ok", "ok"]
    assert REFUSAL in journal.calls[0].error
    assert first.calls == (1, 2) and journal.calls[1].attempt == 2, "the refused attempt is in the transcript"


def test_a_schema_refusal_costs_no_retry():
    journal = InMemoryJournal()
    script = Script().push("researcher", Fault(400, REFUSAL), Reply("fine"))
    with LLMServer(script) as server:
        client = LLMClient(ClientSettings(api_base=server.url, retries=0, timeout_s=5.0), journal)
        result = client.complete("researcher", MODEL, MESSAGES, as_text, response_format=PROPOSAL_FORMAT)
    assert result.text == "fine" and [c.status for c in journal.calls] == ["schema-refused", "ok"]


def test_an_unusable_reply_cut_by_its_cap_says_so():
    journal = InMemoryJournal()
    script = Script().push("researcher", Reply('{"name": "cut', finish_reason="length"), Reply("no json"))
    with LLMServer(script) as server, pytest.raises(AgentFailure):
        roles(server, journal, reply_tokens={"researcher": 64}).researcher.propose(context())
    cut, prose = journal.calls
    assert "the reply stopped at its cap of max_tokens 64" in cut.error
    assert "max_tokens" not in prose.error, "a reply that was not cut is not blamed on the cap"


def test_a_retry_does_not_queue_behind_an_abandoned_request_on_a_single_slot_server():
    """The first attempt times out while the server still works on it for 3 s; a retry sent at once would
    wait behind it and time out too. It waits out the timeout and gets a longer one."""
    script = Script().push("researcher", Reply("late", delay_s=3.0), Reply("on time"))
    journal = InMemoryJournal()
    with LLMServer(script, single_slot=True) as server:
        client = LLMClient(ClientSettings(api_base=server.url, timeout_s=1.0, retries=1, backoff_s=0.0), journal)
        result = client.complete("researcher", MODEL, MESSAGES, as_text)
    assert result.text == "on time"
    timed_out, retry = journal.calls
    assert (timed_out.status, retry.status) == ("timeout", "ok")
    assert timed_out.request["timeout_s"] == 1.0 and retry.request["timeout_s"] == 2.0
    assert retry.request["waited_s"] == 1.0 and "may still be answering it" in retry.request["waited_because"]


def test_a_hosted_endpoint_retries_on_plain_backoff_with_the_same_timeout():
    sleeps: list[float] = []
    script = Script().push("researcher", Reply("late", delay_s=2.0), Reply("on time"))
    journal = InMemoryJournal()
    with LLMServer(script) as server:
        settings = ClientSettings(api_base=server.url, timeout_s=1.0, retries=1, backoff_s=0.25, local=False)
        LLMClient(settings, journal, sleep=sleeps.append).complete("researcher", MODEL, MESSAGES, as_text)
    assert sleeps == [0.25] and journal.calls[1].request["timeout_s"] == 1.0
    assert journal.calls[1].request["waited_because"] == "backoff after timeout"


def test_only_a_host_on_this_machine_or_a_private_network_counts_as_self_hosted():
    local = {url: ClientSettings(api_base=url).self_hosted for url in (
        "http://127.0.0.1:8080/v1", "http://localhost:11434", "http://192.168.1.5:8000/v1", "http://[::1]:8000/v1",
        "https://api.openai.com/v1", None)}
    assert list(local.values()) == [True, True, True, True, False, False]
