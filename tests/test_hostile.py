"""Hostile designs: each attack is blocked or detected with a named status, and the caller goes on.

Most of these get past the static scan on purpose (names built at run time, modules reached
through attributes of torch), so what is tested is the sandbox behind it: namespaces, the
confined file system, the job's own user id, rlimits, output caps, the tamper guard and the
causality check. Every case runs at the check tier in a real sandboxed child.
"""

from __future__ import annotations

import ast
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from evaluator import evaluate
from evaluator.safety import scan
from tests.test_bad_designs import design as broken_design

HEADER = '"""Hostile design\n\nWritten to attack the evaluator.\n"""\n\nimport torch\nimport torch.nn as nn\n\n\n'
# torch's own reference to the os module, reached through a list so that no name-based scan can follow it
OS = 'getattr([torch][0], "os")'

SECRET = "hostile-test-secret-5b1e9c"


def design(init: str = "", forward: str = "        return self.proj(x)", prelude: str = "") -> str:
    return broken_design(forward, init, header=HEADER + prelude)


def leaked(result, secret: str = SECRET) -> bool:
    return secret in json.dumps(result.to_dict())


def test_the_attacks_pass_the_static_scan():
    """So the runtime defences below are what stops them, not the scan."""
    assert scan(ast.parse(design(init=f"        {OS}.listdir('/')\n"))) == []
    assert scan(ast.parse(design(init="        torch.os.listdir('/')\n")))  # the direct form is caught


def test_collections_gives_its_abstract_classes_and_not_its_private_sys():
    # collections.abc is allowed for annotations (the reference blocks use Callable); the collections
    # package itself keeps `sys` under a private name, so importing it is refused.
    attack = design(prelude="import collections\n\n\n",
                    init="        collections._sys.modules['os'].listdir('/')\n")
    result = evaluate(attack, "check", 0)
    assert result.status == "unsafe" and "import of 'collections'" in result.reason
    assert scan(ast.parse(design(prelude="from collections import abc\n\n\n"))) != []
    assert scan(ast.parse(design(prelude="import collections.abc\n\n\n"))) != []
    assert scan(ast.parse(design(prelude="from collections.abc import Callable\n\n\n"))) == []


class _Counter(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 (the http.server protocol)
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(SECRET.encode())

    def log_message(self, *args):
        pass


def test_network_connection_is_blocked():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        code = design(init=f'        raise ValueError(getattr([torch][0], "hub").urlopen("{url}").read())\n')
        result = evaluate(code, tier="check", wall_s=60)
    finally:
        server.shutdown()
    assert result.status != "ok"
    assert _Counter.hits == 0 and not leaked(result)
    assert "network" in result.log.lower() or "unreachable" in result.reason.lower() or result.status == "build"


@pytest.fixture
def home_secret():
    """A secret file in the home directory of the user running the tests, removed afterwards."""
    path = Path(os.path.expanduser("~")) / f".discover-hostile-test-{os.getpid()}"
    path.write_text(SECRET)
    yield path
    path.unlink()


def test_home_directory_and_ssh_keys_are_out_of_sight(home_secret):
    home = str(home_secret.parent)
    probe = f"        raise ValueError('listing=' + repr({OS}.listdir({home!r})) + read({str(home_secret)!r}))\n"
    code = design(init=probe,
                  prelude=f"def read(path):\n    try:\n        return {OS}.read({OS}.open(path, 0), 4096).decode()\n"
                          f"    except OSError as exc:\n        return type(exc).__name__\n\n\n")
    result = evaluate(code, tier="check", wall_s=60)
    assert result.status == "build", (result.status, result.reason)
    assert not leaked(result)
    # ~ holds only what the job needs to run (e.g. a Python installed there), and the file is not there
    assert home_secret.name not in result.reason
    assert result.reason.endswith(("FileNotFoundError", f"Permission denied: {home!r}")), result.reason


def test_environment_secrets_are_scrubbed_even_in_the_parents_proc_entry(monkeypatch):
    monkeypatch.setenv("DISCOVER_HOSTILE_API_KEY", SECRET)
    probe = (f"        env = dict({OS}.environ)\n"
             f"        try:\n"
             f"            env['parent'] = {OS}.read({OS}.open('/proc/{os.getpid()}/environ', 0), 1 << 16)\n"
             f"        except Exception as exc:\n"
             f"            env['parent'] = repr(exc)\n"
             f"        raise ValueError(repr(env))\n")
    result = evaluate(design(init=probe), tier="check", wall_s=60)
    assert result.status == "build"
    assert not leaked(result)
    assert "DISCOVER_HOSTILE_API_KEY" not in result.reason


def test_writing_outside_the_working_directory_is_refused(tmp_path):
    target = tmp_path / "planted.txt"
    tmp_path.chmod(0o777)  # only the sandbox, not the folder's permissions, may stop the write
    code = design(init=f"        {OS}.write({OS}.open({str(target)!r}, 0o101), b'planted')\n")  # O_WRONLY | O_CREAT
    result = evaluate(code, tier="check", wall_s=60)
    assert result.status == "build", (result.status, result.reason)
    assert "read-only" in result.reason.lower() or "permission" in result.reason.lower()
    assert not target.exists()


def test_fork_bomb_is_contained():
    bomb = (f"        fork = {OS}.fork\n"
            f"        while True:\n"
            f"            try:\n"
            f"                fork()\n"
            f"            except OSError:\n"
            f"                pass\n")
    result = evaluate(design(init=bomb), tier="check", wall_s=8)
    assert result.status == "timeout", (result.status, result.reason)
    assert evaluate(design(), tier="check", wall_s=60).status == "ok"  # the next job still gets processes


def test_memory_bomb_is_oom():
    code = design(init="        self.hoard = [torch.ones(2**27) for _ in range(1000)]\n")
    result = evaluate(code, tier="check", wall_s=60)
    assert result.status == "oom", (result.status, result.reason)


def test_cpu_spin_times_out():
    result = evaluate(design(forward="        while True:\n            pass"), tier="check", wall_s=8)
    assert result.status == "timeout"


def test_a_flood_of_output_is_capped():
    flood = f"        out = {OS}.write\n        for _ in range(256):\n            out(1, b'x' * (1 << 20))\n"
    result = evaluate(design(init=flood), tier="check", wall_s=120)
    assert result.status == "ok", (result.status, result.reason)
    assert len(result.log) < 2 << 20  # 256 MiB written by every layer built, a bounded head and tail kept


def test_patching_the_loss_to_fake_metrics_is_tamper():
    patch = ("        F = getattr([torch][0].nn, 'functional')\n"
             "        real = F.cross_entropy\n"
             "        F.cross_entropy = lambda *a, **k: real(*a, **k) * 0\n")
    result = evaluate(design(init=patch), tier="check", wall_s=60)
    assert result.status in ("tamper", "unsafe"), (result.status, result.reason)


def test_reaching_the_evaluator_through_sys_modules_is_tamper():
    patch = ("        modules = getattr([torch][0], 'sys').modules\n"
             "        modules['evaluator.train'].lr_at = lambda *a, **k: 0.0\n")
    result = evaluate(design(init=patch), tier="check", wall_s=60)
    assert result.status in ("tamper", "unsafe"), (result.status, result.reason)


def test_future_leak_through_a_sequence_norm_is_causality():
    leak = "        return self.proj(x) / x.norm(dim=1, keepdim=True)"
    result = evaluate(design(forward=leak), tier="check", wall_s=60)
    assert result.status == "causality", (result.status, result.reason)
