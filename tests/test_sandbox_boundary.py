"""The operating system is the sandbox's boundary: a job cannot run programs, open sockets, write outside
its working directory, read anything but the runtime, the libraries and the product's own code, nor reach
other processes or make namespaces. Each attack runs as a target in a real sandboxed child; where this
machine's kernel cannot give the protection that stops it, the test is skipped with the reason, never
passed."""

import ctypes
import errno
import json
import os
import pickle
import shutil
import sys
import tempfile
import types
from pathlib import Path

import pytest

import sandbox
from sandbox import Job, Limits, Sandbox, landlock, missing_protections
from tests.sandbox_targets import Gadget

ROOT = Path(__file__).resolve().parents[1]
TARGETS = "tests.sandbox_targets:"
SECRET = "boundary-test-secret-7c41d2"


@pytest.fixture(scope="module")
def box():
    with Sandbox(preload=("torch", "tests.sandbox_targets")) as started:
        yield started


@pytest.fixture
def run(box):
    def run(name, payload=None, **limits):
        result = box.run(Job(TARGETS + name, payload or {}, Limits(**{"wall_s": 60, **limits})))
        assert result.outcome == "returned", (result.outcome, result.error, result.stderr[-2000:])
        return result

    return run


def require(result, *protections: str) -> None:
    """Skip, naming the reason, unless each of ``protections`` (isolation keys) was in force for ``result``."""
    for key in protections:
        fact = result.isolation.get(key, "not in force: not recorded")
        if fact.startswith("not in force"):
            pytest.skip(f"{key} {fact}")


def in_force(result, key: str) -> bool:
    return not result.isolation.get(key, "not in force").startswith("not in force")


def leaked(result, secret: str = SECRET) -> bool:
    return secret in json.dumps(result.value) + result.stdout + result.stderr


@pytest.fixture
def open_folder():
    """A folder outside the job that the job's user could read (and write) but for the sandbox: pytest's
    tmp_path lies in a folder only root may enter, so the file permissions would answer first."""
    folder = Path(tempfile.mkdtemp(prefix="boundary-test-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def readable(path: Path, text: str) -> Path:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("how", ["subprocess", "os.system", "execv", "collect_env", "pickle"])
def test_no_program_runs(how, run):
    payload = {"how": how, "gadget": pickle.dumps(Gadget("echo pwned > marker"))}
    result = run("run_program", payload)
    if not in_force(result, "seccomp"):  # Landlock, which grants the right to execute nowhere, is the second wall
        require(result, "landlock")
    value = result.value
    assert value["marker"] is False, "the shell ran and wrote its marker"
    if how in ("os.system", "pickle"):  # system() reports the failed exec as the shell's exit status 127
        assert os.waitstatus_to_exitcode(value["value"]) == 127, value
    else:
        refused = errno.EPERM if in_force(result, "seccomp") else errno.EACCES
        assert value["raised"] == "PermissionError" and value["errno"] == refused, value


@pytest.mark.parametrize("family, pair", [("inet", False), ("inet6", False), ("unix", False), ("unix", True)])
def test_no_socket_opens(family, pair, run):
    result = run("open_socket", {"family": family, "pair": pair})
    require(result, "seccomp")
    assert result.value["raised"] == "PermissionError" and result.value["errno"] == errno.EPERM, result.value


def test_a_job_allowed_the_network_may_open_sockets(run):
    result = run("open_socket", {"family": "inet"}, network=True)
    assert result.value == {"value": "opened"}
    assert "socket" not in result.isolation["seccomp"]


def test_a_file_in_a_folder_outside_the_job_is_unreadable(open_folder, run):
    result = run("read_file", {"path": str(readable(open_folder / "secret.txt", SECRET))})
    require(result, "landlock")
    assert result.value["raised"] == "PermissionError" and result.value["errno"] == errno.EACCES, result.value
    assert not leaked(result)


@pytest.fixture
def workspace_in_checkout():
    """A folder in the checkout that is not a package (like a workspace or runs/), with a secret in it."""
    folder = ROOT / f".boundary-test-workspace-{os.getpid()}"
    readable(folder / "notes.txt", SECRET)
    yield folder
    shutil.rmtree(folder)


def test_the_checkout_is_unreadable_but_for_its_imported_packages(workspace_in_checkout, run):
    secret = run("read_file", {"path": str(workspace_in_checkout / "notes.txt")})
    require(secret, "landlock")
    assert secret.value["raised"] == "PermissionError" and secret.value["errno"] == errno.EACCES, secret.value
    assert not leaked(secret)
    listing = run("read_file", {"path": str(ROOT)})
    assert listing.value["raised"] == "PermissionError" and listing.value["errno"] == errno.EACCES, listing.value
    assert run("read_file", {"path": str(ROOT / "pyproject.toml")}).value["errno"] == errno.EACCES
    through_proc = run("read_file", {"path": f"/proc/self/root{workspace_in_checkout}/notes.txt"})
    assert through_proc.value["errno"] == errno.EACCES and not leaked(through_proc)
    own = run("read_file", {"path": str(ROOT / "sandbox" / "landlock.py")})
    assert "Landlock" in own.value["value"]


def test_another_checkout_on_sys_path_shows_only_what_was_imported_from_it(open_folder, monkeypatch):
    checkout = open_folder / "other"
    readable(checkout / "pyproject.toml", "[project]\nname = 'other'\n")
    readable(checkout / "boundary_pkg" / "__init__.py", "VALUE = 1\n")
    readable(checkout / "secret.txt", SECRET)
    monkeypatch.syspath_prepend(str(checkout))
    preload = ("boundary_pkg", "tests.sandbox_targets")
    secret = sandbox.run(Job(TARGETS + "read_file", {"path": str(checkout / "secret.txt")}, Limits(wall_s=60)),
                         preload=preload)
    package = sandbox.run(Job(TARGETS + "read_file", {"path": str(checkout / "boundary_pkg" / "__init__.py")},
                              Limits(wall_s=60)), preload=preload)
    assert secret.outcome == package.outcome == "returned", (secret.error, package.error)
    require(secret, "landlock")
    assert secret.value["raised"] == "PermissionError" and secret.value["errno"] == errno.EACCES, secret.value
    assert not leaked(secret)
    assert package.value == {"value": "VALUE = 1\n"}


def test_no_other_process_has_a_readable_proc_entry(run, monkeypatch):
    monkeypatch.setenv("BOUNDARY_TEST_VALUE", SECRET)  # in this process's environment, and not the job's
    parent = os.getpid()
    for entry in ("environ", "cmdline", "status"):
        result = run("read_file", {"path": f"/proc/{parent}/{entry}"})
        require(result, "landlock")
        assert result.value["raised"] == "PermissionError", (entry, result.value)
        assert result.value["errno"] == errno.EACCES, (entry, result.value)
        assert not leaked(result)
    own = run("read_file", {"path": "/proc/self/status"})
    assert own.value["value"].startswith("Name:")


def test_nothing_is_written_outside_the_working_directory(open_folder, run):
    target = open_folder / "planted.txt"
    result = run("write_file_at", {"path": str(target)})
    # The read-only mount answers first (EROFS); Landlock stands behind it (EACCES).
    assert result.value["raised"] in ("OSError", "PermissionError"), result.value
    assert result.value["errno"] in (errno.EROFS, errno.EACCES), result.value
    assert not target.exists()


def test_the_parent_cannot_be_traced_nor_its_memory_read(run):
    secret = ctypes.create_string_buffer(SECRET.encode())
    result = run("reach_process", {"pid": os.getpid(), "address": ctypes.addressof(secret)})
    require(result, "seccomp")
    assert result.value["ptrace"] == {"result": -1, "errno": errno.EPERM}, result.value
    assert result.value["process_vm_readv"] == {"result": -1, "errno": errno.EPERM}, result.value
    assert not leaked(result)


def test_no_namespace_can_be_made(run):
    result = run("new_namespace")
    require(result, "seccomp")
    assert result.value == {"unshare": {"result": -1, "errno": errno.EPERM},
                            "clone": {"result": -1, "errno": errno.EPERM},
                            "clone3": {"result": -1, "errno": errno.ENOSYS}}  # so glibc falls back to clone


def test_a_sys_path_entry_out_of_the_jobs_reach_is_left_out_not_fatal(monkeypatch):
    """``python -m`` started in a folder only root may enter (pytest's tmp_path) puts that folder on the
    jobs' sys.path; the job's own user cannot reach it, and the job must still run, without it."""
    closed = Path(tempfile.mkdtemp(prefix="boundary-closed-"))
    try:
        closed.chmod(0o700)
        inside = closed / "cwd"
        inside.mkdir()
        monkeypatch.syspath_prepend(str(inside))
        result = sandbox.run(Job(TARGETS + "echo", {"x": 1}, Limits(wall_s=60)), preload=("tests.sandbox_targets",))
    finally:
        shutil.rmtree(closed)
    assert result.outcome == "returned", (result.outcome, result.error, result.stderr[-2000:])
    dropped = "dropped from root" in result.isolation.get("capabilities", "")
    if dropped and in_force(result, "landlock"):
        record = result.isolation["landlock"]
        assert "out of this user's reach" in record and str(inside) in record


def test_real_work_runs_inside_the_boundary(run):
    result = run("real_work", threads=2, wall_s=300)
    assert result.value == {"triton": True, "flops": 256, "numpy": 2.0, "product": [256, 256], "thread": 1,
                            "fork": 7, "temp": True, "interpreted": os.environ.get("TRITON_INTERPRET"),
                            "torch_threads": 2}


def test_the_isolation_record_names_each_mechanism(run):
    isolation = run("echo").isolation
    for key in ("landlock", "seccomp"):
        assert isinstance(isolation[key], str) and isolation[key]
    if not isolation["landlock"].startswith("not in force"):
        assert isolation["landlock"].startswith("abi ") and "read-write beneath the working directory" in \
            isolation["landlock"]
    if not isolation["seccomp"].startswith("not in force"):
        assert "execve" in isolation["seccomp"] and "system calls denied" in isolation["seccomp"]


def test_missing_protections_names_each_one_not_in_force():
    isolation = {"network": "not in force: unshare(CLONE_NEWNET) failed (Operation not permitted)",
                 "filesystem": "homes hidden (/root); read-only except the working directory, but not: /x (EPERM)",
                 "landlock": "not in force: the kernel has no Landlock (Function not implemented)",
                 "seccomp": "42 system calls denied", "capabilities": "dropped (uid 100001)"}
    assert missing_protections(isolation) == [
        "network namespace: not in force: unshare(CLONE_NEWNET) failed (Operation not permitted)",
        "filesystem confinement: partly not in force: homes hidden (/root); read-only except the working "
        "directory, but not: /x (EPERM)",
        "landlock: not in force: the kernel has no Landlock (Function not implemented)",
    ]
    assert missing_protections({**isolation, "network": "allowed", "filesystem": "homes hidden",
                                "landlock": "abi 7"}) == []
    assert missing_protections({}) == [f"{name}: not recorded" for name in
                                       ("network namespace", "filesystem confinement", "landlock", "seccomp",
                                        "privilege drop")]


def _checkout(tmp_path: Path) -> tuple[Path, types.ModuleType]:
    checkout = tmp_path / "project"
    for folder in ("pkg", "workspace", "runs"):
        (checkout / folder).mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "pkg" / "__init__.py").write_text("")
    module = types.ModuleType("pkg")
    module.__path__ = [str(checkout / "pkg")]
    return checkout, module


def _beneath(path: Path, roots) -> bool:
    return any(path == Path(root) or Path(root) in path.parents for root in roots)


def test_the_allow_list_takes_the_imported_packages_of_a_checkout_and_nothing_else(tmp_path):
    checkout, pkg = _checkout(tmp_path)
    modules = {**sys.modules, "pkg": pkg, "pkg.sub": types.ModuleType("pkg.sub")}
    for sys_path in ([str(checkout)], [str(tmp_path)], ["/"]):  # the checkout, a folder holding one, the root
        allowed = landlock.allowed_paths(str(tmp_path / "work"), [*sys_path, *sys.path], modules=modules)
        assert _beneath(checkout / "pkg" / "__init__.py", allowed.read)
        for hidden in (checkout, checkout / "workspace", checkout / "runs", checkout / "pyproject.toml", tmp_path):
            assert not _beneath(hidden, allowed.read), (hidden, allowed.read)
    assert not _beneath(checkout / "pkg", landlock.allowed_paths("/tmp", [str(checkout)], modules={}).read)


def test_the_allow_list_of_this_checkout(workspace_in_checkout, tmp_path):
    import evaluator  # noqa: F401  (imported, as the fork server of an evaluation has)

    allowed = landlock.allowed_paths(str(tmp_path), sys.path, modules=sys.modules, target="tests.sandbox_targets:echo")
    for package in ("sandbox", "evaluator", "kernels", "tests"):
        assert str(ROOT / package) in allowed.read, package
    for hidden in (ROOT, workspace_in_checkout, ROOT / "pyproject.toml", ROOT / "runs", ROOT / "docs"):
        assert not _beneath(hidden, allowed.read), (hidden, allowed.read)
    assert _beneath(Path(sys.base_prefix) / "lib", allowed.read) and "/usr" in allowed.read
    assert f"/proc/{os.getpid()}" in allowed.read and "/proc" not in allowed.read
    assert allowed.write == (str(tmp_path.resolve()),) and "/dev/null" in allowed.devices


def test_a_job_given_programs_runs_those_and_no_other(run):
    """A GPU compiler's tool chain is the use: the job names the programs, Landlock allows only them."""
    true, shell = shutil.which("true"), shutil.which("sh")
    given = run("run_programs", {"programs": [true, shell]}, programs=(os.path.realpath(true),))
    if any(m.startswith(("landlock", "seccomp")) for m in missing_protections(given.isolation)):
        pytest.skip("Landlock or seccomp is not in force on this machine")
    assert given.value[true] == 0
    assert given.value[shell] == "PermissionError: Permission denied"
    assert "execve allowed" in given.isolation["seccomp"]
    none = run("run_programs", {"programs": [true]})
    assert none.value[true].startswith("PermissionError")
