"""Presenting results in the terminal (rich). The library returns values; this module prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the evaluator loads torch; the UI and the inspection commands use this module without it
    from evaluator import EvalResult

_SHOWN = ("mqar_acc", "parity_acc", "parity_long_acc", "lm_bpb", "tokens_per_s", "state_size", "params",
          "flops_per_token", "time_exponent", "memory_exponent", "peak_rss_mb")


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def seed_table(rows: list[dict], tier: str) -> Table:
    """The references `discover seed` just evaluated, one row per baseline and seed."""
    table = Table("baseline", "seed", "status", "mqar", "parity", "bits/byte", "state", "seconds",
                  title=f"references — tier {tier}")
    for row in sorted(rows, key=lambda r: (r["name"], r["seed"])):
        metrics = row["metrics"]
        status = row["status"] if row["status"] == "ok" else f"[red]{row['status']}[/red]: {row['reason'][:60]}"
        table.add_row(row["name"], str(row["seed"]), status, fmt(metrics.get("mqar_acc")),
                      fmt(metrics.get("parity_acc")), fmt(metrics.get("lm_bpb")), fmt(metrics.get("state_size")),
                      fmt(row["duration_s"]))
    return table


def check_report(console: Console, path: str, result: EvalResult) -> None:
    from evaluator import STATUSES

    colour = "green" if result.ok else "red"
    console.print(f"[bold]{result.name or path}[/bold]  tier {result.tier} v{result.tier_version}  seed {result.seed}")
    console.print(f"status: [{colour}]{result.status}[/{colour}]  ({STATUSES.get(result.status, '')})")
    if result.reason:
        console.print(f"reason: {result.reason}")
    if result.metrics:
        table = Table("metric", "value", box=None)
        for key in sorted(result.metrics, key=lambda k: (k not in _SHOWN, _SHOWN.index(k) if k in _SHOWN else 0, k)):
            table.add_row(key, fmt(result.metrics[key]))
        console.print(table)
    network = result.environment.get("isolation", {}).get("network")
    console.print(f"took {result.duration_s:.1f}s" + (f"; network isolation: {network}" if network else ""))


def leaderboard(db, tier: str, k: int = 20) -> list[dict]:
    """Rows for the best designs at the tier's current version (library function behind ``top``)."""
    from evaluator import get_tier

    version = get_tier(tier).version
    rows = []
    for rank, (design, evaluation) in enumerate(db.top(tier, k, version), start=1):
        metrics = evaluation.metrics or {}
        rows.append({"rank": rank, "id": design.id, "name": design.name, "origin": design.origin,
                     "score": evaluation.score, "mqar_acc": metrics.get("mqar_acc"),
                     "parity_acc": metrics.get("parity_acc"), "lm_bpb": metrics.get("lm_bpb"),
                     "state_size": metrics.get("state_size"), "tokens_per_s": metrics.get("tokens_per_s"),
                     "tier": f"{tier}@v{version}", "seed": evaluation.seed,
                     "verified": verification(db.latest_verdict(design.id, tier), version)})
    return rows


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


def leaderboard_table(rows: list[dict], tier: str) -> Table:
    """Only the metric columns some row has, so the table stays readable in 80 columns."""
    metrics = [(key, header) for key, header in (("mqar_acc", "mqar"), ("parity_acc", "parity"), ("lm_bpb", "bits/B"),
                                                 ("state_size", "state"), ("tokens_per_s", "tok/s"))
               if any(row.get(key) is not None for row in rows)]
    table = Table(title=f"leaderboard — tier {tier}")
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("design", min_width=18, overflow="fold")
    table.add_column("origin")
    table.add_column("score", justify="right")
    for _, header in metrics:
        table.add_column(header, justify="right")
    verified = any(row.get("verified") for row in rows)
    if verified:
        table.add_column("verified", overflow="fold")
    for row in rows:
        table.add_row(str(row["rank"]), str(row["id"]), row["name"], row["origin"], fmt(row["score"]),
                      *(fmt(row[key]) if key != "tokens_per_s" else fmt(round(row[key] or 0)) for key, _ in metrics),
                      *([verdict_label(row.get("verified"))] if verified else []))
    if verified:
        table.caption = "verified (discover verify): score over seeds vs the strongest reference compared; " \
                        "> better, ≈ not distinguishable, < worse"
    if not rows:
        table.caption = "no scored evaluations yet"
    return table
