"""Does a tier order the baselines as the literature does? Every baseline on several seeds, mean ± std.

    python bench/bench_orderings.py [--tier quick] [--seeds 21 22 23] [--jobs 2] [--only NAME ...]
                                    [--out results.json]

Each evaluation runs as ``discover check --json`` runs one, in its own process with one compute thread;
``--jobs`` of them at a time. Results are kept in ``--out`` (one entry per design and seed) and an entry
already there is not run again, so an interrupted table resumes. It prints the MQAR and parity accuracies,
the LM gate's bits per byte and the CPU seconds of one evaluation, with the tier version, then each ordering
claim of the fidelity target (Zoology's MQAR ordering and the parity result of the negative-eigenvalue delta
rule), held or not, on the seed means.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluator.tiers import get_tier  # noqa: E402
from memory.baselines import BASELINES  # noqa: E402

# The fidelity target, on seed means: (left, relation, right); "chance+" reads "well above chance".
CLAIMS = (
    ("softmax_attention", ">=", "gated_deltanet", "mqar_acc"),
    ("gated_deltanet", ">=", "deltanet", "mqar_acc"),
    ("deltanet", ">", "linear_attention", "mqar_acc"),
    ("based", ">", "linear_attention", "mqar_acc"),
    ("mamba2", "chance+", None, "mqar_acc"),
    ("gla", "chance+", None, "mqar_acc"),
    ("retnet", "chance+", None, "mqar_acc"),
)
PARITY_SOLVED = 0.95  # parity at the training lengths: solved on a seed at or above this accuracy
ABOVE_CHANCE = 5.0  # "well above chance": at least this many times the chance level


def evaluate(name: str, tier: str, seed: int) -> dict:
    """One evaluation in its own process; CPU seconds are that process's (with the fork servers it reaped)
    plus its sandboxed jobs' as their supervisors measured them, the figure a loaded machine still measures."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "discover.cli", "check", "--tier", tier, "--seed", str(seed),
                             "--json", str(BASELINES[name])], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with ThreadPoolExecutor(2) as pipes:
        stdout, stderr = pipes.submit(proc.stdout.read), pipes.submit(proc.stderr.read)
        _, status, usage = os.wait4(proc.pid, 0)
        stdout, stderr = stdout.result(), stderr.result()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    wall = time.perf_counter() - started
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        return {"status": "bench-error", "reason": (stderr or stdout)[-400:], "wall_s": wall}
    metrics = result.get("metrics") or {}
    cpu = usage.ru_utime + usage.ru_stime + (result.get("environment") or {}).get("jobs_cpu_s", 0.0)
    return {"status": result["status"], "reason": result.get("reason", ""), "tier_version": result["tier_version"],
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            **{k: metrics.get(k) for k in ("mqar_acc", "parity_acc", "parity_long_acc", "lm_bpb", "cost_class")}}


def measured(results, metric: str) -> list[float]:
    """The values of ``metric`` over results (dicts of one evaluation each) that have one."""
    return [r[metric] for r in results if r.get(metric) is not None]


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def claims(table: dict[str, dict[int, dict]], chance: float) -> list[tuple[str, bool | None]]:
    def mean(name: str, metric: str) -> float | None:
        values = measured(table.get(name, {}).values(), metric)
        return statistics.mean(values) if values else None

    out: list[tuple[str, bool | None]] = []
    for left, relation, right, metric in CLAIMS:
        a = mean(left, metric)
        if relation == "chance+":
            out.append((f"{left} {metric} ≥ {ABOVE_CHANCE:g}× chance ({a if a is None else round(a, 3)} vs "
                        f"{ABOVE_CHANCE * chance:.3f})", None if a is None else a >= ABOVE_CHANCE * chance))
            continue
        b = mean(right, metric)
        held = None if a is None or b is None else (a >= b if relation == ">=" else a > b)
        shown = "—" if held is None else f"{a:.3f} {relation} {b:.3f}"
        out.append((f"{left} {relation} {right} on {metric} ({shown})", held))
    for name, solves in (("deltanet_negeig", True), ("linear_attention", False), ("retnet", False), ("gla", False)):
        values = measured(table.get(name, {}).values(), "parity_acc")
        if values:
            solved = [v >= PARITY_SOLVED for v in values]
            held = all(solved) if solves else not any(solved)
            out.append((f"{name} {'solves' if solves else 'does not solve'} parity at the training lengths on every "
                        f"seed ({', '.join(f'{v:.3f}' for v in values)})", held))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 22, 23])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="+", default=sorted(BASELINES))
    parser.add_argument("--out", type=Path, default=Path("orderings.json"))
    args = parser.parse_args()
    tier = get_tier(args.tier)
    done: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    key = tier.key
    table: dict[str, dict[int, dict]] = {
        name: {int(s): r for s, r in done.get(key, {}).get(name, {}).items()} for name in args.only}
    todo = [(n, s) for n in args.only for s in args.seeds if s not in table[n]]
    print(f"{tier.key}: {len(todo)} evaluations to run, {args.jobs} at a time", flush=True)

    def one(item: tuple[str, int]) -> None:
        name, seed = item
        table[name][seed] = result = evaluate(name, args.tier, seed)
        done.setdefault(key, {})[name] = {str(s): r for s, r in table[name].items()}
        args.out.write_text(json.dumps(done, indent=1))
        print(f"  {name} seed {seed}: {result['status']} mqar {result.get('mqar_acc')} parity "
              f"{result.get('parity_acc')} in {result['wall_s']} s ({result.get('cpu_s')} s CPU)", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))
    print(f"\n{tier.key}, seeds {' '.join(map(str, args.seeds))} (mean ± std over seeds)")
    print(f"{'design':20s} {'mqar_acc':>15s} {'parity_acc':>15s} {'lm_bpb':>15s} {'cost':>9s} {'wall s':>7s} "
          f"{'cpu s':>6s}")
    rows = sorted(table.items(), key=lambda kv: -statistics.mean(
        [r.get("mqar_acc") or 0.0 for s, r in kv[1].items() if s in args.seeds] or [0.0]))
    for name, by_seed in rows:
        results = [r for s, r in by_seed.items() if s in args.seeds]
        failed = [f"seed {s}: {r['status']}" for s, r in by_seed.items() if s in args.seeds and r["status"] != "ok"]
        mqar, parity, bpb = (measured(results, m) for m in ("mqar_acc", "parity_acc", "lm_bpb"))
        classes = {r.get("cost_class") for r in results} - {None}
        wall = statistics.mean([r["wall_s"] for r in results]) if results else 0.0
        cpu = measured(results, "cpu_s")  # older entries have none
        print(f"{name:20s} {spread(mqar):>15s} {spread(parity):>15s} {spread(bpb):>15s} "
              f"{'/'.join(sorted(classes)) or '—':>9s} {wall:7.0f} {statistics.mean(cpu) if cpu else float('nan'):6.0f}"
              + (f"  ({'; '.join(failed)})" if failed else ""))
    chance = tier.chance.get("mqar_acc", 0.0)
    print()
    for text, held in claims({n: {s: r for s, r in t.items() if s in args.seeds} for n, t in table.items()}, chance):
        print(f"  [{'held' if held else 'not held' if held is False else 'no data'}] {text}")


if __name__ == "__main__":
    main()
