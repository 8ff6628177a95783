"""The discovery loop with the LLM roles, end to end: a scripted chat-completions server on 127.0.0.1
reached through litellm, a real SQLite file, a real git archive and real sandboxed evaluations at the
tiny tier. The references are seeded once and copied into each test's workspace."""

import itertools
import random
import re
import shutil
from pathlib import Path

import pytest

from discover.config import RunConfig
from discover.loop import run
from memory import ExperienceDB
from tests.llm_server import Fault, LLMServer, Reply, Script, code_reply, hostile_reply, proposal_reply

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
VARIANTS = [GOOD, GOOD.replace("F.elu(q) + 1, F.elu(k) + 1", "F.relu(q) + 1, F.relu(k) + 1"),
            GOOD.replace("F.elu(q) + 1, F.elu(k) + 1", "F.elu(q) + 2, F.elu(k) + 2")]
SHAPE_BUG = GOOD.replace("return self.out(y)", "return y[..., :1]")
TIER = "full-tiny"
REFS = ("softmax_attention", "linear_attention")
MODEL = "openai/test-model"
NAMED = re.compile(r"^(ok|empty|malformed|no-code|syntax|unsafe|contract|llm-error|timeout|connection|truncated"
                   r"|bad-response|schema-refused|http-\d{3})$")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A workspace whose references are evaluated (a run with budget 0)."""
    workspace = tmp_path_factory.mktemp("seeded") / "ws"
    run(RunConfig(workspace=str(workspace), tier=TIER, budget=0, workers=2, references=REFS))
    return workspace


@pytest.fixture
def workspace(seeded, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    target = tmp_path / "ws"
    shutil.copytree(seeded, target)
    return target


def config(workspace, server_url, **kw) -> RunConfig:
    """No racing: with two references every design could reach the top, and these tests count proposals."""
    settings = {"workspace": str(workspace), "tier": TIER, "workers": 1, "references": REFS, "model": MODEL,
                "api_base": server_url, "llm_backoff_s": 0.0, "llm_timeout_s": 5.0, "race_seeds": 1, **kw}
    return RunConfig(**settings)


def defaults(tokens: tuple[int, int] | None = None):
    """Valid replies for every role: distinct proposals and designs, so nothing is a duplicate."""
    names, codes = itertools.count(1), itertools.cycle(VARIANTS)
    usage = tokens or (None, None)

    def answer(role, request):
        if role == "researcher":
            return Reply(proposal_reply(f"Proposal {next(names)}"), *usage)
        if role == "coder":
            return Reply(code_reply(next(codes)), *usage)
        if role == "judge":
            return Reply('{"score": 5, "rationale": "plain"}', *usage)
        return Reply("The design matched its parent on recall.", *usage)

    return answer


def calls_by_role(journal, run_id):
    calls = journal.llm_calls(run_id)
    return {role: [c["status"] for c in calls if c["role"] == role] for role in ("researcher", "coder", "analyst")}


def test_one_iteration_end_to_end_with_a_429_malformed_json_no_code_a_failed_check_and_a_timeout(workspace):
    script = Script(default=defaults())
    script.push("researcher", Fault(429, "slow down"), Reply("Let me think... no JSON today."))
    script.push("coder", Reply("I would add a decay."), Reply(code_reply(SHAPE_BUG)), Reply(code_reply(GOOD)))
    script.push("analyst", Reply("too slow", delay_s=4.0))
    with LLMServer(script) as server:
        summary = run(config(workspace, server.url, budget=2, llm_timeout_s=1.5, judge_model=MODEL))
        requests = list(server.requests)
    assert summary.status == "finished" and summary.spent == 2 and summary.reason == ""
    db = ExperienceDB(workspace / "experience.db")
    designs = [d for d in db.records.designs() if d.origin == "llm"]
    assert [d.code for d in designs] == [SHAPE_BUG.strip() + "\n", GOOD.strip() + "\n"]
    assert [[e.status for e in db.records.evaluations(d.id)] for d in designs] == [["shape"], ["ok"]]
    assert designs[1].parents == designs[0].parents and designs[0].name == designs[1].name
    statuses = calls_by_role(db.journal, summary.run_id)
    assert statuses["researcher"] == ["http-429", "malformed", "ok"]
    assert statuses["coder"] == ["no-code", "ok", "ok"]
    assert statuses["analyst"] == ["timeout", "ok", "ok"]
    calls = db.journal.llm_calls(summary.run_id)
    assert len(calls) == len(requests), "every request is in the transcript"
    first, second = designs
    linked = {c["id"]: c["design_id"] for c in calls}
    assert [linked[c["id"]] for c in calls if c["role"] in ("researcher", "coder")] == [first.id] * 5 + [second.id]
    assert all(c["request"]["messages"] and c["model"] == MODEL for c in calls)
    fix_request = [r for r in requests if r["messages"][0]["content"].startswith("Role: coder")][2]
    assert "shape:" in fix_request["messages"][-1]["content"], "the evaluation's error went back to the coder"
    analyses = {d.id: [(a["author"], a["data"]) for a in db.records.analyses(d.id)] for d in designs}
    assert [author for author, _ in analyses[second.id]] == ["llm-analyst", "llm-judge"]
    judge = analyses[second.id][1][1]
    assert judge["judge_score"] == 5 and judge["measured_score"] == db.records.evaluations(second.id)[0].score
    assert summary.llm["calls"] == len(calls) and summary.llm["unknown_cost_calls"] > 0
    events = [e.data for e in db.records.events(summary.run_id) if e.kind == "llm-call"]
    assert [(e["role"], e["status"], e["attempt"]) for e in events] == [(c["role"], c["status"], c["attempt"])
                                                                       for c in calls], "each call, as it happens"
    assert set(events[-1]) == {"role", "model", "status", "attempt", "latency_s", "prompt_tokens",
                               "completion_tokens"}
    assert all(r["response_format"]["json_schema"]["name"] == "proposal" for r in requests
               if r["messages"][0]["content"].startswith("Role: researcher"))
    assert all(r["max_tokens"] for r in requests), "every request caps its reply"


def test_a_token_cap_mid_run_stops_cleanly_and_lets_evaluations_in_flight_finish(workspace):
    script = Script(default=defaults(tokens=(1000, 100)))
    with LLMServer(script) as server:
        summary = run(config(workspace, server.url, budget=5, workers=2, max_tokens=4000))
        served = len(server.requests)
    assert summary.status == "stopped" and summary.spent == 2
    assert summary.reason.startswith("token cap reached: 4,400 tokens used of max_tokens 4,000")
    assert served == 4, "researcher and coder twice; no call once the cap is reached"
    db = ExperienceDB(workspace / "experience.db")
    evaluations = [e for d in db.records.designs() if d.origin == "llm" for e in db.records.evaluations(d.id)]
    assert [e.status for e in evaluations] == ["ok", "ok"], "both evaluations in flight finished and count"
    assert db.journal.llm_usage(summary.run_id)["prompt_tokens"] == 4000
    assert db.records.run(summary.run_id).status == "stopped"
    assert any("token cap reached" in str(e.data) for e in db.records.events(summary.run_id) if e.kind == "stage")


def test_a_recorded_run_replays_from_the_cache_without_a_model(workspace, tmp_path, seeded):
    with LLMServer(Script(default=defaults())) as server:
        recorded = run(config(workspace, server.url, budget=1))
        url = server.url  # closed after this block: the replay cannot reach a model
    replay_ws = tmp_path / "replay"
    shutil.copytree(seeded, replay_ws)
    replayed = run(config(replay_ws, url, budget=2, llm_cache="replay",
                          llm_cache_from=str(workspace / "experience.db")))
    original, again = ExperienceDB(workspace / "experience.db"), ExperienceDB(replay_ws / "experience.db")
    assert recorded.status == "finished" and recorded.spent == 1
    assert [(d.name, d.code) for d in again.records.designs("llm")] == \
           [(d.name, d.code) for d in original.records.designs("llm")]
    assert [a["text"] for d in again.records.designs("llm") for a in again.records.analyses(d.id)] == \
           [a["text"] for d in original.records.designs("llm") for a in original.records.analyses(d.id)]
    assert all(c["cached"] == 1 and c["cost"] == 0.0 for c in again.journal.llm_calls(replayed.run_id))
    assert replayed.status == "stopped" and replayed.spent == 1
    assert replayed.reason.startswith("replay: no cached reply for this researcher request")


def test_a_loop_fed_hostile_replies_records_every_one_and_never_crashes(workspace):
    rng = random.Random(7)
    hostile = [hostile_reply(rng, GOOD) for _ in range(20)]
    valid = defaults()

    def answer(role, request):
        return hostile.pop(0) if hostile else valid(role, request)

    with LLMServer(Script(default=answer)) as server:
        summary = run(config(workspace, server.url, budget=1, llm_retries=0, max_llm_failures=30))
        served = len(server.requests)
    db = ExperienceDB(workspace / "experience.db")
    calls = db.journal.llm_calls(summary.run_id)
    assert summary.status == "finished" and summary.spent == 1
    assert served >= 21 and len(calls) == served
    assert all(NAMED.match(c["status"]) for c in calls), [c["status"] for c in calls]
    failures = [e.data for e in db.records.events(summary.run_id) if e.kind == "agent-failure"]
    assert failures and all(f["status"] and f["reason"] for f in failures)


def test_a_broken_endpoint_stops_the_run_after_failures_in_a_row(workspace):
    with LLMServer(Script(default=lambda role, request: Fault(503))) as server:
        summary = run(config(workspace, server.url, budget=3, llm_retries=1, max_llm_failures=2))
        served = len(server.requests)
    assert summary.status == "stopped" and summary.spent == 0
    assert summary.reason.startswith("2 agent failures in a row; the last: http-503")
    assert served == 4, "two proposals, each tried twice"


def test_the_cli_reports_a_spending_cap_and_the_llm_usage(workspace, tmp_path, capsys):
    from discover.cli import main

    refs = tmp_path / "refs.toml"
    refs.write_text(f"references = {list(REFS)!r}\n".replace("'", '"'))
    with LLMServer(Script(default=defaults(tokens=(300, 50)))) as server:
        code = main(["run", "--budget", "1", "--tier", TIER, "--workspace", str(workspace), "--workers", "1",
                     "--config", str(refs), "--model", MODEL, "--api-base", server.url, "--max-tokens", "100"])
        served = len(server.requests)
    out = capsys.readouterr()
    assert code == 0 and served == 1
    assert "stopped: token cap reached: 350 tokens used of max_tokens 100" in out.err.replace("\n", " ")
    assert "LLM: 1 LLM call(s), 350 tokens, $0.0000 known, cost unknown for 1 call(s)" in out.out.replace("\n", " ")


def test_an_unsafe_file_from_the_coder_goes_back_to_it_and_costs_no_evaluation(workspace):
    unsafe = GOOD.replace("import torch\n", "import os\nimport torch\n", 1).replace(
        "return self.out(y)", "os.system('true')\n        return self.out(y)")
    script = Script(default=defaults())
    script.push("coder", Reply(code_reply(unsafe)), Reply(code_reply(GOOD)))
    with LLMServer(script) as server:
        summary = run(config(workspace, server.url, budget=1))
    db = ExperienceDB(workspace / "experience.db")
    assert summary.spent == 1
    assert calls_by_role(db.journal, summary.run_id)["coder"][:2] == ["unsafe", "ok"]
    searched = [d for d in db.records.designs() if d.origin == "llm"]
    assert [d.code for d in searched] == [GOOD]
    assert [e.status for e in db.records.evaluations(searched[0].id)] == ["ok"]


def test_the_cli_names_a_missing_key_before_seeding_anything(tmp_path, monkeypatch, capsys):
    from discover.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    workspace = tmp_path / "ws"
    code = main(["run", "--budget", "1", "--tier", TIER, "--workspace", str(workspace), "--model",
                 "openai/gpt-4o-mini"])
    err = capsys.readouterr().err.replace("\n", " ")
    assert code == 2 and "OPENAI_API_KEY" in err
    assert not (workspace / "experience.db").exists(), "nothing is seeded or recorded before the check"


def test_a_run_the_agents_could_not_work_exits_non_zero(workspace, tmp_path, capsys):
    from discover.cli import main

    refs = tmp_path / "refs.toml"
    refs.write_text(f"references = {list(REFS)!r}\nmax_llm_failures = 2\n".replace("'", '"'))
    script = Script(default=lambda role, request: Reply("no JSON here, and no code either"))
    with LLMServer(script) as server:
        code = main(["run", "--budget", "1", "--tier", TIER, "--workspace", str(workspace), "--workers", "1",
                     "--config", str(refs), "--model", MODEL, "--api-base", server.url])
    assert code == 1 and "2 agent failures in a row" in capsys.readouterr().err.replace("\n", " ")
