"""Presenting results in the terminal (rich). The library returns values; this module prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from evaluator import STATUSES, EvalResult

_SHOWN = ("mqar_acc", "parity_acc", "parity_long_acc", "lm_bpb", "tokens_per_s", "state_size", "params",
          "flops_per_token", "time_exponent", "memory_exponent", "peak_rss_mb")


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def check_report(console: Console, path: str, result: EvalResult) -> None:
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
                     "tier": f"{tier}@v{version}", "seed": evaluation.seed})
    return rows


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
    for row in rows:
        table.add_row(str(row["rank"]), str(row["id"]), row["name"], row["origin"], fmt(row["score"]),
                      *(fmt(row[key]) if key != "tokens_per_s" else fmt(round(row[key] or 0)) for key, _ in metrics))
    if not rows:
        table.caption = "no scored evaluations yet"
    return table
