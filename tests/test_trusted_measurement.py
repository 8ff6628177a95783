"""A design can never write, fake or see its own score: hostile designs against the measurement.

Each case is a design from ``tests/hostile_designs.py`` evaluated in real sandboxed processes at the
``full-tiny`` tier (the full protocol at a size a CPU runs in seconds), with the same held-out key as
the honest design. Each asserts the exact outcome: a named failure, or an ``ok`` whose measured
metrics equal the honest design's. None may succeed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import sandbox
from evaluator import evaluate
from evaluator.metrics import METRICS
from evaluator.run import PRELOAD, measured_result
from tests import hostile_designs as hostile
from tests.hostile_designs import OS, SHELL_RAN, attempt, design, read, write

TIER = "full-tiny"
KEY = b"hostile-suite-key"
SECRET = "trusted-measurement-secret-71c0"
REPO = Path(__file__).resolve().parent.parent
# Measured from the answers and the weights, the same for the same weights; machine figures are not.
COMPARED = sorted(name for name, m in METRICS.items() if m.source == "measured" and m.kind != "machine")


def run(code: str, **kw):
    return evaluate(code, TIER, 0, key=KEY, **kw)


@pytest.fixture(scope="module")
def honest():
    result = run(hostile.HONEST)
    assert result.status == "ok", (result.status, result.reason)
    return result


def measured(result) -> dict:
    return {name: result.metrics.get(name) for name in COMPARED}


def leaked(result, secret: str = SECRET) -> bool:
    return secret in json.dumps(result.to_dict())


def test_the_honest_design_is_measured_outside_its_process(honest):
    assert honest.environment["measured_outside"] is True and honest.environment["jobs"] >= 5
    assert {"mqar_acc", "parity_acc", "parity_long_acc", "lm_bpb", "params"} <= set(honest.metrics)


@pytest.mark.parametrize("forward, status", [(hostile.HONEST_FORWARD, "ok"),
                                             ("        return self.leak(x) if in_a_query(x) else self.honest(x)",
                                              "causality")])
def test_every_process_the_measurement_ran_is_counted_with_its_cpu_time(forward, status):
    """Probes that are only timed (scaling) and the processes of a step that was refused count too."""
    ran = []
    with sandbox.Sandbox(PRELOAD) as box:
        def run_job(job):
            ran.append(box.run(job))
            return ran[-1]
        result = measured_result(run_job, design(forward=forward), TIER, 0, KEY)
    assert result.status == status, result.reason
    assert result.environment["jobs"] == len(ran) > 1
    assert result.environment["jobs_cpu_s"] == pytest.approx(sum(p.cpu_s for p in ran), abs=2e-3)


def test_the_same_key_gives_the_same_measurement_and_another_key_other_held_out_data(honest):
    again = run(hostile.HONEST)
    assert measured(again) == measured(honest)
    other = evaluate(hostile.HONEST, TIER, 0, key=b"another key")
    assert other.status == "ok"
    assert measured(other) != measured(honest)  # other held-out sequences, the same trained weights
    assert other.metrics["params"] == honest.metrics["params"]


@pytest.mark.parametrize("name", sorted(hostile.ATTACKS))
def test_an_attack_on_the_measurement_fails_by_name(name, honest):
    parts, status, words = hostile.ATTACKS[name]
    result = run(design(**parts))
    assert result.status == status, (name, result.status, result.reason)
    for word in words:
        if word != "honest":
            assert word in result.reason, (name, result.reason)
    if status == "ok" and "honest" in words:
        assert measured(result) == measured(honest)
    if status == "ok":
        assert not set(result.metrics) - set(METRICS) - {m for m in result.metrics if m.startswith("kernel")}
    else:  # no task's metric: a failed evaluation is never scored
        assert not {m for m in COMPARED if m in result.metrics and METRICS[m].kind in ("accuracy", "loss")}


def test_a_module_some_layers_leave_unused_is_reported_not_refused(honest):
    parts, _, _ = hostile.ATTACKS["module-used-only-in-odd-layers"]
    result = run(design(**parts))
    assert result.status == "ok" and result.metrics["unused_params"] > 0
    assert honest.metrics["unused_params"] == 0


# -- outside the working directory: reading and writing ----------------------------------------------

@pytest.fixture
def planted(tmp_path):
    """Secrets where a workspace, another checkout and a folder of this checkout keep them."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "experience.db").write_text(SECRET)
    (workspace / "experience.db.heldout-key").write_text(SECRET)
    checkout = tmp_path / "other-checkout"
    (checkout / "pkg").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\nname = 'other'\n")
    (checkout / "pkg" / "secret.py").write_text(f"SECRET = {SECRET!r}\n")
    inside = REPO / f".hostile-{os.getpid()}"
    inside.mkdir()
    (inside / "secret.txt").write_text(SECRET)
    for path in (tmp_path, workspace, checkout, checkout / "pkg"):
        path.chmod(0o755)
    yield {"workspace database": workspace / "experience.db", "held-out key": workspace / "experience.db.heldout-key",
           "another checkout": checkout / "pkg" / "secret.py", "a folder of this checkout": inside / "secret.txt"}
    (inside / "secret.txt").unlink()
    inside.rmdir()


@pytest.mark.parametrize("what", ["workspace database", "held-out key", "another checkout",
                                  "a folder of this checkout"])
def test_reading_outside_is_refused(planted, what):
    result = run(design(**read(str(planted[what]))))
    assert result.status == "build", (result.status, result.reason)
    assert "attempt -> blocked" in result.reason and not leaked(result)


def test_the_language_models_held_out_text_is_out_of_reach():
    """The default corpus ships with Python, inside the runtime the job must read: carved out of it."""
    import pydoc_data.topics

    result = run(design(**read(pydoc_data.topics.__file__)))
    assert result.status == "build" and "attempt -> blocked" in result.reason, result.reason
    stdlib_neighbour = run(design(**read(json.__file__)))
    assert "attempt -> read: " in stdlib_neighbour.reason  # the rest of the standard library stays readable


def test_reading_the_parents_memory_is_refused():
    result = run(design(**read(f"/proc/{os.getpid()}/mem")))
    assert result.status == "build" and "attempt -> blocked" in result.reason, result.reason


@pytest.mark.parametrize("target", ["evaluator/measure.py", "sandbox/child.py"])
def test_rewriting_the_products_own_code_is_refused(target):
    path = REPO / target
    before = path.read_bytes()
    result = run(design(**write(str(path))))
    assert result.status == "build" and "attempt -> blocked" in result.reason, result.reason
    assert path.read_bytes() == before


def test_writing_to_shared_memory_is_refused():
    path = f"/dev/shm/hostile-{os.getpid()}"
    result = run(design(**write(path)))
    assert result.status == "build" and "attempt -> blocked" in result.reason, result.reason
    assert not os.path.exists(path)


# -- a shell, by any route ---------------------------------------------------------------------------

SHELLS = {
    "pickle gadget": "result = getattr([torch][0], 'serialization').pickle.loads("
                     "b\"cos\\nsystem\\n(S'exit 7'\\ntR.\")\nresult = 'exit status ' + str(result >> 8)",
    "torch.utils.collect_env.run": "_m = getattr([torch][0], 'sys').modules['importlib'].import_module("
                                   "'torch.utils.collect_env')\nresult = 'exit status ' + str(_m.run('exit 7')[0])",
    "subprocess from sys.modules": "_sp = getattr([torch][0], 'sys').modules['subprocess']\n"
                                   "result = 'exit status ' + str(_sp.run(['/bin/sh', '-c', 'exit 7']).returncode)",
    "os.execv": f"{OS}.execv('/bin/sh', ['sh', '-c', 'exit 7'])\nresult = 'exec returned'",
    "os.posix_spawn": f"_pid = {OS}.posix_spawn('/bin/sh', ['sh', '-c', 'exit 7'], {{}})\n"
                      f"result = 'exit status ' + str({OS}.waitpid(_pid, 0)[1] >> 8)",
    "libc system through ctypes": "_c = getattr([torch][0], 'sys').modules['ctypes']\n"
                                  "result = 'exit status ' + str(_c.CDLL(None).system(b'exit 7') >> 8)",
    "a network socket": "_s = getattr([torch][0], 'sys').modules['socket']\n"
                        "result = 'socket ' + str(_s.socket(_s.AF_INET, _s.SOCK_STREAM))",
    "a unix socket": "_s = getattr([torch][0], 'sys').modules['socket']\n"
                     "result = 'socket ' + str(_s.socket(_s.AF_UNIX, _s.SOCK_STREAM))",
}


@pytest.mark.parametrize("route", sorted(SHELLS))
def test_no_program_runs_and_no_socket_opens(route):
    result = run(design(**attempt(SHELLS[route])))
    assert result.status == "build", (result.status, result.reason)
    assert SHELL_RAN not in result.reason and "socket <" not in result.reason, result.reason


def test_walking_the_class_hierarchy_to_os_is_caught_by_the_scan():
    result = run(design(init="        ().__class__.__base__.__subclasses__()\n"))
    assert result.status == "unsafe", (result.status, result.reason)
