"""What racing did in a workspace's latest run: evaluations spent on extra seeds, the designs raced, and the
rank correlation between a raced design's first seed and its mean over three.

    discover run --budget 30 --tier smoke        # the figure in the notes: after the quick start, same workspace
    python bench/bench_racing.py [runs/experience.db]

A low or negative correlation says what racing is for: one seed does not order the designs.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluator.stats import ranks  # noqa: E402


def spearman(x: list[float], y: list[float]) -> float:
    a, b = ranks(x), ranks(y)
    ma, mb = mean(a), mean(b)
    cov = sum((u - ma) * (v - mb) for u, v in zip(a, b))
    spread = (sum((u - ma) ** 2 for u in a) * sum((v - mb) ** 2 for v in b)) ** 0.5
    return cov / spread if spread else float("nan")


def main(path: str) -> None:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    latest = "SELECT id, json_extract(config, '$.seed') FROM runs ORDER BY id DESC LIMIT 1"
    run_id, first_seed = db.execute(latest).fetchone()
    rows = db.execute("SELECT e.design_id, d.name, e.seed, e.status, e.score FROM evaluations e"
                      " JOIN designs d ON d.id = e.design_id WHERE e.run_id = ? AND e.purpose = 'search'"
                      " AND e.status NOT IN ('running', 'interrupted') ORDER BY e.id", [run_id]).fetchall()
    extra = sum(1 for r in rows if r[2] != (first_seed or 0))
    print(f"run {run_id}: {len(rows)} search evaluations, {extra} on extra seeds, {len({r[0] for r in rows})} designs")
    by_design: dict[tuple[int, str], dict[int, float | None]] = {}
    for design_id, name, seed, _status, score in rows:
        by_design.setdefault((design_id, name), {})[seed] = score
    raced = {k: v for k, v in by_design.items() if len(v) >= 2}
    print(f"designs raced: {len(raced)}")
    for (design_id, name), seeds in raced.items():
        print(f"  #{design_id} {name}: " + ", ".join(f"seed {s}: {v}" for s, v in sorted(seeds.items())))
    full = [v for v in raced.values() if len(v) >= 3 and all(x is not None for x in v.values())]
    if len(full) < 3:
        print(f"{len(full)} designs with three scored seeds: too few for a rank correlation")
        return
    first = [v[min(v)] for v in full]
    means = [mean(v.values()) for v in full]
    print(f"Spearman rank correlation, first seed vs mean of three, over {len(full)} designs: "
          f"{spearman(first, means):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/experience.db")
