"""The sandbox runs a function in an isolated child and reports every way it can end."""

import os
import time

import pytest

import sandbox
from sandbox import Job, Limits, LocalExecutor

T = "tests.sandbox_targets:"


def run(name, payload=None, **limits):
    return sandbox.run(Job(T + name, payload or {}, Limits(**limits)))


def test_returns_value_from_private_working_directory():
    result = run("echo", {"a": 1})
    assert result.outcome == "returned"
    assert result.value["payload"] == {"a": 1}
    assert result.value["pid"] != os.getpid()
    assert "discover-sandbox-" in result.value["cwd"]
    assert not os.path.exists(result.value["cwd"])  # removed afterwards
    assert result.isolation["session"] is True


def test_exception_is_reported_with_traceback():
    result = run("raises")
    assert result.outcome == "raised"
    assert result.error == "ValueError: no good"
    assert "sandbox_targets.py" in result.traceback


def test_secrets_are_not_visible_in_the_child(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-secret")
    result = run("environ")
    assert result.outcome == "returned"
    assert "OPENAI_API_KEY" not in result.value["environ"]
    assert "MY_SERVICE_TOKEN" not in result.value["environ"]
    assert "sk-test-secret" not in result.value["initial"]
    assert result.value["environ"]["OMP_NUM_THREADS"] == "1"


def test_spin_loop_is_killed_at_the_wall_clock_limit():
    started = time.monotonic()
    result = run("spin", wall_s=2)
    assert result.outcome == "timeout"
    assert time.monotonic() - started < 10


def test_grandchildren_die_with_the_group(tmp_path):
    pidfile = tmp_path / "pid"
    result = run("spawn_sleeper", {"pidfile": str(pidfile)}, wall_s=3)
    assert result.outcome == "timeout"
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"grandchild {grandchild} survived")


@pytest.mark.parametrize("target", ["alloc", "alloc_bytes"])
def test_memory_limit_stops_a_50_gb_allocation(target):
    result = run(target, memory_bytes=4 << 30)
    assert result.outcome == "memory", (result.outcome, result.error)


def test_network_is_unreachable():
    result = run("connect", {"port": 9})
    if not result.isolation.get("network", "").startswith("namespace"):
        pytest.skip(f"no network namespace here: {result.isolation.get('network')}")
    assert result.value["connected"] is False


def test_huge_output_is_truncated():
    result = run("shout", {"megabytes": 20}, output_bytes=64 << 10)
    assert result.outcome == "returned"
    assert result.truncated
    assert len(result.stdout) < 100_000


def test_exit_code_and_signal_are_named():
    exited = run("exit3")
    assert exited.outcome == "exited" and exited.returncode == 3
    killed = run("segv")
    assert killed.outcome == "killed" and killed.signal == "SIGSEGV"


def test_local_executor_runs_all_jobs():
    executor = LocalExecutor(workers=2)
    try:
        futures = [executor.submit(Job(T + "echo", {"i": i})) for i in range(4)]
        values = [f.result(timeout=60).value["payload"]["i"] for f in futures]
    finally:
        executor.shutdown()
    assert values == [0, 1, 2, 3]
