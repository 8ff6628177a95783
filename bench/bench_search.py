"""Guided offline search against random sampling from the same design space, at equal budget.

    python bench/bench_search.py [--tier smoke] [--budget 30] [--seeds 0 1 2] [--workers 2] [--out DIR]

References are seeded once into a base workspace and copied into every run, so each run spends its
whole budget on proposals. Prints, per strategy, the best-score-so-far curve (median over seeds),
the final best scores, the ratio guided / random at the median, and the best design found against
the best baseline. Runs at smoke tier with budget 30 and three seeds take about an hour on two cores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import make_roles  # noqa: E402
from discover.config import RunConfig  # noqa: E402
from discover.loop import run  # noqa: E402
from evaluator import get_tier, make_executor  # noqa: E402
from memory import DesignArchive, ExperienceDB  # noqa: E402
from memory.recorder import Recorder  # noqa: E402
from memory.references import ensure_references  # noqa: E402


def best_so_far(db: ExperienceDB, run_id: int, tier: str, version: int) -> list[float]:
    curve, best = [], float("-inf")
    evaluations = [e for e in db.records.evaluations_at(tier, version) if e.run_id == run_id and e.purpose == "search"
                   and e.status not in ("running", "interrupted")]
    for evaluation in evaluations:
        if evaluation.score is not None:
            best = max(best, evaluation.score)
        curve.append(best if best > float("-inf") else 0.0)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="smoke")
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="keep the workspaces here (default: a temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="discover-bench-search-"))
    tier = get_tier(args.tier)

    base = out / "references"
    base.mkdir(parents=True, exist_ok=True)
    executor = make_executor("local", workers=args.workers)
    recorder = Recorder(ExperienceDB(base / "experience.db").records, DesignArchive(base / "archive"))
    ensure_references(recorder, executor, tier.name)
    executor.shutdown()
    references = ExperienceDB(base / "experience.db").records
    best_baseline = max((e.score for e in references.evaluations_at(tier.name, tier.version, "ok")
                         if e.score is not None), default=None)
    print(f"references seeded in {base}; best baseline score {best_baseline}")

    curves: dict[str, list[list[float]]] = {"guided": [], "random": []}
    for strategy, researcher in (("guided", "search"), ("random", "random")):
        for seed in args.seeds:
            workspace = out / f"{strategy}-{seed}"
            shutil.rmtree(workspace, ignore_errors=True)
            shutil.copytree(base, workspace)
            config = RunConfig(workspace=str(workspace), tier=tier.name, budget=args.budget, seed=seed,
                               workers=args.workers)
            roles = make_roles("offline", seed=seed, researcher=researcher)
            summary = run(config, roles=roles)
            curve = best_so_far(ExperienceDB(workspace / "experience.db"), summary.run_id, tier.name, tier.version)
            curves[strategy].append(curve)
            print(f"{strategy:<7} seed {seed}: best {curve[-1] if curve else None:.4f} after {len(curve)} evaluations",
                  flush=True)

    print("\nbest score so far (median over seeds), every 5 evaluations")
    for strategy, runs in curves.items():
        length = min(len(c) for c in runs)
        points = [statistics.median(c[i] for c in runs) for i in range(4, length, 5)]
        print(f"{strategy:<7} " + " ".join(f"{p:.3f}" for p in points))
    finals = {s: statistics.median(c[-1] for c in runs) for s, runs in curves.items()}
    print(f"\nmedian final best: guided {finals['guided']:.4f}, random {finals['random']:.4f}, "
          f"ratio {finals['guided'] / max(finals['random'], 1e-9):.3f}")
    best_found = max(c[-1] for runs in curves.values() for c in runs)
    print(f"best design found {best_found:.4f} vs best baseline {best_baseline}")


if __name__ == "__main__":
    main()
