"""Guided offline search against random sampling from the same design space, at equal budget.

    python bench/bench_search.py [--tier smoke] [--budget 30] [--seeds 0 1 2 3 4] [--workers 2] [--out DIR]

References are seeded once into a base workspace and copied into every run, so each run spends its
whole budget on proposals (extra seeds of raced designs included: racing is part of the search).

What counts is a design's raced score: the mean over its seeds, from the evaluation at which its
seeds are settled, either three of them or the last it got where racing let it go (a design still
owed seeds when the run ends does not count: one lucky seed is not a finding). Prints, per cost
class and over all, the best raced score so far (median over seeds, every 5 evaluations), the
median final best of each strategy, their ratio, and the exact rank-sum test's two-sided p-value
between the final bests of the two strategies. A run with no settled design in a class has no best
there and ranks below every run that has one.

Resumable: finished runs are kept in DIR/results.json and skipped; an interrupted run resumes in its
workspace. Smoke, budget 30, five seeds per strategy: about two hours on two cores.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import make_roles  # noqa: E402
from discover.config import RunConfig  # noqa: E402
from discover.loop import run  # noqa: E402
from evaluator import cost, get_tier, make_executor  # noqa: E402
from evaluator.stats import rank_sum_p  # noqa: E402
from memory import DesignArchive, ExperienceDB, racing  # noqa: E402
from memory.protocols import Records  # noqa: E402
from memory.recorder import Recorder  # noqa: E402
from memory.references import ensure_references  # noqa: E402

ALL = "all"
STRATEGIES = (("guided", "search"), ("random", "random"))


def raced_curve(records: Records, run_id: int, tier: str, version: int, first_seed: int) -> list[dict[str, float]]:
    """For each finished search evaluation of the run, in order: the best raced score so far per cost class
    (and over all, ``ALL``)."""
    finished = [e for e in records.evaluations_at(tier, version) if e.run_id == run_id and e.purpose == "search"
                and e.status not in ("running", "interrupted")]
    position = {e.id: i for i, e in enumerate(finished)}
    table = records.seed_scores(tier, version)
    designs = racing.run_designs(table, run_id)
    owed = {design_id for design_id, _ in racing.wanted(table, designs, first_seed)}
    settled: dict[int, list[tuple[str, float]]] = {}  # evaluation index -> (class, raced score) settled there
    for design_id in designs:
        by_seed = sorted(table[design_id].values(), key=lambda e: e.id)[: racing.SEEDS]
        if design_id in owed and len(by_seed) < racing.SEEDS:
            continue
        if by_seed[-1].id not in position:  # its last seed came from another run
            continue
        klass = cost.of(by_seed[0].metrics or {})
        settled.setdefault(position[by_seed[-1].id], []).append((klass, statistics.mean(e.score for e in by_seed)))
    curve, best = [], {}
    for i in range(len(finished)):
        for klass, score in settled.get(i, ()):
            for key in (klass, ALL):
                best[key] = max(best.get(key, -math.inf), score)
        curve.append(dict(best))
    return curve


def seed_references(out: Path, tier, workers: int) -> Path:
    base = out / "references"
    if not (base / "seeded").exists():
        base.mkdir(parents=True, exist_ok=True)
        executor = make_executor("local", workers=workers)
        recorder = Recorder(ExperienceDB(base / "experience.db").records, DesignArchive(base / "archive"))
        ensure_references(recorder, executor, tier.name)
        executor.shutdown()
        (base / "seeded").touch()
    return base


def one_run(out: Path, base: Path, strategy: str, researcher: str, seed: int, tier, args) -> list[dict[str, float]]:
    workspace = out / f"{strategy}-{seed}"
    resume = workspace.exists()
    if not resume:
        shutil.copytree(base, workspace)
    config = RunConfig(workspace=str(workspace), tier=tier.name, budget=args.budget, seed=seed, workers=args.workers)
    summary = run(config, roles=make_roles("offline", seed=seed, researcher=researcher), resume=resume)
    records = ExperienceDB(workspace / "experience.db").records
    return raced_curve(records, summary.run_id, tier.name, tier.version, seed)


def final(curve: list[dict[str, float]], key: str) -> float:
    return curve[-1].get(key, -math.inf) if curve else -math.inf


def report(results: dict[str, dict[str, list]], best_baseline: dict[str, float]) -> None:
    keys = [k for k in (*cost.CLASSES, ALL) if any(k in c[-1] for runs in results.values() for c in runs.values() if c)]
    for key in keys:
        print(f"\n[{key}] best raced score so far (median over seeds; '-' where the median run has none yet)")
        finals = {}
        for strategy, runs in results.items():
            curves = list(runs.values())
            length = min(len(c) for c in curves)
            points = [statistics.median(c[i].get(key, -math.inf) for c in curves) for i in range(4, length, 5)]
            print(f"  {strategy:<7} " + " ".join("    -" if p == -math.inf else f"{p:5.3f}" for p in points))
            finals[strategy] = [final(c, key) for c in curves]
        medians = {s: statistics.median(v) for s, v in finals.items()}
        shown = {s: ("none" if m == -math.inf else f"{m:.4f}") for s, m in medians.items()}
        ratio = (f"{medians['guided'] / medians['random']:.3f}"
                 if medians["random"] > 0 and medians["guided"] > -math.inf else "n/a")
        p = rank_sum_p(finals["guided"], finals["random"])
        reference = best_baseline.get(key)
        print(f"  median final best: guided {shown['guided']}, random {shown['random']}, ratio {ratio}; "
              f"rank-sum p = {p:.3f} (n = {len(finals['guided'])} + {len(finals['random'])}); "
              f"best reference of the class {'none' if reference is None else f'{reference:.4f}'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="smoke")
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="keep the workspaces and results here (default: a temporary "
                                                     "folder); rerun with the same folder to resume")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="discover-bench-search-"))
    tier = get_tier(args.tier)

    base = seed_references(out, tier, args.workers)
    references = ExperienceDB(base / "experience.db").records
    best_baseline: dict[str, float] = {}
    for by_seed in references.seed_scores(tier.name, tier.version).values():
        first = min(by_seed.values(), key=lambda e: e.id)
        score = statistics.mean(e.score for e in by_seed.values())
        for key in (cost.of(first.metrics or {}), ALL):
            best_baseline[key] = max(best_baseline.get(key, -math.inf), score)
    print(f"references seeded in {base}; best reference per class "
          + ", ".join(f"{k} {v:.4f}" for k, v in best_baseline.items()), flush=True)

    store = out / "results.json"
    saved = json.loads(store.read_text()) if store.exists() else {}
    key_of = f"{tier.name}@{tier.version}/budget {args.budget}"
    saved = saved if saved.get("key") == key_of else {"key": key_of, "runs": {}}
    for strategy, researcher in STRATEGIES:
        for seed in args.seeds:
            name = f"{strategy}-{seed}"
            if name not in saved["runs"]:
                saved["runs"][name] = one_run(out, base, strategy, researcher, seed, tier, args)
                store.write_text(json.dumps(saved))
            curve = saved["runs"][name]
            best = final(curve, ALL)
            print(f"{strategy:<7} seed {seed}: best raced {'none' if best == -math.inf else f'{best:.4f}'} after "
                  f"{len(curve)} evaluations", flush=True)

    results = {strategy: {seed: saved["runs"][f"{strategy}-{seed}"] for seed in args.seeds}
               for strategy, _ in STRATEGIES}
    report(results, best_baseline)


if __name__ == "__main__":
    main()
