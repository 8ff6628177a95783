"""How designs from the context appear in prompts: the values that fill ``prompts/design_*.md``.

Only metrics that a seeded evaluation reproduces exactly are shown (accuracies, losses, sizes; no
timings or memory readings), so the same memory always renders the same prompt: that is what lets
the reply cache replay a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from statistics import stdev

from agents.base import Context, DesignSummary
from agents.llm.templates import render_text

# The scaling probe's exponents and its "superlinear" flag come from timings, so they are left out too
# (tests/test_metrics.py checks every name against the evaluator's metric registry).
# Cost as the evaluator measured it (its class, its state, its FLOPs at 16k tokens), not as the design reported it.
PROMPT_METRICS = ("mqar_acc", "parity_acc", "parity_long_acc", "lm_bpb", "init_loss", "params", "cost_class",
                  "state_kb", "flops_16k")


def number(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def metrics_text(metrics: dict) -> str:
    shown = []
    for key in PROMPT_METRICS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown.append(f"{key} {number(value)}")
        elif isinstance(value, str) and value:
            shown.append(f"{key} {value}")
    return ", ".join(shown) or "none"


def outcome_text(design: DesignSummary) -> str:
    """Its status and score: the mean over its seeds, with their spread when it has several."""
    if design.status == "ok":
        seeds = design.seed_scores
        if len(seeds) > 1:
            text = f"ok, score {number(design.score)} ± {number(stdev(seeds))} (mean ± std over {len(seeds)} seeds)"
        else:
            text = f"ok, score {number(design.score)} (one seed)"
        if design.twin_of is not None:
            text += f"; it trained exactly as design {design.twin_of} (the same function at this tier), so it does" \
                    " not rank as a design of its own"
        return text + ("; more seeds are being run before it ranks" if design.racing else "")
    return "not evaluated" if design.status == "unevaluated" else f"failed: {design.status}"


def _fields(design: DesignSummary) -> dict[str, object]:
    return {"id": design.id, "name": design.name, "origin": design.origin, "outcome": outcome_text(design),
            "metrics": metrics_text(design.metrics), "analysis": design.analysis or "none"}


def brief(design: DesignSummary) -> str:
    return render_text("design_brief", **_fields(design))


def full(design: DesignSummary) -> str:
    return render_text("design_full", **_fields(design), code=(design.code or "").strip())


def listing(designs: Iterable[DesignSummary], view: Callable[[DesignSummary], str] = brief) -> str:
    """Each design through ``view``, separated by blank lines; the ``none`` template when there are none."""
    texts = [view(d) for d in designs]
    return "\n\n".join(texts) if texts else render_text("none")


def ranked(context: Context) -> list[DesignSummary]:
    """Designs with code, best first: the leaderboard, then scored baselines not on it, by score."""
    seen = {d.id for d in context.top}
    rest = sorted((b for b in context.baselines if b.score is not None and b.id not in seen),
                  key=lambda b: (-b.score, b.id))
    return [d for d in (*context.top, *rest) if d.code]


def siblings(context: Context, parent_id: int, exclude: int | None = None, k: int = 5) -> list[DesignSummary]:
    """Up to k designs in the context that share the parent ``parent_id`` (most recent first)."""
    children = [d for d in context.designs() if parent_id in d.parents and d.id != exclude]
    return sorted(children, key=lambda d: -d.id)[:k]
