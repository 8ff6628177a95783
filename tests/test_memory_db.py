import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlite_utils import Database

from memory.db import (
    SCHEMA_VERSION,
    Design,
    DuplicateDesignError,
    ExperienceDB,
    RecordNotFound,
    SchemaError,
    migrate,
)
from memory.dedup import code_hash, structural_hash

REPO = Path(__file__).resolve().parents[1]
CODE = '"""Linear\n\nA linear mixer."""\nimport torch\n\n\nclass Mixer(torch.nn.Module):\n    scale = 1.0\n'


def code(i: int) -> str:
    return CODE.replace("1.0", f"{i}.5")


@pytest.fixture
def db(tmp_path):
    with ExperienceDB(tmp_path / "experience.db") as database:
        yield database


def run_python(source: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        cwd=REPO, env={"PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )


def test_new_file_is_migrated_to_the_current_schema_in_wal_mode(tmp_path):
    path = tmp_path / "experience.db"
    ExperienceDB(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "designs", "duplicates", "evaluations", "analyses", "llm_calls", "events"} <= tables


def test_reopening_keeps_the_records(tmp_path):
    path = tmp_path / "experience.db"
    with ExperienceDB(path) as first:
        design_id = first.add_design("linear", "why", CODE, origin="baseline")
    with ExperienceDB(path) as second:
        assert second.design(design_id).name == "linear"


def test_migrations_apply_in_order_and_only_once(tmp_path):
    calls = []

    def v1(db):
        calls.append(1)
        db["t"].create({"id": int}, pk="id")

    def v2(db):
        calls.append(2)
        db["t"].add_column("note", str)

    path = tmp_path / "m.db"
    assert migrate(Database(path), [v1]) == 1
    assert migrate(Database(path), [v1, v2]) == 2  # an old file is upgraded
    assert migrate(Database(path), [v1, v2]) == 2
    assert calls == [1, 2]
    assert Database(path)["t"].columns_dict == {"id": int, "note": str}


def test_a_failing_migration_leaves_the_file_at_its_old_version(tmp_path):
    def v1(db):
        db["t"].create({"id": int}, pk="id")
        raise RuntimeError("broken migration")

    path = tmp_path / "m.db"
    with pytest.raises(RuntimeError, match="broken migration"):
        migrate(Database(path), [v1])
    database = Database(path)
    assert database.execute("PRAGMA user_version").fetchone()[0] == 0
    assert database.table_names() == []


def test_a_file_from_newer_code_is_refused(tmp_path):
    path = tmp_path / "experience.db"
    ExperienceDB(path).close()
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaError, match="newer"):
        ExperienceDB(path)


def test_design_round_trip(db):
    run_id = db.start_run(10, "quick", {"seed": 0})
    root = db.add_design("linear", "baseline", CODE, origin="baseline", run_id=run_id)
    child_id = db.add_design(
        "gated", "adds a gate", code(1), origin="offline", parents=[root], spec={"update": "gated", "conv": 4},
        run_id=run_id,
    )
    db.set_archive_commit(child_id, "a" * 40)
    child = db.design(child_id)
    assert isinstance(child, Design)
    assert (child.name, child.motivation, child.code, child.origin) == ("gated", "adds a gate", code(1), "offline")
    assert child.parents == (root,)
    assert child.spec == {"update": "gated", "conv": 4}
    assert child.archive_commit == "a" * 40
    assert child.code_hash == code_hash(code(1))
    assert child.struct_hash == structural_hash(code(1))
    assert [d.id for d in db.designs(origin="baseline")] == [root]


def test_code_hash_is_unique(db):
    first = db.add_design("linear", "why", CODE, origin="llm")
    with pytest.raises(DuplicateDesignError) as raised:
        db.add_design("again", "why", CODE.replace("\n", "  \r\n"), origin="llm")
    assert raised.value.original_id == first
    with pytest.raises(sqlite3.IntegrityError):
        db.db["designs"].insert({**db.db["designs"].get(first), "id": None})


def test_find_duplicate_checks_exact_then_structural(db):
    original = db.add_design("linear", "why", CODE, origin="llm")
    assert db.find_duplicate(CODE + "\n\n")[0] == "exact"
    kind, found = db.find_duplicate(CODE.replace("scale", "gain").replace('"""Linear', '"""Renamed'))
    assert (kind, found.id) == ("structural", original)
    assert db.find_duplicate(code(7)) is None
    assert db.find_by_struct_hash(None) is None


def test_duplicate_is_recorded_and_costs_no_evaluation(db):
    run_id = db.start_run(5, "quick", {})
    original = db.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    db.add_duplicate(run_id, CODE, "exact", original, "linear again", "llm")
    [row] = db.duplicates(run_id)
    assert (row["kind"], row["original_id"], row["code_hash"]) == ("exact", original, code_hash(CODE))
    assert db.spent(run_id) == 0


def test_unknown_parent_or_choice_is_refused(db):
    with pytest.raises(ValueError, match=r"unknown ids \[42\]"):
        db.add_design("orphan", "why", CODE, origin="llm", parents=[42])
    with pytest.raises(ValueError, match="origin must be one of"):
        db.add_design("x", "why", CODE, origin="human")


def test_evaluation_round_trip(db):
    run_id = db.start_run(5, "quick", {})
    design_id = db.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    eval_id = db.begin_evaluation(design_id, run_id, "search", "quick", 1, seed=0)
    assert db.evaluation(eval_id).status == "running"
    db.finish_evaluation(eval_id, "ok", metrics={"mqar": 0.9}, score=1.2, log="done", duration_s=3.5,
                         environment={"torch": "2.4"})
    [evaluation] = db.evaluations(design_id)
    assert (evaluation.status, evaluation.metrics, evaluation.score) == ("ok", {"mqar": 0.9}, 1.2)
    assert (evaluation.tier, evaluation.tier_version, evaluation.seed) == ("quick", 1, 0)
    assert evaluation.environment == {"torch": "2.4"} and evaluation.finished_at is not None
    with pytest.raises(ValueError, match="must be 'running' to finish; it is 'ok'"):
        db.finish_evaluation(eval_id, "nan")


def test_a_failure_carries_no_score(db):
    design_id = db.add_design("linear", "why", CODE, origin="llm")
    eval_id = db.begin_evaluation(design_id, None, "search", "quick", 1, 0)
    with pytest.raises(ValueError, match="only given for status 'ok'"):
        db.finish_evaluation(eval_id, "nan", score=0.0)
    db.finish_evaluation(eval_id, "nan", reason="loss is nan at step 12")
    assert db.evaluation(eval_id).score is None


def test_abandon_inflight_and_spent_give_exact_budget(db):
    run_id = db.start_run(4, "quick", {})
    design_id = db.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    ok = db.begin_evaluation(design_id, run_id, "search", "quick", 1, 0)
    failed = db.begin_evaluation(design_id, run_id, "search", "quick", 1, 1)
    db.begin_evaluation(design_id, run_id, "search", "quick", 1, 2)  # in flight when the process dies
    seeded = db.begin_evaluation(design_id, run_id, "seed", "quick", 1, 0)
    db.finish_evaluation(ok, "ok", score=1.0)
    db.finish_evaluation(failed, "timeout", reason="over 120 s")
    db.finish_evaluation(seeded, "ok", score=1.0)
    assert db.abandon_inflight(run_id) == 1
    assert db.abandon_inflight(run_id) == 0
    assert db.spent(run_id) == 2
    assert db.spent(run_id, purpose="seed") == 1


def test_kill_9_mid_transaction_loses_only_the_evaluation_in_flight(tmp_path):
    path = tmp_path / "experience.db"
    done = run_python(f"""
        import os, signal
        from memory.db import ExperienceDB
        db = ExperienceDB({str(path)!r})
        run = db.start_run(3, "quick", {{}})
        design = db.add_design("linear", "why", "x = 1", origin="llm", run_id=run)
        db.finish_evaluation(db.begin_evaluation(design, run, "search", "quick", 1, 0), "ok", score=1.0)
        db.begin_evaluation(design, run, "search", "quick", 1, 1)
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.execute("INSERT INTO events (run_id, ts, kind) VALUES (?, 'now', 'half-written')", [run])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert done.returncode == -9, done.stderr
    with ExperienceDB(path) as db:
        run = db.latest_run()
        assert run.status == "running"
        assert db.events(run.id) == []
        assert db.abandon_inflight(run.id) == 1
        assert db.spent(run.id) == 1
        assert db.resume_run(run.id).status == "running"


def test_reader_process_is_not_blocked_by_an_open_write(tmp_path):
    path = tmp_path / "experience.db"
    with ExperienceDB(path) as db:
        run_id = db.start_run(1, "quick", {})
        db.log_event(run_id, "started")
        with db.transaction():
            db.log_event(run_id, "uncommitted")
            read = run_python(f"""
                import sqlite3
                conn = sqlite3.connect("file:{path}?mode=ro", uri=True, timeout=0)
                print(conn.execute("SELECT group_concat(kind) FROM events").fetchone()[0])
                conn.execute("INSERT INTO events (ts, kind) VALUES ('now', 'from reader')")
            """)
        assert read.stdout.strip() == "started"
        assert "attempt to write a readonly database" in read.stderr
        assert [e.kind for e in db.events(run_id)] == ["started", "uncommitted"]


def test_readonly_handle_reads_while_the_writer_writes(tmp_path):
    path = tmp_path / "experience.db"
    with ExperienceDB(path) as writer, writer.transaction():
        design_id = writer.add_design("linear", "why", CODE, origin="baseline")
        with ExperienceDB(path, readonly=True) as reader:
            assert reader.designs() == []
            with pytest.raises(RecordNotFound, match=f"no design with id {design_id}"):
                reader.design(design_id)
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.log_event(None, "x")


def test_transaction_rolls_back_every_change_together(db):
    run_id = db.start_run(1, "quick", {})
    with pytest.raises(RuntimeError), db.transaction():
        db.log_event(run_id, "first")
        db.add_design("linear", "why", CODE, origin="llm")
        raise RuntimeError("crash between records")
    assert db.events(run_id) == [] and db.designs() == []


def add_scored(db, name, score, *, tier="quick", version=1, origin="llm", status="ok", spec=None, parents=()):
    design_id = db.add_design(name, "why", f"{CODE}NAME = {name!r}\n", origin=origin, spec=spec, parents=parents)
    eval_id = db.begin_evaluation(design_id, None, "search", tier, version, 0)
    db.finish_evaluation(eval_id, status, score=score if status == "ok" else None, metrics={"score": score})
    return design_id


def test_top_ranks_each_designs_best_ok_evaluation(db):
    a = add_scored(db, "a", 0.5)
    b = add_scored(db, "b", 0.9)
    c = add_scored(db, "c", 0.9)
    add_scored(db, "failed", None, status="nan")
    add_scored(db, "other tier", 5.0, tier="smoke")
    add_scored(db, "old version", 5.0, version=0)
    again = db.begin_evaluation(a, None, "verify", "quick", 1, 1)
    db.finish_evaluation(again, "ok", score=0.95)
    top = db.top("quick", k=3, tier_version=1)
    assert [(d.id, e.score) for d, e in top] == [(a, 0.95), (b, 0.9), (c, 0.9)]
    assert [d.name for d, _ in db.top("quick", k=1)] == ["old version"]


def test_references_collect_baseline_metrics(db):
    add_scored(db, "softmax", 1.0, origin="baseline")
    add_scored(db, "linear", 0.4, origin="baseline", version=2)
    add_scored(db, "candidate", 2.0)
    assert db.references("quick", 1) == {"softmax": [{"score": 1.0}]}


def test_lineage_children_and_siblings(db):
    root = db.add_design("root", "why", code(1), origin="baseline")
    other = db.add_design("other root", "why", code(2), origin="baseline")
    child = db.add_design("child", "why", code(3), origin="offline", parents=[root])
    sibling = db.add_design("sibling", "why", code(4), origin="offline", parents=[root])
    cross = db.add_design("cross", "why", code(5), origin="offline", parents=[child, other])
    assert [d.id for d in db.lineage(cross)] == [child, root]
    assert db.lineage(root) == []
    assert [d.id for d in db.children(root)] == [child, sibling]
    assert [d.id for d in db.siblings(child)] == [sibling]
    assert db.siblings(root) == []


def test_choice_stats_count_and_average_best_scores(db):
    add_scored(db, "a", 1.0, spec={"update": "delta", "conv": True})
    add_scored(db, "b", 3.0, spec={"update": "delta", "conv": False})
    add_scored(db, "c", None, status="nan", spec={"update": "gated", "conv": True})
    add_scored(db, "no spec", 9.0)
    stats = {(s.choice, s.value): (s.n, s.n_ok, s.mean_score) for s in db.choice_stats("quick")}
    assert stats == {
        ("conv", False): (1, 1, 3.0),
        ("conv", True): (2, 1, 1.0),
        ("update", "delta"): (2, 2, 2.0),
        ("update", "gated"): (1, 0, None),
    }


def test_events_poll_after_the_last_id(db):
    run_id = db.start_run(1, "quick", {})
    first = db.log_event(run_id, "proposal", {"name": "x"})
    db.log_event(run_id, "evaluated", {"status": "ok"})
    events = db.events(run_id)
    assert [(e.kind, e.data) for e in events] == [("proposal", {"name": "x"}), ("evaluated", {"status": "ok"})]
    assert [e.kind for e in db.events(run_id, after_id=first)] == ["evaluated"]


def test_llm_calls_and_analyses_are_recorded(db):
    run_id = db.start_run(1, "quick", {})
    design_id = db.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    db.add_llm_call(run_id, "coder", "openai/gpt-x", prompt_tokens=100, completion_tokens=20, cost=0.01,
                    latency_s=1.5, request={"messages": []}, reply="code", design_id=design_id)
    db.add_llm_call(run_id, "researcher", "ollama/local", prompt_tokens=50, completion_tokens=5)
    assert db.llm_usage(run_id) == {
        "calls": 2, "prompt_tokens": 150, "completion_tokens": 25, "cost": 0.01, "unknown_cost_calls": 1,
    }
    db.add_analysis(design_id, "offline-analyst", "the gate helped", {"delta": 0.1})
    [analysis] = db.analyses(design_id)
    assert (analysis["author"], analysis["text"], analysis["data"]) == ("offline-analyst", "the gate helped",
                                                                         {"delta": 0.1})


def test_runs_start_and_finish(db):
    run_id = db.start_run(20, "smoke", {"model": "offline"}, workspace="runs")
    db.finish_run(run_id, "stopped")
    run = db.run(run_id)
    assert (run.budget, run.tier, run.config, run.status) == (20, "smoke", {"model": "offline"}, "stopped")
    assert run.ended_at is not None
    with pytest.raises(ValueError, match="run status must be one of"):
        db.finish_run(run_id, "done")
