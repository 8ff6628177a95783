"""Presenting results in the terminal (rich). The library returns values; this module prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from evaluator import cost
from evaluator.metrics import LEADERBOARD, REFERENCES, display_order, format_value, metric

if TYPE_CHECKING:  # the evaluator loads torch; the UI and the inspection commands use this module without it
    from evaluator import EvalResult


FULL_WIDTH = 1_000_000  # the width of a console that writes into a file or a pipe: no line reaches it


def fit_to_output(*consoles: Console) -> None:
    """Into a file or a pipe nothing is cut or wrapped at 80 columns: each such console gets a width no line
    reaches, so a table takes the width its cells need and text is written as it is."""
    for console in consoles:
        if not console.is_terminal:
            console.width = FULL_WIDTH


def fmt(value) -> str:
    """A value as the tables show it (``evaluator.metrics.format_value``)."""
    return format_value(value)


def seed_table(rows: list[dict], tier: str) -> Table:
    """The references `discover seed` just evaluated, one row per baseline and seed."""
    # This table has room to spell out the unit the narrower tables abbreviate.
    headers = [{"lm_bpb": "bits/byte"}.get(name, metric(name).label) for name in REFERENCES]
    table = Table("baseline", "seed", "status", *headers, "seconds", title=f"references — tier {tier}")
    for row in sorted(rows, key=lambda r: (r["name"], r["seed"])):
        metrics = row["metrics"]
        status = row["status"] if row["status"] == "ok" else f"[red]{row['status']}[/red]: {row['reason']}"
        table.add_row(row["name"], str(row["seed"]), status, *(fmt(metrics.get(name)) for name in REFERENCES),
                      fmt(row["duration_s"]))
    return table


def check_report(path: str, result: EvalResult) -> Group:
    """What `discover check` prints: the verdict, the reason, every metric and the time it took."""
    from evaluator import STATUSES

    colour = "green" if result.ok else "red"
    parts: list = [f"[bold]{result.name or path}[/bold]  tier {result.tier} v{result.tier_version}  seed {result.seed}",
                   f"status: [{colour}]{result.status}[/{colour}]  ({STATUSES.get(result.status, '')})"]
    if result.reason:
        parts.append(f"reason: {result.reason}")
    if result.metrics:
        table = Table("metric", "value", box=None)
        for key in display_order(result.metrics):
            table.add_row(key, fmt(result.metrics[key]))
        parts.append(table)
    network = result.environment.get("isolation", {}).get("network")
    parts.append(f"took {result.duration_s:.1f}s" + (f"; network isolation: {network}" if network else ""))
    if missing := result.environment.get("missing_protections"):
        from discover.workspace import protection_warning

        parts.append(Text(protection_warning(missing), style="yellow"))
    return Group(*parts)


def leaderboard(db, tier: str, k: int = 20, version: int | None = None) -> list[dict]:
    """Rows for the best designs at the tier's current version (or ``version``; library function behind ``top``),
    ranked by
    the mean score over their seeds (``seeds``, with the half-width of its 95% ``interval``, None on one
    seed): each with its cost class, its quality on the absolute scale averaged over its seeds
    (``evaluator.score.quality``) and whether that is on the quality-cost Pareto front of every scored
    design there (cost: its state's memory at 16k tokens). Twins (``memory.twins``) have no row: each row
    lists those it stands for in ``twins``."""
    from evaluator import cost, get_tier

    spec = get_tier(tier)
    version = spec.version if version is None else version
    found = db.records.twins(tier, version)
    ranked = db.records.ranked(tier, 1 << 30, version, twins=found)
    twins: dict[int, list[dict]] = {}  # original -> the twins it stands for (memory.twins)
    for twin, original in sorted(found.items()):
        twins.setdefault(original, []).append({"id": twin, "name": db.records.design(twin).name})
    points = [(_mean_quality(r, spec), (r.evaluation.metrics or {}).get("state_mb_16k")) for r in ranked]
    on_front = cost.front(points)
    rows = []
    for rank, (row, (value, _), front) in enumerate(zip(ranked[:k], points, on_front), start=1):
        design, evaluation, metrics = row.design, row.evaluation, row.evaluation.metrics or {}
        interval = row.interval()
        rows.append({"rank": rank, "id": design.id, "name": design.name, "origin": design.origin,
                     "score": round(row.mean, 4), "seeds": len(row.scores),
                     "interval": round(interval, 4) if interval is not None else None,
                     **{name: metrics.get(name) for name in LEADERBOARD},
                     "cost_class": cost.of(metrics), "state_mb_16k": metrics.get("state_mb_16k"), "quality": value,
                     "front": front, "twins": twins.get(design.id, []),
                     "tier": f"{tier}@v{version}", "seed": evaluation.seed,
                     "verified": verification(db.provenance.latest_verdict(design.id, tier), version)})
    return rows


def _mean_quality(ranked, spec) -> float | None:
    """A design's quality (``evaluator.score.quality``) averaged over its seeds, as its score is ranked."""
    from evaluator.score import quality

    values = [quality(e.metrics or {}, spec) for e in ranked.seeds]
    return None if any(v is None for v in values) else round(sum(values) / len(values), 4)


def ceiling(rows: list[dict]) -> str:
    """The quality ceiling the leaderboard shows: the best reference ranked with quadratic attention."""
    quadratic = [r for r in rows if r["origin"] == "baseline" and cost.RANK[r["cost_class"]] == cost.RANK["quadratic"]
                 and r["quality"] is not None]
    if not quadratic:
        return ""
    best = max(quadratic, key=lambda r: r["quality"])
    return f"quality ceiling: {best['name']} {best['quality']:.3f}"


_VERDICT_MARKS = {"better": ">", "worse": "<", "not-distinguishable": "≈", "insufficient": "?"}


def verification(latest: dict | None, version: int) -> dict | None:
    """The headline of a design's latest verification at this tier version (``discover verify``): its verdict
    on the score against the strongest reference compared, or None when it was not verified."""
    if latest is None or latest["tier_version"] != version or latest["headline"] is None:
        return None
    h = latest["headline"]
    return {"verdict": h["verdict"], "reference": h["reference"], "seeds": len(latest["seeds"]),
            "confidence": latest["confidence"], "diff": h["diff"], "low": h["low"], "high": h["high"]}


def verdict_label(verified: dict | None) -> str:
    """'> gated_deltanet' (better), '≈ …' (not distinguishable), '< …' (worse), '—' (not verified)."""
    return "—" if verified is None else f"{_VERDICT_MARKS[verified['verdict']]} {verified['reference']}"


def twins_note(rows: list[dict]) -> str:
    """The line under a table whose rows stand for twins; empty when none does."""
    pairs = [f"{t['id']} {t['name']} = {r['id']} {r['name']}" for r in rows for t in r.get("twins", ())]
    if not pairs:
        return ""
    return "left out as twins, trained exactly as the design after = (memory.twins): " + ", ".join(pairs)


def seeds_cell(row: dict) -> str:
    """A row's seed count, starred when it rests on one seed."""
    seeds = row.get("seeds", 1)
    return f"{seeds}" + ("*" if seeds < 2 else "")


def front_rows(db, tier: str) -> list[dict]:
    """The leaderboard rows (of every scored design, not only the first k) on the quality-cost front,
    cheapest first: what a run found, one design per trade-off between quality and state."""
    rows = [r for r in leaderboard(db, tier, 1 << 30) if r["front"]]
    return sorted(rows, key=lambda r: (r["state_mb_16k"] is None, r["state_mb_16k"] or 0.0, -(r["quality"] or 0.0)))


def front_table(rows: list[dict], tier: str) -> Table:
    """The front with each design's verdict against the best reference of its cost class or a cheaper one
    (``discover verify``), or how to get one."""
    table = Table(title=f"quality-cost front — tier {tier}")
    for header, justify in (("id", "right"), ("design", "left"), ("origin", "left"), ("cost", "left"),
                            ("state MB@16k", "right"), ("quality", "right"), ("score", "right"), ("±", "right"),
                            ("seeds", "right"), ("verified", "left")):
        table.add_column(header, justify=justify, overflow="fold")
    unverified = []
    for row in rows:
        verified = row.get("verified")
        if verified is None and row["origin"] != "baseline":
            unverified.append(str(row["id"]))
        label = verdict_label(verified) if verified else ("reference" if row["origin"] == "baseline" else "—")
        table.add_row(str(row["id"]), row["name"], row["origin"], cost.SHORT.get(row["cost_class"], row["cost_class"]),
                      fmt(row["state_mb_16k"]), fmt(row["quality"]), fmt(row["score"]), fmt(row.get("interval")),
                      seeds_cell(row), label)
    notes = ["each design on the front is the best quality (0 at chance, 1 perfect; mean over seeds) at its "
             "state's memory at 16k tokens or less; score and verdict are against the best reference of its cost "
             "class or a cheaper one"]
    if unverified:
        notes.append(f"not verified yet: discover verify --designs {' '.join(unverified)}")
    if line := twins_note(rows):
        notes.append(line)
    table.caption = "\n".join(notes) if rows else "no design on the front yet"
    return table


def leaderboard_table(rows: list[dict], tier: str) -> Table:
    """Only the metric columns some row has, so the table stays readable in 80 columns."""
    metrics = [metric(name) for name in LEADERBOARD if any(row.get(name) is not None for row in rows)]
    table = Table(title=f"leaderboard — tier {tier}")
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("design", min_width=18, overflow="fold")
    table.add_column("origin")
    table.add_column("score", justify="right")
    table.add_column("±", justify="right")
    table.add_column("seeds", justify="right")
    table.add_column("front", justify="center")
    for m in metrics:
        table.add_column(m.label, justify="right")
    verified = any(row.get("verified") for row in rows)
    if verified:
        table.add_column("verified", overflow="fold")
    for row in rows:
        table.add_row(str(row["rank"]), str(row["id"]), row["name"], row["origin"], fmt(row["score"]),
                      fmt(row.get("interval")), seeds_cell(row),
                      "◆" if row.get("front") else "",
                      *(cost.SHORT.get(row[m.name], row[m.name]) if m.name == "cost_class" else m.display(row[m.name])
                        for m in metrics),
                      *([verdict_label(row.get("verified"))] if verified else []))
    notes = ["score: mean over seeds (± its 95% interval; * one seed, no interval) against the best reference of "
             "the same cost class or a cheaper one; ◆ on the quality-cost front (quality above chance vs the "
             "state's memory at 16k tokens)",
             cost.describe(row.get("cost_class") for row in rows)]
    if line := ceiling(rows):
        notes.append(line)
    if line := twins_note(rows):
        notes.append(line)
    if verified:
        notes.append("verified (discover verify): score over seeds vs the strongest reference compared; "
                     "> better, ≈ not distinguishable, < worse")
    table.caption = "\n".join(n for n in notes if n) if rows else "no scored evaluations yet"
    return table
