"""The exported file's provenance: a header card with lineage, metrics, replay and verification.

``export_design`` writes a design as one standalone module (``memory.export.bundle``) whose docstring
carries this card, so the file says where it came from and what was checked.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import evaluator
from memory.db import ExperienceDB
from memory.export.bundle import Export, standalone


def card(db: ExperienceDB, design_id: int) -> str:
    """The header card: where the design came from, what it measured, and whether that was checked."""
    design = db.records.design(design_id)
    lines = [f"Exported from Discover: design {design.id} ({design.origin}), code hash {design.code_hash[:16]}"
             + (f", archive commit {design.archive_commit[:12]}" if design.archive_commit else "") + "."]
    ancestors = db.records.lineage(design_id)
    lineage = " <- ".join([f"{design.name} (#{design.id})"] + [f"{a.name} (#{a.id})" for a in ancestors])
    lines.append(f"Lineage: {lineage}" if ancestors else "Lineage: a root design (no parents).")
    best = {}
    for e in db.records.evaluations(design_id):
        if e.status == "ok" and e.tier in evaluator.TIERS and (e.tier not in best or (e.score or 0) > (
                best[e.tier].score or 0)):
            best[e.tier] = e
    if best:
        lines.append("Metrics (best ok evaluation per tier):")
        for e in best.values():
            metrics = ", ".join(f"{k}={_short(v)}" for k, v in sorted((e.metrics or {}).items()))
            lines.append(f"  {e.tier} v{e.tier_version} seed {e.seed}: score={_short(e.score)}; {metrics}")
    else:
        lines.append("Metrics: no ok evaluation recorded.")
    replay = db.provenance.latest_replay(design_id)
    lines.append("Replay: never replayed." if replay is None else
                 f"Replay: {replay['verdict']}{' exactly' if replay['exact'] else ''} "
                 f"(evaluation {replay['evaluation_id']} re-run as {replay['replay_evaluation_id']}).")
    verdict = db.provenance.latest_verdict(design_id)
    if verdict is None or verdict["headline"] is None:
        lines.append("Verification: not verified over several seeds.")
    else:
        h = verdict["headline"]
        lines.append(f"Verification ({verdict['tier']} v{verdict['tier_version']}, seeds {verdict['seeds']}, "
                     f"{verdict['confidence']:.0%} {verdict['method']}): {_PHRASES[h['verdict']]} {h['reference']} on "
                     f"score, {_short(h['mean'])} vs {_short(h['reference_mean'])} "
                     f"(difference in [{_short(h['low'])}, {_short(h['high'])}]).")
    lines.append("Needs only torch: reference blocks are inlined below. Use: Mixer(d_model, n_heads, layer_idx, "
                 "n_layers)(x) maps (B, T, d_model) to (B, T, d_model), causally.")
    return "\n".join(textwrap.fill(line, width=100, subsequent_indent=" " * (len(line) - len(line.lstrip()) + 4),
                                   break_on_hyphens=False) for line in lines)


_PHRASES = {"better": "better than", "worse": "worse than", "not-distinguishable": "not distinguishable from",
            "insufficient": "too few ok seeds to compare with"}


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def export_design(db: ExperienceDB, design_id: int, path: str | Path) -> Export:
    """Write design `design_id` as a standalone module with its header card to `path`."""
    design = db.records.design(design_id)
    exported = standalone(design.code, card(db, design_id))
    Path(path).write_text(exported.code, encoding="utf-8")
    return exported
