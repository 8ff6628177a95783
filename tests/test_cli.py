"""The command line: exit codes, JSON output, and README/--help agreement."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from discover.cli import CommandError, build_parser, main, opened

ROOT = Path(__file__).resolve().parent.parent
GOOD = Path(__file__).parent / "designs" / "good_linear.py"


def test_check_json_reports_status_reason_and_metrics(capsys):
    assert main(["check", str(GOOD), "--tier", "check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and report["reason"] == ""
    assert report["metrics"]["state_size"] > 0


def test_check_exits_nonzero_on_a_broken_design(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text('"""Bad\n\nNo mixer here.\n"""\n\nimport torch\n')
    assert main(["check", str(bad), "--tier", "check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "contract"
    assert "Mixer" in report["reason"]


def test_check_missing_file_is_a_clear_error(capsys):
    assert main(["check", "no/such/file.py"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_request_that_cannot_be_met_is_one_error_line_and_exit_code_2(tmp_path, capsys):
    assert main(["top", "--workspace", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.replace("\n", " ").startswith("error: no experience database in ")


def test_a_failed_command_cancels_its_evaluations_before_waiting_for_them(monkeypatch):
    import evaluator

    class RecordingExecutor:
        def __init__(self, calls: list[str]):
            self.calls = calls

        def cancel_all(self) -> int:
            self.calls.append("cancel_all")
            return 0

        def shutdown(self) -> None:
            self.calls.append("shutdown")

    calls: list[str] = []
    monkeypatch.setattr(evaluator, "make_executor", lambda name, workers=None: RecordingExecutor(calls))
    with pytest.raises(CommandError, match="stop here"), opened(workers=1, errors=(ValueError,)) as session:
        assert session.executor is session.executor  # made once, on first use
        raise ValueError("stop here")
    assert calls == ["cancel_all", "shutdown"]


def test_every_command_in_the_readme_exists_with_its_flags():
    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for line in re.findall(r"`discover ([^`]+)`", readme):
        words = line.split()
        assert words[0] in commands, f"README mentions `discover {line}` but there is no such command"
        known = {opt for action in commands[words[0]]._actions for opt in action.option_strings}
        for flag in re.findall(r"--[a-z-]+", line):
            assert flag in known, f"README: `discover {line}` uses {flag}, which {words[0]} does not accept"


def test_readme_tier_table_gives_each_tiers_mqar_protocol():
    from evaluator.tiers import TIERS

    readme = (ROOT / "README.md").read_text()
    for name in ("smoke", "quick"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        mqar = next(task for task in TIERS[name].tasks if task.name == "mqar")
        spec = mqar.spec
        for fact in (f"V {spec.vocab}", f"T {spec.seq_len}", f"{spec.n_pairs} pairs", f"{mqar.optim.steps:,} steps"):
            assert fact in row, f"README's {name} row lacks {fact!r}: {row}"


def test_help_runs_for_every_command():
    for command in ["run", "seed", "check", "top"]:
        out = subprocess.run([sys.executable, "-m", "discover.cli", command, "--help"], capture_output=True,
                             text=True, cwd=ROOT)
        assert out.returncode == 0 and "usage: discover" in out.stdout


def test_the_command_line_and_read_only_commands_load_without_torch():
    """--help, show, log and the UI only read the database; importing torch would cost seconds."""
    code = ("import sys, discover.cli, discover.inspect, discover.ui.app, evaluator; "
            "from evaluator import DEFAULT_TIER, TIER_NAMES; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_evaluator_names_load_on_first_use():
    import evaluator

    assert callable(evaluator.evaluate) and evaluator.get_tier("smoke").name == "smoke"
    assert tuple(evaluator.TIERS) == evaluator.TIER_NAMES


def test_seed_records_references_and_skips_them_the_second_time(tmp_path, capsys):
    args = ["seed", "--tier", "full-tiny", "--only", "linear_attention", "--workspace", str(tmp_path), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"]) for r in rows] == [("linear_attention", "ok")]
    assert (tmp_path / "experience.db").exists()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == []  # already evaluated at this tier and version
    assert main(args[:-1]) == 0  # the text report, with nothing left to evaluate
    assert "already evaluated" in capsys.readouterr().out
    assert main(["top", "--tier", "full-tiny", "--workspace", str(tmp_path), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert top[0]["name"] == "linear_attention" and top[0]["score"] is not None


def test_seed_table_shows_each_reference_and_names_failures():
    from rich.console import Console

    from discover.report import seed_table

    rows = [{"name": "deltanet", "seed": 0, "status": "ok", "reason": "", "metrics": {"mqar_acc": 0.5},
             "duration_s": 3.0},
            {"name": "based", "seed": 0, "status": "timeout", "reason": "wall-clock limit", "metrics": {},
             "duration_s": 9.0}]
    console = Console(record=True, width=160)
    console.print(seed_table(rows, "smoke"))
    text = console.export_text()
    assert "deltanet" in text and "0.5" in text and "timeout: wall-clock limit" in text


def test_check_of_a_missing_file_exits_2_before_torch_loads():
    code = ("import sys; from discover.cli import main; rc = main(['check', 'missing.py']); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["2", "False"] and "no such file: missing.py" in out.stderr


LONG_NAME = "a gated delta rule with a short convolution and an output gate beyond eighty columns"
LONG_LINE = "        return self.out(self.norm(torch.cumsum(x, dim=1) * self.gate(x).sigmoid()))" + " + 0.0" * 20


@pytest.fixture
def wide(tmp_path):
    """A workspace whose names, code lines and diff lines are far wider than 80 columns: a baseline and a
    child of it, scored at smoke (the latest run's tier), and a newer evaluation at quick."""
    from evaluator import get_tier
    from memory import ExperienceDB

    def design(body: str) -> str:
        return f'"""{LONG_NAME}\n\nWide.\n"""\n\nimport torch\n\n\nclass Mixer(torch.nn.Module):\n' \
               f"    def forward(self, x):\n{body}\n"

    with ExperienceDB(tmp_path / "experience.db") as db:
        run = db.records.start_run(2, "smoke", {})
        base = db.records.add_design("linear_attention", "", design("        return x"), origin="baseline")
        child = db.records.add_design(LONG_NAME, "", design(LONG_LINE), origin="offline", parents=[base])
        for design_id, tier, score in ((base, "smoke", 1.0), (child, "smoke", 1.25), (child, "quick", 0.5)):
            eval_id = db.records.begin_evaluation(design_id, run, "search", tier, get_tier(tier).version, 0)
            db.records.finish_evaluation(eval_id, "ok", metrics={"mqar_acc": 0.5}, score=score)
    return tmp_path, base, child


def test_output_into_a_pipe_or_a_file_is_never_cut(wide, capsys):
    """stdout is captured here, so not a terminal: tables keep whole cells, code and diffs whole lines."""
    path, base, child = wide
    assert main(["top", "--workspace", str(path), "-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "tier smoke" in out and LONG_NAME in out and "…" not in out  # the latest run's tier by default
    assert main(["show", str(child), "--code", "--workspace", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert LONG_LINE in out and "smoke@v" in " ".join(out)
    assert main(["diff", str(base), str(child), "--workspace", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "+" + LONG_LINE in out and "-        return x" in out
    assert main(["top", "--workspace", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == LONG_NAME


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(wide):
    from memory import ExperienceDB

    path, *_ = wide
    with ExperienceDB(path / "experience.db") as db:
        for i in range(200):  # more than a pipe holds, so the writer meets the closed end
            db.records.log_event(1, "stage", {"stage": f"step {i} " + "x" * 1000})
    proc = subprocess.Popen([sys.executable, "-m", "discover.cli", "log", "--json", "--workspace", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout.readline().strip() == b"{"
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""


def test_resume_never_extends_a_run(wide, capsys):
    path, *_ = wide
    assert main(["run", "--resume", "--budget", "9", "--workspace", str(path)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "budget of 2" in err and "start a new run" in err


def test_verified_front_verifies_until_the_front_holds_no_unverified_design_and_tries_each_once(monkeypatch):
    """Each verification can move the front: here it brings the next design on, four times over (a fixed
    number of rounds would stop short), and the last design's evaluations fail, so it never gets a verdict
    and must not be tried again and again."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    import discover.cli as cli
    import discover.report as report
    import evaluator

    version = evaluator.get_tier("smoke").version
    verdicts: dict[int, dict] = {}
    calls: list[list[int]] = []

    def front(db, tier):  # the lowest unverified design (6 fails) and, once it is verified, the next one too
        on = [i for i in (3, 4, 5, 6) if i - 1 in verdicts or i == 3]
        return [{"id": 1, "origin": "baseline"}] + [{"id": i, "origin": "offline"} for i in on[-2:]]

    def verifying(session, tier, seeds, design_ids):
        assert len(calls) < 10, "the same designs are verified over and over"
        calls.append(list(design_ids))
        verdicts.update({i: {"tier_version": version, "seeds": list(range(seeds))} for i in design_ids if i != 6})
        return f"report {len(calls)}"

    @contextmanager
    def fake_opened(*args, **kwargs):
        provenance = SimpleNamespace(latest_verdict=lambda i, t: verdicts.get(i))
        yield SimpleNamespace(db=SimpleNamespace(provenance=provenance))

    monkeypatch.setattr(cli, "opened", fake_opened)
    monkeypatch.setattr(cli, "workspace_tier", lambda db, tier: "smoke")
    monkeypatch.setattr(cli, "_verifying", verifying)
    monkeypatch.setattr(report, "front_rows", front)
    assert cli.verified_front("ws", 1, 2) == ["report 1", "report 2", "report 3", "report 4"]
    assert calls == [[3], [4], [5], [6]]
    verdicts.clear()
    calls.clear()
    verdicts[3] = {"tier_version": version - 1, "seeds": [0, 1]}  # a verdict of an older tier version is due again
    cli.verified_front("ws", 1, 2)
    assert calls[0] == [3, 4]
