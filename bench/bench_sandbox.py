"""Sandbox start-up: seconds from spawn request to an isolated child, and the whole round trip.

    python bench/bench_sandbox.py [--runs 10]

For each fork-server preload (nothing; torch) and each target (a trivial one; one that imports
torch and multiplies two small matrices), one warm-up job and then ``--runs`` jobs, one at a
time. "ready" is spawn request -> child isolated, about to import the target (budget: 3 s);
"round trip" is ``Sandbox.run`` from call to return, result parsed and temp dir removed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sandbox  # noqa: E402

TARGETS = {"trivial": "builtins:dict", "torch matmul": "bench.bench_sandbox:torch_matmul"}


def torch_matmul(payload: dict) -> dict:
    import torch

    x = torch.ones(64, 64)
    return {"sum": float((x @ x).sum()), "threads": torch.get_num_threads()}


def measure(box: sandbox.Sandbox, target: str, runs: int) -> tuple[list[float], list[float]]:
    ready, total = [], []
    for i in range(runs + 1):
        started = time.perf_counter()
        result = box.run(sandbox.Job(target, {"i": i}, sandbox.Limits(wall_s=60)))
        elapsed = time.perf_counter() - started
        if result.outcome != "returned":
            raise RuntimeError(f"{target}: {result.outcome}: {result.error}\n{result.stderr}")
        if i:  # the first run is a warm-up
            ready.append(result.ready_s)
            total.append(elapsed)
    return ready, total


def spread(values: list[float], width: int) -> str:
    return f"{statistics.median(values):{width}.3f} {min(values):7.3f} {max(values):7.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    print(f"{'preload':<8} {'target':<13} | {'ready s median':>14} {'min':>7} {'max':>7} | "
          f"{'round trip s median':>19} {'min':>7} {'max':>7}")
    for preload in ((), ("torch",)):
        started = time.perf_counter()
        with sandbox.Sandbox(preload) as box:
            server_s = time.perf_counter() - started
            for name, target in TARGETS.items():
                ready, total = measure(box, target, args.runs)
                print(f"{'+'.join(preload) or 'none':<8} {name:<13} | {spread(ready, 14)} | {spread(total, 19)}",
                      flush=True)
        print(f"{'':<8} (fork server with preload {list(preload)} started in {server_s:.2f} s)")


if __name__ == "__main__":
    main()
