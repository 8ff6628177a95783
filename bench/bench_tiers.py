"""Wall time per baseline at each tier, optionally side by side with another commit, and the sandbox's start-up.

    python bench/bench_tiers.py [--tiers check smoke quick] [--only NAME ...] [--compare REV]

Each evaluation runs exactly as ``discover check`` runs one: ``evaluator.evaluate`` in a fresh
process, its design in sandboxed children with one compute thread, timed around the call (the
interpreter's start and imports excluded), with the CPU seconds of that process, its fork servers and
every sandboxed job (on a loaded machine the CPU time is the closer estimate of one thread's cost).
With ``--compare REV`` the same evaluation runs from a worktree of REV right after it, alternating,
so both see the same machine and load; the ratio new / REV is what to read on a shared machine.
Targets: smoke <= 45 s and quick <= 150 s per design; the measurement outside the design's process
within 10 % of REV's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sandbox  # noqa: E402
from evaluator.run import PRELOAD  # noqa: E402
from memory.baselines import BASELINES  # noqa: E402

_TIMED = """
import json, resource, sys, time
from evaluator.run import evaluate
code = open(sys.argv[1]).read()
def used():  # this process and the fork servers it waited for (their jobs are reaped by their supervisors)
    usage = map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(r.ru_utime + r.ru_stime for r in usage)
started, before = time.perf_counter(), used()
result = evaluate(code, sys.argv[2], int(sys.argv[3]))
cpu = result.environment.get("jobs_cpu_s", 0.0) + used() - before
print(json.dumps({"status": result.status, "reason": result.reason, "wall": time.perf_counter() - started,
                  "cpu": cpu, "metrics": result.metrics}))
"""


def startup(samples: int = 5) -> tuple[list[float], list[float]]:
    """Seconds from spawn to 'isolated' and to 'harness imported' for a trivial evaluation target."""
    ready, imported = [], []
    with sandbox.Sandbox(PRELOAD) as box:
        box.run(sandbox.Job("evaluator.harness:environment", {}, sandbox.Limits(wall_s=60)))  # a warm-up
        for _ in range(samples):
            process = box.run(sandbox.Job("evaluator.harness:environment", {}, sandbox.Limits(wall_s=60)))
            ready.append(process.ready_s)
            imported.append(process.imported_s)
    return ready, imported


def timed(root: Path, name: str, tier: str, seed: int) -> dict:
    """One evaluation of baseline ``name`` with the code at ``root``, in a fresh interpreter."""
    design = root / "memory" / "baselines" / f"{name}.py"
    # The revision's own folder first on the path, by its absolute name: its sandboxed jobs receive this
    # path, and neither '' (the working directory, which is not theirs) nor an installed checkout would do.
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", _TIMED, str(design), tier, str(seed)], cwd=root, env=env,
                         capture_output=True, text=True, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"status": "bench-error", "reason": (out.stderr.strip().splitlines() or ["?"])[-1], "wall": 0.0,
                "cpu": 0.0, "metrics": {}}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", nargs="+", default=["check", "smoke", "quick"])
    parser.add_argument("--only", nargs="+", default=list(BASELINES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", metavar="REV", help="a git revision to time side by side with this checkout")
    args = parser.parse_args()

    ready, imported = startup()
    print(f"sandbox start-up over {len(ready)} runs: spawn->isolated median {statistics.median(ready):.3f}s, "
          f"spawn->harness imported median {statistics.median(imported):.3f}s (max {max(imported):.3f}s)")
    if args.compare is None:
        measure_tiers(args, None)
        return
    with tempfile.TemporaryDirectory(prefix="bench-tiers-") as scratch:
        os.chmod(scratch, 0o755)  # the sandbox's unprivileged user reads the revision's code from here
        other = Path(scratch) / "rev"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), args.compare],
                       check=True, capture_output=True)
        try:
            measure_tiers(args, other)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)


def measure_tiers(args: argparse.Namespace, other: Path | None) -> None:
    for tier in args.tiers:
        print(f"\ntier {tier}")
        header = f"{'baseline':<20} {'status':<10} {'wall s':>8} {'cpu s':>8}"
        print(header + (f" {args.compare[:10]:>10} {'ratio':>6}" if other else "") + "  metrics")
        walls, cpus, ratios = [], [], []
        for name in args.only:
            new = timed(ROOT, name, tier, args.seed)
            walls.append(new["wall"])
            cpus.append(new.get("cpu", 0.0))
            shown = {k: new["metrics"][k] for k in ("mqar_acc", "parity_acc", "lm_bpb") if k in new["metrics"]}
            line = f"{name:<20} {new['status']:<10} {new['wall']:8.1f} {new.get('cpu', 0.0):8.1f}"
            if other is not None:
                old = timed(other, name, tier, args.seed)
                ratio = new["wall"] / old["wall"] if old["wall"] else float("nan")
                ratios.append(ratio)
                line += f" {old['wall']:10.1f} {ratio:6.3f}"
                if old["status"] != "ok":  # a failed run is no timing: say so rather than print its ratio
                    line += f" ({args.compare[:10]}: {old['status']}: {old.get('reason', '')[:120]})"
            print(f"{line}  {shown}" + (f"  ({new['reason']})" if new["status"] != "ok" else ""), flush=True)
        summary = (f"median wall time at {tier}: {statistics.median(walls):.1f}s (CPU {statistics.median(cpus):.1f}s, "
                   f"max {max(cpus):.1f}s) over {len(walls)} baselines")
        if ratios:
            summary += f"; median ratio to {args.compare}: {statistics.median(ratios):.3f} " \
                       f"(range {min(ratios):.3f}-{max(ratios):.3f})"
        print(summary)


if __name__ == "__main__":
    main()
