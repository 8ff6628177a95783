"""The sandbox runs a named function in an isolated child and names every way that child can end."""

import contextlib
import os
import socket
import sys
import tempfile
import time

import pytest

import sandbox
from sandbox import Job, Limits, LocalExecutor, Sandbox

SECRET = "sk-test-not-for-children"
TARGETS = "tests.sandbox_targets:"


@pytest.fixture(scope="module")
def box():
    # The secret is in the parent's environment when the fork server starts, as it would be in a real run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", SECRET)
        patch.setenv("MY_SERVICE_TOKEN", SECRET)
        with Sandbox(preload=("torch", "tests.sandbox_targets")) as started:
            yield started


@pytest.fixture
def run(box):
    def run(name, payload=None, **limits):
        return box.run(Job(TARGETS + name, payload or {}, Limits(**{"wall_s": 10, **limits})))

    return run


def preloaded(payload):
    """A target: which of ``payload["modules"]`` the child had imported before its target module ran."""
    return {name: name in sys.modules for name in payload["modules"]}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, found by reading every /proc/<pid>/stat."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):  # it ended meanwhile
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    return [grandchild for child in children(pid) for grandchild in (child, *descendants(child))]


def test_returns_the_value_and_the_isolation_facts(run):
    result = run("echo", {"a": [1, 2]})
    assert result.outcome == "returned", result.error
    assert result.value["payload"] == {"a": [1, 2]}
    assert result.value["pid"] != os.getpid()
    info = result.value["info"]  # sandbox.child_info() inside the child
    assert info == {k: v for k, v in result.isolation.items() if k not in ("start_method", "preload")}
    assert info["session"] is True and info["env_scrubbed"] is True
    assert info["rlimits"]["as"] == 6 << 30 and info["rlimits"]["core"] == 0
    assert result.isolation["start_method"].startswith("zygote")
    assert result.ready_s is not None and result.imported_s >= result.ready_s


def test_exception_comes_back_with_its_traceback(run):
    result = run("raises")
    assert result.outcome == "raised"
    assert result.error == "ValueError: no good"
    assert "sandbox_targets.py" in result.traceback and result.value is None


def test_unknown_target_is_reported_by_the_child():
    result = sandbox.run(Job("no_such_package.module:fn", {}, Limits(wall_s=10)))
    assert result.outcome == "raised"
    assert result.error.startswith("ModuleNotFoundError")


def test_secrets_never_reach_the_child(run):
    result = run("environment")
    assert result.outcome == "returned", result.error
    environ = result.value["environ"]
    assert "OPENAI_API_KEY" not in environ and "MY_SERVICE_TOKEN" not in environ
    # /proc/self/environ, what the process was started with: scrubbed, or unreadable once it is nobody
    assert result.value["initial"] is None or SECRET not in result.value["initial"]
    assert SECRET not in str(environ)
    assert environ["PATH"] and environ["OMP_NUM_THREADS"] == "1"


def test_scrubbed_environment_keeps_only_the_allow_list():
    env = sandbox.scrubbed_environment(
        {"PATH": "/bin", "LC_ALL": "C", "TRITON_CACHE_DIR": "/c", "TORCH_AUTH_TOKEN": "x", "AWS_SECRET_ACCESS_KEY": "x",
         "GITHUB_TOKEN": "x", "EDITOR": "vi"}, home="/tmp/h", threads=2)
    assert env["PATH"] == "/bin" and env["LC_ALL"] == "C" and env["TRITON_CACHE_DIR"] == "/c"
    assert env["HOME"] == env["TMPDIR"] == "/tmp/h" and env["MKL_NUM_THREADS"] == "2"
    assert not {"TORCH_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "EDITOR"} & set(env)


@pytest.mark.parametrize("threads", [1, 2])
def test_compute_threads_follow_the_limit(threads, run):
    result = run("threads", threads=threads)
    assert result.value == {"torch": threads, "omp": str(threads)}


def test_working_directory_is_private_and_removed_afterwards(run):
    result = run("write_file")
    assert result.outcome == "returned", result.error
    cwd = result.value["cwd"]
    assert cwd.startswith(tempfile.gettempdir()) and cwd != os.getcwd()
    assert result.value["home"] == cwd and result.value["files"] == ["scratch.txt"]
    assert not os.path.exists(cwd)


def test_spin_loop_is_killed_at_the_wall_clock_limit(run):
    result = run("spin", wall_s=1)
    assert result.outcome == "timeout"
    assert result.signal == "SIGKILL"
    assert result.wall_s < 1 + 2


def test_timeout_kills_grandchildren_even_in_their_own_session(run):
    result = run("sleepers_then_hang", wall_s=2)
    assert result.outcome == "timeout"
    pids = [int(pid) for pid in result.stdout.split()]
    assert len(pids) == 2 and all(gone(pid) for pid in pids)


def test_children_left_behind_die_when_the_target_returns(run):
    result = run("sleepers_then_return")
    assert result.outcome == "returned", result.error
    assert all(gone(pid) for pid in result.value["pids"])


@pytest.mark.parametrize("target", ["allocate_torch", "allocate_bytes"])
def test_fifty_gigabytes_hit_the_memory_limit(target, run):
    result = run(target)
    assert result.outcome == "memory", (result.outcome, result.error)
    assert "allocate" in result.error or "MemoryError" in result.error


def test_cpu_time_limit_stops_a_spin_loop(run):
    result = run("spin", wall_s=20, cpu_s=1)
    assert result.outcome == "cpu-limit", (result.outcome, result.error)
    assert result.signal == "SIGXCPU"


def test_network_is_unreachable_unless_allowed(run):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        closed = run("connect", {"port": port})
        opened = run("connect", {"port": port}, network=True)
    if not closed.isolation["network"].startswith("namespace"):
        pytest.skip(f"no network namespace here: {closed.isolation['network']}")
    assert closed.value["connected"] is False, closed.value
    assert opened.value["connected"] is True and opened.isolation["network"] == "allowed"


def test_huge_output_is_truncated_and_the_value_survives(run):
    result = run("shout", {"megabytes": 100}, output_bytes=64 << 10)
    assert result.outcome == "returned" and result.value == {"done": True}
    assert result.truncated
    assert len(result.stdout) < (64 << 10) + 100
    assert "bytes cut" in result.stdout and result.stderr == "last words\n"


def test_garbage_on_stdout_cannot_forge_the_value(run):
    result = run("scribble")
    assert result.outcome == "returned", result.error
    assert result.value == {"genuine": True}
    assert "garbage on stdout" in result.stdout and "binary on stderr" in result.stderr


def test_exit_code_and_signal_are_named(run):
    exited = run("exit3")
    assert exited.outcome == "exited" and exited.returncode == 3 and "code 3" in exited.error
    crashed = run("segfault")
    assert crashed.outcome == "killed" and crashed.signal == "SIGSEGV" and "SIGSEGV" in crashed.error
    assert "Segmentation fault" in crashed.stderr  # faulthandler's Python traceback


@pytest.mark.parametrize("target", ["not_a_dict", "unserializable"])
def test_a_value_that_is_not_a_json_dict_is_named(target, run):
    assert run(target).outcome == "invalid-value"


def test_the_child_cannot_raise_its_own_limits(run):
    result = run("raise_limits")
    assert result.value["raised"] is False, result.value


def test_a_bad_target_name_is_the_callers_mistake():
    with pytest.raises(ValueError, match="package.module:function"):
        Job("no_colon_here", {})


def test_local_executor_runs_four_jobs_on_two_workers():
    with LocalExecutor(workers=2) as executor:
        futures = [executor.submit(Job(TARGETS + "echo", {"i": i}, Limits(wall_s=10))) for i in range(4)]
        results = [future.result(timeout=60) for future in futures]
    assert [r.value["payload"]["i"] for r in results] == [0, 1, 2, 3]
    assert len({r.value["pid"] for r in results}) == 4


def test_cancel_all_kills_the_running_job_and_the_executor_runs_the_next():
    with sandbox.make_executor("local", workers=1, preload=("tests.sandbox_targets",)) as executor:
        future = executor.submit(Job(TARGETS + "sleepers_then_hang", {}, Limits(wall_s=60)))
        deadline = time.monotonic() + 30
        job = []
        while len(job) < 3 and time.monotonic() < deadline:  # the child and its two sleepers, under the supervisor
            job = [pid for supervisor in children(executor.sandbox.pid) for pid in descendants(supervisor)]
            time.sleep(0.05)
        assert executor.cancel_all() == 1
        cancelled = future.result(timeout=10)
        after = executor.submit(Job(TARGETS + "echo", {"n": 2}, Limits(wall_s=10))).result(timeout=30)
    assert cancelled.outcome == "cancelled" and cancelled.error == "killed at the caller's request"
    assert len(job) == 3 and all(gone(pid) for pid in job), "the whole job is killed"
    assert after.outcome == "returned" and after.value["payload"] == {"n": 2}


def test_cancel_all_drops_queued_jobs():
    with LocalExecutor(workers=1, preload=("tests.sandbox_targets",)) as executor:
        running = executor.submit(Job(TARGETS + "spin", {}, Limits(wall_s=30)))
        queued = executor.submit(Job(TARGETS + "echo", {}, Limits(wall_s=10)))
        while not children(executor.sandbox.pid):  # the running job's supervisor
            time.sleep(0.01)
        assert executor.cancel_all() == 2
        assert queued.cancelled() and running.result(timeout=10).outcome == "cancelled"


def test_a_job_withdrawn_before_it_is_listed_never_starts(box):
    # An executor's cancel_all can come after a pool thread took the job and before the sandbox lists it
    # as running: the sandbox asks the caller once more, under the lock cancel_all takes.
    before = children(box.pid)
    result = box.run(Job(TARGETS + "spin", {}, Limits(wall_s=30)), wanted=lambda: False)
    assert result.outcome == "cancelled" and "withdrawn" in result.error
    assert children(box.pid) == before


def test_executors_with_different_preloads_coexist_and_each_job_sees_its_own():
    job = Job("tests.test_sandbox:preloaded", {"modules": ["colorsys", "graphlib"]}, Limits(wall_s=30))
    with LocalExecutor(workers=1, preload=("colorsys",)) as first, \
            LocalExecutor(workers=1, preload=("graphlib",)) as second:
        assert first.sandbox.pid != second.sandbox.pid
        seen = [executor.submit(job).result(timeout=60) for executor in (first, second, first)]
    assert [result.value for result in seen] == [{"colorsys": True, "graphlib": False},
                                                {"colorsys": False, "graphlib": True},
                                                {"colorsys": True, "graphlib": False}]
    assert [result.isolation["preload"] for result in seen] == [["colorsys"], ["graphlib"], ["colorsys"]]


def test_shutdown_leaves_no_fork_server_behind():
    executor = LocalExecutor(workers=1)
    pid = executor.sandbox.pid
    assert executor.submit(Job(TARGETS + "echo", {}, Limits(wall_s=10))).result(timeout=30).outcome == "returned"
    executor.shutdown()
    assert gone(pid) and executor.sandbox.pid is None
    with pytest.raises(RuntimeError):
        executor.submit(Job(TARGETS + "echo", {}, Limits(wall_s=10)))


def test_a_one_off_run_stops_its_fork_server():
    before = set(children(os.getpid()))
    assert sandbox.run(Job(TARGETS + "echo", {}, Limits(wall_s=10)), preload=("colorsys",)).outcome == "returned"
    assert set(children(os.getpid())) <= before


@pytest.mark.slow  # the replacement imports torch again
def test_a_dead_fork_server_is_replaced(box, run):
    dead = box.pid
    os.kill(dead, 9)
    assert run("echo").outcome == "returned"
    assert box.pid != dead and gone(dead)
