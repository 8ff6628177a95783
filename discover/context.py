"""What the agents see: a Context built from memory by the loop (agents never query the database)."""

from __future__ import annotations

from agents.base import Context, DesignSummary
from memory import Design, Evaluation, ExperienceDB


def summary(design: Design, evaluation: Evaluation | None, analysis: str | None = None) -> DesignSummary:
    return DesignSummary(
        id=design.id, name=design.name, origin=design.origin, spec=design.spec,
        score=evaluation.score if evaluation else None,
        metrics=(evaluation.metrics or {}) if evaluation else {},
        status=evaluation.status if evaluation else "unevaluated",
        parents=tuple(design.parents), code=design.code, analysis=analysis,
    )


def _latest_analysis(db: ExperienceDB, design_id: int) -> str | None:
    """The latest analyst's text; a judge's qualitative note sits beside it and is not an analysis."""
    analyses = [a for a in db.analyses(design_id) if not a["author"].endswith("-judge")]
    return analyses[-1]["text"] if analyses else None


def _best_evaluation(db: ExperienceDB, design_id: int, tier: str, version: int) -> Evaluation | None:
    finished = [e for e in db.evaluations(design_id) if e.tier == tier and e.tier_version == version
                and e.status not in ("running", "interrupted")]
    ok = [e for e in finished if e.status == "ok" and e.score is not None]
    if ok:
        return max(ok, key=lambda e: e.score)
    return finished[-1] if finished else None


def build_context(db: ExperienceDB, tier: str, version: int, iteration: int, seed: int,
                  top_k: int = 8, recent_k: int = 8) -> Context:
    top = tuple(summary(d, e, _latest_analysis(db, d.id)) for d, e in db.top(tier, top_k, version))
    baselines = tuple(summary(d, _best_evaluation(db, d.id, tier, version)) for d in db.designs("baseline"))
    searched = [d for d in db.designs() if d.origin != "baseline"][-recent_k:]
    recent = tuple(summary(d, _best_evaluation(db, d.id, tier, version), _latest_analysis(db, d.id))
                   for d in reversed(searched))
    stats: dict = {}
    for stat in db.choice_stats(tier, version):
        stats.setdefault(stat.choice, {})[str(stat.value)] = {
            "n": stat.n, "mean_score": stat.mean_score, "fails": stat.n - stat.n_ok}
    hashes = frozenset(d.code_hash for d in db.designs())
    return Context(tier=tier, iteration=iteration, seed=seed, top=top, baselines=baselines, recent=recent,
                   choice_stats=stats, known_hashes=hashes)
