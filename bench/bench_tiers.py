"""Wall time per baseline at each tier, and the sandbox's start-up overhead.

    python bench/bench_tiers.py [--tiers check smoke quick] [--only NAME ...] [--workers 1]

Each evaluation runs exactly as in a search: a fresh sandboxed child, one compute thread. With
--workers 1 (the default) evaluations run one at a time, so times are not inflated by a
neighbour; targets are smoke <= 45 s and quick <= 150 s per design, start-up <= 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sandbox  # noqa: E402
from evaluator.run import (  # noqa: E402
    PRELOAD,  # noqa: E402
    job_for,
    result_from,
)
from memory.baselines import BASELINES  # noqa: E402


def startup(box: sandbox.Sandbox, samples: int = 5) -> tuple[list[float], list[float]]:
    """Seconds from spawn to 'isolated' and to 'harness imported' for a trivial evaluation target."""
    ready, imported = [], []
    box.run(sandbox.Job("evaluator.harness:environment", {}, sandbox.Limits(wall_s=60)))  # a warm-up
    for _ in range(samples):
        process = box.run(sandbox.Job("evaluator.harness:environment", {}, sandbox.Limits(wall_s=60)))
        ready.append(process.ready_s)
        imported.append(process.imported_s)
    return ready, imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", nargs="+", default=["check", "smoke", "quick"])
    parser.add_argument("--only", nargs="+", default=list(BASELINES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with sandbox.Sandbox(PRELOAD) as box:  # preloaded as an evaluation executor's is
        measure_tiers(box, args)


def measure_tiers(box: sandbox.Sandbox, args: argparse.Namespace) -> None:
    ready, imported = startup(box)
    print(f"sandbox start-up over {len(ready)} runs: spawn->isolated median {statistics.median(ready):.3f}s, "
          f"spawn->harness imported median {statistics.median(imported):.3f}s (max {max(imported):.3f}s)")
    for tier in args.tiers:
        print(f"\ntier {tier}")
        print(f"{'baseline':<20} {'status':<10} {'wall s':>8} {'train s':>8}  metrics")
        walls = []
        for name in args.only:
            code = BASELINES[name].read_text()
            started = time.perf_counter()
            result = result_from(box.run(job_for(code, tier, args.seed)), code, tier, args.seed)
            wall = time.perf_counter() - started
            walls.append(wall)
            m = result.metrics
            train = sum(v for k, v in m.items() if k.endswith("_train_s"))
            shown = {k: m[k] for k in ("mqar_acc", "parity_acc", "lm_bpb", "time_exponent") if k in m}
            print(f"{name:<20} {result.status:<10} {wall:8.1f} {train:8.1f}  {shown}", flush=True)
        print(f"median wall time at {tier}: {statistics.median(walls):.1f}s over {len(walls)} baselines")


if __name__ == "__main__":
    main()
