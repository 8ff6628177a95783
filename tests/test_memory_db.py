import inspect
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlite_utils import Database

from memory import protocols
from memory.db import ExperienceDB
from memory.dedup import code_hash, structural_hash
from memory.journal import JournalStore
from memory.provenance import ProvenanceStore
from memory.records import Design, DuplicateDesignError, RecordNotFound, RecordStore
from memory.schema import SCHEMA_VERSION, SchemaError, migrate
from memory.views import ReadModels

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
        design_id = first.records.add_design("linear", "why", CODE, origin="baseline")
    with ExperienceDB(path) as second:
        assert second.records.design(design_id).name == "linear"


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
    run_id = db.records.start_run(10, "quick", {"seed": 0})
    root = db.records.add_design("linear", "baseline", CODE, origin="baseline", run_id=run_id)
    child_id = db.records.add_design(
        "gated", "adds a gate", code(1), origin="offline", parents=[root], spec={"update": "gated", "conv": 4},
        run_id=run_id,
    )
    db.records.set_archive_commit(child_id, "a" * 40)
    child = db.records.design(child_id)
    assert isinstance(child, Design)
    assert (child.name, child.motivation, child.code, child.origin) == ("gated", "adds a gate", code(1), "offline")
    assert child.parents == (root,)
    assert child.spec == {"update": "gated", "conv": 4}
    assert child.archive_commit == "a" * 40
    assert child.code_hash == code_hash(code(1))
    assert child.struct_hash == structural_hash(code(1))
    assert [d.id for d in db.records.designs(origin="baseline")] == [root]


def test_code_hash_is_unique(db):
    first = db.records.add_design("linear", "why", CODE, origin="llm")
    with pytest.raises(DuplicateDesignError) as raised:
        db.records.add_design("again", "why", CODE.replace("\n", "  \r\n"), origin="llm")
    assert raised.value.original_id == first
    with pytest.raises(sqlite3.IntegrityError):
        db.db["designs"].insert({**db.db["designs"].get(first), "id": None})


def test_find_duplicate_checks_exact_then_structural(db):
    original = db.records.add_design("linear", "why", CODE, origin="llm")
    assert db.records.find_duplicate(CODE + "\n\n")[0] == "exact"
    kind, found = db.records.find_duplicate(CODE.replace("scale", "gain").replace('"""Linear', '"""Renamed'))
    assert (kind, found.id) == ("structural", original)
    assert db.records.find_duplicate(code(7)) is None
    assert db.records.find_by_struct_hash(None) is None


def test_duplicate_is_recorded_and_costs_no_evaluation(db):
    run_id = db.records.start_run(5, "quick", {})
    original = db.records.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    db.records.add_duplicate(run_id, CODE, "exact", original, "linear again", "llm")
    [row] = db.records.duplicates(run_id)
    assert (row["kind"], row["original_id"], row["code_hash"]) == ("exact", original, code_hash(CODE))
    assert db.records.spent(run_id) == 0


def test_unknown_parent_or_choice_is_refused(db):
    with pytest.raises(ValueError, match=r"unknown ids \[42\]"):
        db.records.add_design("orphan", "why", CODE, origin="llm", parents=[42])
    with pytest.raises(ValueError, match="origin must be one of"):
        db.records.add_design("x", "why", CODE, origin="human")


def test_evaluation_round_trip(db):
    run_id = db.records.start_run(5, "quick", {})
    design_id = db.records.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    eval_id = db.records.begin_evaluation(design_id, run_id, "search", "quick", 1, seed=0)
    assert db.records.evaluation(eval_id).status == "running"
    db.records.finish_evaluation(eval_id, "ok", metrics={"mqar": 0.9}, score=1.2, log="done", duration_s=3.5,
                         environment={"torch": "2.4"})
    [evaluation] = db.records.evaluations(design_id)
    assert (evaluation.status, evaluation.metrics, evaluation.score) == ("ok", {"mqar": 0.9}, 1.2)
    assert (evaluation.tier, evaluation.tier_version, evaluation.seed) == ("quick", 1, 0)
    assert evaluation.environment == {"torch": "2.4"} and evaluation.finished_at is not None
    with pytest.raises(ValueError, match="must be 'running' to finish; it is 'ok'"):
        db.records.finish_evaluation(eval_id, "nan")


def test_a_failure_carries_no_score(db):
    design_id = db.records.add_design("linear", "why", CODE, origin="llm")
    eval_id = db.records.begin_evaluation(design_id, None, "search", "quick", 1, 0)
    with pytest.raises(ValueError, match="only given for status 'ok'"):
        db.records.finish_evaluation(eval_id, "nan", score=0.0)
    db.records.finish_evaluation(eval_id, "nan", reason="loss is nan at step 12")
    assert db.records.evaluation(eval_id).score is None


def test_abandon_inflight_and_spent_give_exact_budget(db):
    run_id = db.records.start_run(4, "quick", {})
    design_id = db.records.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    ok = db.records.begin_evaluation(design_id, run_id, "search", "quick", 1, 0)
    failed = db.records.begin_evaluation(design_id, run_id, "search", "quick", 1, 1)
    db.records.begin_evaluation(design_id, run_id, "search", "quick", 1, 2)  # in flight when the process dies
    seeded = db.records.begin_evaluation(design_id, run_id, "seed", "quick", 1, 0)
    db.records.finish_evaluation(ok, "ok", score=1.0)
    db.records.finish_evaluation(failed, "timeout", reason="over 120 s")
    db.records.finish_evaluation(seeded, "ok", score=1.0)
    assert db.records.abandon_inflight(run_id) == 1
    assert db.records.abandon_inflight(run_id) == 0
    assert db.records.spent(run_id) == 2
    assert db.records.spent(run_id, purpose="seed") == 1


def test_kill_9_mid_transaction_loses_only_the_evaluation_in_flight(tmp_path):
    path = tmp_path / "experience.db"
    done = run_python(f"""
        import os, signal
        from memory.db import ExperienceDB
        db = ExperienceDB({str(path)!r})
        run = db.records.start_run(3, "quick", {{}})
        design = db.records.add_design("linear", "why", "x = 1", origin="llm", run_id=run)
        db.records.finish_evaluation(db.records.begin_evaluation(design, run, "search", "quick", 1, 0), "ok", score=1.0)
        db.records.begin_evaluation(design, run, "search", "quick", 1, 1)
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.execute("INSERT INTO events (run_id, ts, kind) VALUES (?, 'now', 'half-written')", [run])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert done.returncode == -9, done.stderr
    with ExperienceDB(path) as db:
        run = db.records.latest_run()
        assert run.status == "running"
        assert db.records.events(run.id) == []
        assert db.records.abandon_inflight(run.id) == 1
        assert db.records.spent(run.id) == 1
        assert db.records.resume_run(run.id).status == "running"


def test_reader_process_is_not_blocked_by_an_open_write(tmp_path):
    path = tmp_path / "experience.db"
    with ExperienceDB(path) as db:
        run_id = db.records.start_run(1, "quick", {})
        db.records.log_event(run_id, "started")
        with db.transaction():
            db.records.log_event(run_id, "uncommitted")
            read = run_python(f"""
                import sqlite3
                conn = sqlite3.connect("file:{path}?mode=ro", uri=True, timeout=0)
                print(conn.execute("SELECT group_concat(kind) FROM events").fetchone()[0])
                conn.execute("INSERT INTO events (ts, kind) VALUES ('now', 'from reader')")
            """)
        assert read.stdout.strip() == "started"
        assert "attempt to write a readonly database" in read.stderr
        assert [e.kind for e in db.records.events(run_id)] == ["started", "uncommitted"]


def test_readonly_handle_reads_while_the_writer_writes(tmp_path):
    path = tmp_path / "experience.db"
    with ExperienceDB(path) as writer, writer.transaction():
        design_id = writer.records.add_design("linear", "why", CODE, origin="baseline")
        with ExperienceDB(path, readonly=True) as reader:
            assert reader.records.designs() == []
            with pytest.raises(RecordNotFound, match=f"no design with id {design_id}"):
                reader.records.design(design_id)
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.records.log_event(None, "x")


def test_transaction_rolls_back_every_change_together(db):
    run_id = db.records.start_run(1, "quick", {})
    with pytest.raises(RuntimeError), db.transaction():
        db.records.log_event(run_id, "first")
        db.records.add_design("linear", "why", CODE, origin="llm")
        raise RuntimeError("crash between records")
    assert db.records.events(run_id) == [] and db.records.designs() == []


def add_scored(db, name, score, *, tier="quick", version=1, origin="llm", status="ok", spec=None, parents=(),
               purpose=None):
    design_id = db.records.add_design(name, "why", f"{CODE}NAME = {name!r}\n", origin=origin, spec=spec,
                                      parents=parents)
    purpose = purpose or ("seed" if origin == "baseline" else "search")
    eval_id = db.records.begin_evaluation(design_id, None, purpose, tier, version, 0)
    db.records.finish_evaluation(eval_id, status, score=score if status == "ok" else None, metrics={"score": score})
    return design_id


def test_top_ranks_each_designs_best_ok_evaluation(db):
    a = add_scored(db, "a", 0.5)
    b = add_scored(db, "b", 0.9)
    c = add_scored(db, "c", 0.9)
    add_scored(db, "failed", None, status="nan")
    add_scored(db, "other tier", 5.0, tier="smoke")
    add_scored(db, "old version", 5.0, version=0)
    again = db.records.begin_evaluation(a, None, "verify", "quick", 1, 1)
    db.records.finish_evaluation(again, "ok", score=0.95)
    top = db.records.top("quick", k=3, tier_version=1)
    assert [(d.id, e.score) for d, e in top] == [(a, 0.95), (b, 0.9), (c, 0.9)]
    assert [d.name for d, _ in db.records.top("quick", k=1)] == ["old version"]


def test_references_collect_baseline_metrics(db):
    add_scored(db, "softmax", 1.0, origin="baseline")
    add_scored(db, "linear", 0.4, origin="baseline", version=2)
    add_scored(db, "candidate", 2.0)
    assert db.records.references("quick", 1) == {"softmax": [{"score": 1.0}]}


def test_a_verification_or_replay_of_a_seeded_baseline_does_not_move_the_references(db):
    softmax = add_scored(db, "softmax", 1.0, origin="baseline")
    before = db.records.references("quick", 1)
    for purpose in ("verify", "replay"):
        eval_id = db.records.begin_evaluation(softmax, None, purpose, "quick", 1, 1)
        db.records.finish_evaluation(eval_id, "ok", score=1.3, metrics={"score": 1.3})
    assert db.records.references("quick", 1) == before
    # A baseline only a verification evaluated is still a yardstick; its replay is not.
    linear = add_scored(db, "linear", 0.4, origin="baseline", purpose="verify")
    eval_id = db.records.begin_evaluation(linear, None, "replay", "quick", 1, 0)
    db.records.finish_evaluation(eval_id, "ok", score=0.1, metrics={"score": 0.1})
    assert db.records.references("quick", 1) == {**before, "linear": [{"score": 0.4}]}


def test_lineage_children_and_siblings(db):
    root = db.records.add_design("root", "why", code(1), origin="baseline")
    other = db.records.add_design("other root", "why", code(2), origin="baseline")
    child = db.records.add_design("child", "why", code(3), origin="offline", parents=[root])
    sibling = db.records.add_design("sibling", "why", code(4), origin="offline", parents=[root])
    cross = db.records.add_design("cross", "why", code(5), origin="offline", parents=[child, other])
    assert [d.id for d in db.records.lineage(cross)] == [child, root]
    assert db.records.lineage(root) == []
    assert [d.id for d in db.records.children(root)] == [child, sibling]
    assert [d.id for d in db.records.siblings(child)] == [sibling]
    assert db.records.siblings(root) == []


def test_events_poll_after_the_last_id(db):
    run_id = db.records.start_run(1, "quick", {})
    first = db.records.log_event(run_id, "proposal", {"name": "x"})
    db.records.log_event(run_id, "evaluated", {"status": "ok"})
    events = db.records.events(run_id)
    assert [(e.kind, e.data) for e in events] == [("proposal", {"name": "x"}), ("evaluated", {"status": "ok"})]
    assert [e.kind for e in db.records.events(run_id, after_id=first)] == ["evaluated"]


def test_llm_calls_and_analyses_are_recorded(db):
    run_id = db.records.start_run(1, "quick", {})
    design_id = db.records.add_design("linear", "why", CODE, origin="llm", run_id=run_id)
    db.journal.add_llm_call(run_id, "coder", "openai/gpt-x", prompt_tokens=100, completion_tokens=20, cost=0.01,
                    latency_s=1.5, request={"messages": []}, reply="code", design_id=design_id)
    db.journal.add_llm_call(run_id, "researcher", "ollama/local", prompt_tokens=50, completion_tokens=5)
    assert db.journal.llm_usage(run_id) == {
        "calls": 2, "prompt_tokens": 150, "completion_tokens": 25, "cost": 0.01, "unknown_cost_calls": 1,
    }
    db.records.add_analysis(design_id, "offline-analyst", "the gate helped", {"delta": 0.1})
    [analysis] = db.records.analyses(design_id)
    assert (analysis["author"], analysis["text"], analysis["data"]) == ("offline-analyst", "the gate helped",
                                                                         {"delta": 0.1})


def test_runs_start_and_finish(db):
    run_id = db.records.start_run(20, "smoke", {"model": "offline"}, workspace="runs")
    db.records.finish_run(run_id, "stopped")
    run = db.records.run(run_id)
    assert (run.budget, run.tier, run.config, run.status) == (20, "smoke", {"model": "offline"}, "stopped")
    assert run.ended_at is not None
    with pytest.raises(ValueError, match="run status must be one of"):
        db.records.finish_run(run_id, "done")


STORES = [("records", RecordStore, protocols.Records), ("journal", JournalStore, protocols.Journal),
          ("provenance", ProvenanceStore, protocols.Provenance), ("views", ReadModels, protocols.Views)]


def test_the_database_exposes_its_four_stores_over_its_one_connection(db):
    for attribute, store, _ in STORES:
        assert isinstance(getattr(db, attribute), store)
        assert getattr(db, attribute).conn is db.conn
    with pytest.raises(RuntimeError), db.transaction():
        db.records.start_run(1, "quick", {})
        db.journal.add_llm_call(None, "coder", "openai/gpt-x")
        raise RuntimeError("crash between stores")
    assert db.records.latest_run() is None and db.journal.llm_calls() == []


@pytest.mark.parametrize("store, protocol", [(store, protocol) for _, store, protocol in STORES],
                         ids=[attribute for attribute, _, _ in STORES])
def test_each_store_has_every_method_of_its_protocol_with_the_same_signature(store, protocol):
    methods = [name for name, member in vars(protocol).items() if inspect.isfunction(member) and name[0] != "_"]
    assert methods
    for name in methods:
        assert hasattr(store, name), f"{store.__name__} lacks {protocol.__name__}.{name}"
        expected = inspect.signature(getattr(protocol, name), eval_str=True)
        assert inspect.signature(getattr(store, name), eval_str=True) == expected, f"{store.__name__}.{name}"


def test_views_read_only_the_rows_after_the_last_id_seen(db):
    first = add_scored(db, "a", 0.5)
    second = add_scored(db, "b", 0.7, version=2)
    earlier = db.records.add_analysis(first, "offline-analyst", "fine", {"delta": 0.1})
    later = db.records.add_analysis(second, "offline-analyst", "better")
    assert [d.id for d in db.views.designs_after(first)] == [second]
    [at_v1] = db.views.evaluations_after(0, "quick", 1)
    assert at_v1.design_id == first and db.views.evaluations_after(at_v1.id, "quick", 1) == []
    assert [e.design_id for e in db.views.evaluations_by_id([at_v1.id + 1, at_v1.id, 99])] == [first, second]
    assert [(a["id"], a["data"]) for a in db.views.analyses_after(0)] == [(earlier, {"delta": 0.1}), (later, None)]
    assert [a["text"] for a in db.views.analyses_after(earlier)] == ["better"]
