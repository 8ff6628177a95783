"""Presenting replays, verifications, exports and imports in the terminal (rich); the library returns values."""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from discover.report import fmt

_STATUS_STYLE = {"exact": "green", "within": "yellow", "differs": "bold red", "missing": "bold red",
                 "informational": "dim"}
_VERDICT_STYLE = {"better": "bold green", "worse": "red", "not-distinguishable": "yellow", "insufficient": "dim"}


def replay_report(outcome) -> Group:
    """The verdict line, the per-metric table, and what changed in the environment."""
    colour = "green" if outcome.reproduced else "red"
    how = " exactly (bit-identical metrics)" if outcome.exact else " within tolerance" if outcome.reproduced else ""
    head = Text.from_markup(
        f"[bold]{escape(outcome.name)}[/bold] (design {outcome.design_id}): evaluation {outcome.evaluation_id} "
        f"({outcome.tier} v{outcome.tier_version}, seed {outcome.seed}) replayed from {outcome.code_source} "
        f"as evaluation {outcome.replay_evaluation_id}\n"
        f"[{colour}]{outcome.verdict}{how}[/{colour}]; status recorded {outcome.recorded_status}, "
        f"replayed {outcome.replayed_status}")
    table = Table(box=None)
    for header in ("metric", "kind", "recorded", "replayed", "difference", "tolerance", ""):
        table.add_column(header, overflow="fold", justify="right" if header in ("recorded", "replayed") else "left")
    for d in outcome.diffs:
        delta = d.replayed - d.recorded if _numbers(d.recorded, d.replayed) else None
        tolerance = "—" if d.tolerance is None else "0" if d.tolerance == 0 else (
            f"±{d.tolerance:.4g}" if d.kind == "accuracy" else f"±{d.tolerance:.1%} rel.")
        difference = "—" if delta is None else f"{delta:+.6g}" if delta else "0"
        table.add_row(d.metric, d.kind, _full(d.recorded), _full(d.replayed), difference, tolerance,
                      Text(d.status, style=_STATUS_STYLE.get(d.status, "")))
    parts = [head, table]
    if outcome.environment:
        changes = ", ".join(f"{k}: {v[0]} -> {v[1]}" for k, v in outcome.environment.items())
        parts.append(Text(f"environment changed since the record: {changes}", style="yellow"))
    return Group(*parts)


def _full(value) -> str:
    """Enough digits to see that two values are the same, not just close."""
    return f"{value:.10g}" if isinstance(value, float) else fmt(value)


def _numbers(*values) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _mean_std(stats) -> str:
    if stats is None or stats.n == 0:
        return "—"
    return f"{stats.mean:.4f} ± {stats.std:.4f} (n={stats.n})" if stats.std is not None else f"{stats.mean:.4f} (n=1)"


def verify_report(report) -> Group:
    """One table of mean ± std per design and reference, then one of verdicts per design and reference."""
    title = (f"verification — tier {report.tier} v{report.tier_version}, seeds {', '.join(map(str, report.seeds))}; "
             f"{report.evaluated} evaluation(s) run, {report.reused} reused")
    stats = Table(title=title)
    stats.add_column("id", justify="right")
    stats.add_column("design", overflow="fold")
    stats.add_column("role")
    for metric in report.metrics:
        stats.add_column(f"{metric} mean ± std", justify="right")
    for e in report.entries:
        stats.add_row(str(e.design_id), e.name, "reference" if e.is_reference else e.origin,
                      *(_mean_std(e.stats.get(m)) for m in report.metrics))
    verdicts = Table(title=f"{report.confidence:.0%} confidence, {report.method} interval of design − reference")
    verdicts.add_column("design", overflow="fold")
    verdicts.add_column("reference")
    verdicts.add_column("metric")
    verdicts.add_column("difference", justify="right")
    verdicts.add_column("interval", justify="right")
    verdicts.add_column("verdict")
    for c in report.comparisons:
        interval = "—" if c.low is None else f"[{c.low:+.4f}, {c.high:+.4f}]"
        verdicts.add_row(f"#{c.design_id} {c.name}", c.reference, c.metric, "—" if c.diff is None else f"{c.diff:+.4f}",
                         interval, Text(c.verdict, style=_VERDICT_STYLE.get(c.verdict, "")))
    parts = [stats, verdicts]
    parts += [Text(note, style="yellow") for note in report.notes]
    parts.append(Text(f"recorded as verification {report.verification_id}", style="dim"))
    return Group(*parts)


def import_report(outcome, path: str, tier: str) -> Text:
    if outcome.status == "duplicate":
        return Text.from_markup(f"[yellow]{escape(path)}: not imported[/yellow]: {escape(outcome.reason)} "
                                "(recorded as a duplicate)")
    if outcome.design_id is None:
        return Text.from_markup(f"[red]{escape(path)}: {outcome.status}[/red]: {escape(outcome.reason)} "
                                "(nothing recorded)")
    colour = "green" if outcome.status == "ok" else "red"
    line = (f"imported [bold]{escape(outcome.name)}[/bold] as design {outcome.design_id}; evaluation "
            f"{outcome.evaluation_id} at tier {tier}: [{colour}]{outcome.status}[/{colour}]")
    if outcome.reason:
        line += f" ({escape(outcome.reason)})"
    if outcome.status == "ok":
        line += f"; score {fmt(outcome.score)}" if outcome.references else (
            f"; no score yet: no reference is evaluated at tier {tier} (run `discover seed --tier {tier}`)")
    return Text.from_markup(line)
