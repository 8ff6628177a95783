"""The Ray executor against a real local Ray cluster: the discovery loop spends its budget exactly with every
evaluation run as a Ray task in the same sandbox, cancelled tasks end their jobs, and a missing ray package or a
misplaced option is a clear error."""

import socket
import sys
import time
from concurrent.futures import Future

import pytest

from discover.config import ConfigError, RunConfig
from sandbox import Job, Limits
from sandbox.ray_executor import RayExecutor, RayUnavailable, _as_result

TIER = "full-tiny"
REFS = ("softmax_attention", "linear_attention")


def needs_ray():
    return pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'discover-arch[ray]'")


def test_the_loop_spends_its_budget_exactly_on_ray_tasks_in_the_sandbox(tmp_path):
    ray = needs_ray()
    from discover.loop import run
    from memory import ExperienceDB

    config = RunConfig(workspace=str(tmp_path / "ws"), tier=TIER, budget=3, workers=2, references=REFS,
                       executor="ray")
    summary = run(config)
    assert not ray.is_initialized(), "the executor stops the local cluster it started"
    assert summary.status == "finished" and summary.spent == 3 and summary.budget == 3
    db = ExperienceDB(tmp_path / "ws" / "experience.db")
    searched = [e for d in db.records.designs() if d.origin == "offline" for e in db.records.evaluations(d.id)]
    references = [e for d in db.records.designs() if d.origin == "baseline" for e in db.records.evaluations(d.id)]
    assert len(searched) == 3 and all(e.status not in ("running", "interrupted") for e in searched)
    assert sorted(d.name for d in db.records.designs() if d.origin == "baseline") == sorted(REFS)
    assert [e.status for e in references] == ["ok", "ok"]
    for evaluation in searched + references:
        isolation = evaluation.environment["isolation"]
        assert isolation["ray"]["node_ip"] and isolation["ray"]["worker_pid"] > 0, "ran as a Ray task"
        assert isolation["network"] == "namespace" and isolation["session"], "in the same sandbox as locally"


@pytest.fixture(scope="module")
def cluster():
    ray = needs_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_cancel_all_ends_running_and_queued_tasks_and_the_workers_stay_usable(cluster):
    with RayExecutor(workers=2) as executor:
        assert not executor.started_cluster, "a cluster that was already up is used, not replaced"
        warm = executor.submit(Job("tests.sandbox_targets:echo", {"n": 1}, Limits(wall_s=60))).result(timeout=120)
        assert warm.outcome == "returned" and warm.value["payload"] == {"n": 1}
        assert warm.isolation["ray"]["worker_pid"] > 0
        hung = [executor.submit(Job("tests.sandbox_targets:sleepers_then_hang", {}, Limits(wall_s=300)))
                for _ in range(3)]  # two run, the third waits for a CPU
        time.sleep(3)
        assert executor.cancel_all() == 3
        assert [f.result(timeout=30).outcome for f in hung] == ["cancelled"] * 3
        after = executor.submit(Job("tests.sandbox_targets:echo", {"n": 2}, Limits(wall_s=60))).result(timeout=120)
        assert after.outcome == "returned" and after.value["payload"] == {"n": 2}
    assert cluster.is_initialized(), "shutdown leaves a cluster it did not start running"


def test_a_gpu_tier_asks_for_a_gpu_only_where_the_cluster_has_one(cluster):
    assert RunConfig(executor="ray", tier=TIER).executor_options == {"address": None, "gpus": 1}
    assert RunConfig(executor="ray", tier="check", ray_address="auto").executor_options == {"address": "auto",
                                                                                            "gpus": 0}
    with RayExecutor(workers=1, gpus=1) as executor:
        assert cluster.cluster_resources().get("GPU", 0) > 0 or executor.gpus == 0, "a CPU cluster: no GPU asked"
        result = executor.submit(Job("tests.sandbox_targets:echo", {}, Limits(wall_s=60))).result(timeout=120)
    assert result.outcome == "returned"


def test_a_target_that_cannot_be_imported_ends_as_it_does_locally(cluster):
    with RayExecutor(workers=2) as executor:
        result = executor.submit(Job("tests.no_such_module:f", {}, Limits(wall_s=30))).result(timeout=120)
    assert result.outcome == "raised" and result.error.startswith("ModuleNotFoundError")


def test_a_dead_worker_is_a_named_sandbox_error_and_a_cancelled_task_reads_cancelled():
    ray = needs_ray()
    crashed, cancelled = Future(), Future()
    crashed.set_exception(ray.exceptions.WorkerCrashedError())
    cancelled.set_exception(ray.exceptions.TaskCancelledError())
    result = _as_result(crashed, cancelled=False)
    assert result.outcome == "sandbox-error" and result.error.startswith("Ray: WorkerCrashedError")
    assert _as_result(crashed, cancelled=True).outcome == "cancelled", "a worker killed by a forced cancel"
    assert _as_result(cancelled, cancelled=False).outcome == "cancelled"


def test_a_missing_ray_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were not installed
    with pytest.raises(RayUnavailable, match=r"pip install 'discover-arch\[ray\]'"):
        RayExecutor(workers=1)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "ray" else object())
    with pytest.raises(ConfigError, match=r"executor 'ray' needs the ray package: pip install 'discover-arch\[ray\]'"):
        RunConfig(executor="ray")


def test_config_refuses_an_unknown_executor_and_an_address_without_ray():
    with pytest.raises(ConfigError, match="executor must be one of local, ray"):
        RunConfig(executor="slurm")
    with pytest.raises(ConfigError, match="ray_address is read only when executor = 'ray'"):
        RunConfig(ray_address="auto")
    assert RunConfig().executor_options == {}


def test_the_cli_names_an_unreachable_cluster_before_recording_a_run(tmp_path, capsys):
    needs_ray()
    from discover.cli import main
    from memory import ExperienceDB

    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    workspace = tmp_path / "ws"
    code = main(["run", "--executor", "ray", "--address", address, "--budget", "1", "--tier", TIER,
                 "--workspace", str(workspace)])
    assert code == 2 and f"no Ray cluster answers at {address}" in capsys.readouterr().err.replace("\n", " ")
    assert ExperienceDB(workspace / "experience.db").records.latest_run() is None
    assert main(["run", "--address", "auto", "--workspace", str(workspace)]) == 2
    assert "ray_address is read only when executor = 'ray'" in capsys.readouterr().err.replace("\n", " ")
