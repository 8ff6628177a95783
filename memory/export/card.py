"""The exported file's provenance: a header card with lineage, metrics, replay and verification.

``export_design`` writes a design as one standalone module (``memory.export.bundle``) whose docstring
carries this card, so the file says where it came from and what was checked. The card's first line
names the design and its full code hash, and ``export_source`` uses it to tell, when the file comes
back through ``discover import``, which recorded design it is an unchanged export of.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import evaluator
from memory.db import ExperienceDB
from memory.dedup import code_hash
from memory.export.bundle import Export, ExportError, standalone
from memory.protocols import Records
from memory.records import Design, interval, scores_per_seed

CARD_START = "Exported from Discover: design "
_SOURCE = re.compile(re.escape(CARD_START) + r"\d+ \([^)]*\), code hash ([0-9a-f]{64})")


def card(db: ExperienceDB, design_id: int) -> str:
    """The header card: where the design came from, what it measured, and whether that was checked."""
    design = db.records.design(design_id)
    lines = [f"{CARD_START}{design.id} ({design.origin}), code hash {design.code_hash}"
             + (f", archive commit {design.archive_commit[:12]}" if design.archive_commit else "") + "."]
    ancestors = db.records.lineage(design_id)
    lineage = " <- ".join([f"{design.name} (#{design.id})"] + [f"{a.name} (#{a.id})" for a in ancestors])
    lines.append(f"Lineage: {lineage}" if ancestors else "Lineage: a root design (no parents).")
    evaluations, best = db.records.evaluations(design_id), {}
    for e in evaluations:
        if e.status == "ok" and e.tier in evaluator.TIERS and e.purpose != "replay":
            if e.tier not in best or (e.score or 0) > (best[e.tier].score or 0):
                best[e.tier] = e
    if best:
        lines.append("Metrics (per tier: the score over seeds, then the evaluation of the best seed):")
        for e in best.values():
            scores = scores_per_seed(evaluations, e.tier, e.tier_version)
            lines.append(f"  {e.tier} v{e.tier_version}: {_over_seeds(scores)}")
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
    triton = ("; the design's Triton kernels need triton, and without it the PyTorch code they were checked "
              "against stands in" if standalone(design.code).optional else "")
    lines.append(f"Needs only torch: reference blocks are inlined below{triton}. Use: Mixer(d_model, n_heads, "
                 "layer_idx, n_layers)(x) maps (B, T, d_model) to (B, T, d_model), causally.")
    return "\n".join(textwrap.fill(line, width=100, subsequent_indent=" " * (len(line) - len(line.lstrip()) + 4),
                                   break_on_hyphens=False) for line in lines)


_PHRASES = {"better": "better than", "worse": "worse than", "not-distinguishable": "not distinguishable from",
            "insufficient": "too few ok seeds to compare with"}


def _over_seeds(scores: dict[int, float]) -> str:
    """'score 0.98 ± 0.07 over 10 seeds (seed 0: 1.05, ...)': the figure a design stands on, not its luckiest
    seed (``scores_per_seed``)."""
    values = list(scores.values())
    if not values:
        return "no score"
    half = interval(values)
    each = ", ".join(f"seed {seed}: {_short(v)}" for seed, v in sorted(scores.items()))
    spread = "" if half is None else f" ± {half:.3g}"
    return f"score {sum(values) / len(values):.4g}{spread} over {len(values)} seed{'s' * (len(values) > 1)} ({each})"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def export_design(db: ExperienceDB, design_id: int, path: str | Path) -> Export:
    """Write design `design_id` as a standalone module with its header card to `path`."""
    design = db.records.design(design_id)
    exported = standalone(design.code, card(db, design_id))
    Path(path).write_text(exported.code, encoding="utf-8")
    return exported


def exported_card(code: str) -> tuple[str, str] | None:
    """(the card, the code hash of the design it names) when ``code`` carries an export's card at the
    end of its module docstring, else None."""
    try:
        docstring = ast.get_docstring(ast.parse(code), clean=False) or ""
    except (SyntaxError, ValueError):
        return None
    starts = [m.start() for m in re.finditer("^" + re.escape(CARD_START), docstring, flags=re.MULTILINE)]
    if not starts:
        return None
    text = docstring[starts[-1]:]  # the last: a design's own docstring may quote an earlier card
    named = _SOURCE.match(" ".join(text.split()))
    return (text, named.group(1)) if named else None


def export_source(records: Records, code: str) -> Design | None:
    """The recorded design of which ``code`` is an unchanged export, or None.

    The card only names a candidate; the claim holds when exporting that design again, with the same
    card, gives ``code`` (up to whitespace, as the exact dedup layer compares). Any change outside the
    card makes the file a design of its own, so a card cannot hide a changed line; a change inside it
    (the card is prose about the design) changes no code. An export made before the kernels package
    changed is not recognised either, and is evaluated as the new code it is.
    """
    found = exported_card(code)
    if found is None:
        return None
    text, named_hash = found
    design = records.find_by_code_hash(named_hash)
    if design is None:
        return None
    try:
        again = standalone(design.code, text).code
    except ExportError:  # a recorded design that no longer exports (the kernels package changed) is no source
        return None
    return design if code_hash(again) == code_hash(code) else None
