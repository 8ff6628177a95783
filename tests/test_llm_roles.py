"""The LLM roles against a scripted chat-completions server on 127.0.0.1, reached through litellm."""

from pathlib import Path

import pytest

from agents.base import AgentFailure, Context, DesignSummary, Draft, Outcome, Proposal
from agents.llm import ClientSettings, InMemoryJournal, LLMSettings, llm_roles
from evaluator.design import check_static
from tests.llm_server import Fault, LLMServer, Reply, Script, code_reply, proposal_reply

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
MODEL = "openai/test-model"


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")


def design(id_, name, score, origin="baseline", parents=(), analysis=None):
    return DesignSummary(id=id_, name=name, origin=origin, spec=None, score=score,
                         metrics={"mqar_acc": score, "lm_bpb": 3.2, "tokens_per_s": 1234.5}, status="ok",
                         parents=parents, code=GOOD.replace("Tiny linear attention", name), analysis=analysis)


def context():
    baselines = tuple(design(i, f"baseline-{i}", 0.5 + i / 10) for i in range(1, 5))
    child = design(7, "child of 4", 0.2, origin="llm", parents=(4,), analysis="the gate hurt recall")
    return Context(tier="full-tiny", iteration=3, seed=0, top=tuple(sorted(baselines, key=lambda d: -d.score)),
                   baselines=baselines, recent=(child,), choice_stats={})


def roles(server, journal, **settings):
    client = ClientSettings(api_base=server.url, retries=1, backoff_s=0.0, timeout_s=5.0)
    return llm_roles(LLMSettings(model=MODEL, client=client, **settings), journal, seed=1, static_check=check_static)


def user_prompt(request):
    return request["messages"][-1]["content"]


def test_researcher_shows_parent_siblings_and_fewshot_examples_and_repairs_malformed_json():
    script = Script().push("researcher", Reply('{"name": "half a json'), Reply(proposal_reply("Gated DeltaNet v2")))
    journal = InMemoryJournal()
    with LLMServer(script) as server:
        proposal = roles(server, journal, fewshot=2).researcher.propose(context())
        first, repair = server.requests
    assert proposal.name == "Gated DeltaNet v2" and len(proposal.parents) == 1
    assert [c.status for c in journal.calls] == ["malformed", "ok"] and proposal.calls == (1, 2)
    prompt = user_prompt(first)
    parent = proposal.parents[0]
    assert f"#{parent} baseline-{parent}" in prompt and "class Mixer" in prompt
    assert prompt.count("```python") == 1 + 2, "the parent's code and two few-shot examples"
    assert "tokens_per_s" not in prompt, "timings vary between runs and stay out of prompts"
    assert "the delta rule" in first["messages"][0]["content"].lower(), "the knowledge notes"
    assert repair["messages"][-2] == {"role": "assistant", "content": '{"name": "half a json'}
    assert "not valid JSON" in user_prompt(repair)


def test_researcher_gives_up_after_one_repair_with_a_named_failure():
    script = Script().push("researcher", Reply("just prose"), Reply('{"name": "x", "motivation": "m"}'))
    journal = InMemoryJournal()
    with LLMServer(script) as server, pytest.raises(AgentFailure) as failure:
        roles(server, journal).researcher.propose(context())
    assert failure.value.status == "malformed" and "'plan' must be a non-empty string" in failure.value.reason
    assert failure.value.calls == (1, 2)


def test_coder_debugs_a_reply_without_code_and_an_unsafe_file_then_delivers():
    script = Script().push("coder", Reply("I would add a gate."), Reply(code_reply("import os\n" + GOOD)),
                           Reply(code_reply(GOOD)))
    journal = InMemoryJournal()
    with LLMServer(script) as server:
        proposal = Proposal("Tiny linear attention", "m", "keep it", (2,))
        draft = roles(server, journal).coder.write(proposal, context())
        fix_prompts = [user_prompt(r) for r in server.requests[1:]]
    assert draft.code == GOOD.strip() + "\n" and draft.attempt == 3 and draft.calls == (1, 2, 3)
    assert [c.status for c in journal.calls] == ["no-code", "unsafe", "ok"]
    assert "no-code:" in fix_prompts[0] and "I would add a gate." in fix_prompts[0]
    assert "unsafe: line 1" in fix_prompts[1] and "import os" in fix_prompts[1]
    assert "attempt 3 of 3" in fix_prompts[1]


def test_coder_fixes_an_evaluation_failure_and_stops_after_its_attempts():
    broken = GOOD.replace("return self.out(y)", "return y[:, :, :1]")
    script = Script().push("coder", Reply(code_reply(broken)), Reply(code_reply(GOOD)), Reply("no code"))
    journal = InMemoryJournal()
    proposal = Proposal("p", "m", "plan", (1,))
    with LLMServer(script) as server:
        coder = roles(server, journal, max_attempts=3).coder
        first = coder.write(proposal, context())
        fixed = coder.write(proposal, context(), feedback="shape: output (2, 8, 1), expected (2, 8, 32)")
        fix_prompt = user_prompt(server.requests[1])
        with pytest.raises(AgentFailure) as failure:
            coder.write(proposal, context(), feedback="nan: loss is nan")
    assert (first.attempt, fixed.attempt) == (1, 2) and fixed.code.strip() == GOOD.strip()
    assert "shape: output (2, 8, 1)" in fix_prompt and "y[:, :, :1]" in fix_prompt
    assert failure.value.status == "no-code" and "after 3 attempts" in failure.value.reason


def test_a_transport_failure_carries_every_call_made_for_the_proposal():
    script = Script().push("coder", Reply("prose"), Fault(500), Fault(502))
    journal = InMemoryJournal()
    with LLMServer(script) as server, pytest.raises(AgentFailure) as failure:
        roles(server, journal).coder.write(Proposal("p", "m", "plan", (1,)), context())
    assert failure.value.status == "http-502" and failure.value.calls == (1, 2, 3)
    assert [c.status for c in journal.calls] == ["no-code", "http-500", "http-502"]


def test_analyst_and_judge_record_their_calls_against_the_design():
    script = (Script().push("analyst", Reply("  The decay helped MQAR.  "))
              .push("judge", Reply('{"score": 6.5, "rationale": "a sound, small step"}'), Reply("no")))
    journal = InMemoryJournal()
    outcome = Outcome(7, Proposal("child of 4", "m", "plan", (4,)), "ok", "", {"mqar_acc": 0.2}, 0.2)
    with LLMServer(script) as server:
        team = roles(server, journal, judge_model=MODEL)
        analysis = team.analyst.analyse(outcome, context())
        judgement = team.judge.judge(outcome, context())
        analyst_prompt = user_prompt(server.requests[0])
        with pytest.raises(AgentFailure) as failure:
            team.judge.judge(outcome, context())
    assert analysis.text == "The decay helped MQAR." and analysis.data["delta_score"] == pytest.approx(0.2 - 0.9)
    assert "#4 baseline-4" in analyst_prompt and "Score: 0.2" in analyst_prompt
    assert judgement.data == {"judge_score": 6.5, "measured_score": 0.2, "status": "ok", "model": MODEL, "call_id": 2}
    assert failure.value.status == "malformed"
    assert [c.design_id for c in journal.calls] == [7, 7, 7]


def test_a_coder_without_memory_fixes_the_draft_it_is_given():
    """After --resume the coder is new; the loop hands it the failed draft, which it must show and count."""
    broken = GOOD.replace("return self.out(y)", "return y[:, :, :1]")
    proposal = Proposal("p", "m", "plan", (1,))
    script = Script().push("coder", Reply(code_reply(GOOD)))
    with LLMServer(script) as server:
        coder = roles(server, InMemoryJournal(), max_attempts=3).coder
        fixed = coder.write(proposal, context(), feedback="shape: output (2, 8, 1), expected (2, 8, 32)",
                            previous=Draft(broken, proposal, attempt=2))
        fix_prompt = user_prompt(server.requests[0])
    assert fixed.attempt == 3 and fixed.code.strip() == GOOD.strip()
    assert "y[:, :, :1]" in fix_prompt and "attempt 3 of 3" in fix_prompt
