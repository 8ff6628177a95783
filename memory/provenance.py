"""Provenance: replays and verification verdicts.

A replay runs a recorded evaluation again and says whether it reproduced; a verification evaluates
designs and references over several seeds and records one verdict per (design, reference, metric).
`show`, `top` and the UI read them here.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from memory.store import Store, check_choice, now, to_json


class ProvenanceStore(Store):
    """Replays of evaluations and verifications of designs against references."""

    REPLAY_VERDICTS: ClassVar[tuple[str, ...]] = ("reproduced", "differs")
    VERDICTS: ClassVar[tuple[str, ...]] = ("better", "worse", "not-distinguishable", "insufficient")

    def add_replay(
        self, design_id: int, evaluation_id: int, replay_evaluation_id: int, verdict: str, exact: bool,
        diffs: Sequence[Mapping[str, Any]], environment: Mapping[str, Any] | None = None,
    ) -> int:
        """Record that `replay_evaluation_id` re-ran `evaluation_id`; `diffs` holds one entry per metric."""
        check_choice("replay verdict", verdict, self.REPLAY_VERDICTS)
        return self._insert("replays", {
            "design_id": design_id, "evaluation_id": evaluation_id, "replay_evaluation_id": replay_evaluation_id,
            "verdict": verdict, "exact": int(bool(exact)), "diffs": json.dumps(list(diffs)),
            "environment": to_json(environment), "created_at": now(),
        })

    def replays(self, design_id: int) -> list[dict[str, Any]]:
        """The design's replays, oldest first, with diffs and environment changes decoded."""
        rows = self._rows("SELECT * FROM replays WHERE design_id = ? ORDER BY id", [design_id])
        return [{**r, "exact": bool(r["exact"]), "diffs": json.loads(r["diffs"]),
                 "environment": json.loads(r["environment"]) if r["environment"] else None} for r in rows]

    def latest_replay(self, design_id: int) -> dict[str, Any] | None:
        replays = self.replays(design_id)
        return replays[-1] if replays else None

    def add_verification(
        self, tier: str, tier_version: int, seeds: Sequence[int], confidence: float, method: str,
        verdicts: Sequence[Mapping[str, Any]],
    ) -> int:
        """Record one verification and its verdict rows (keys: the `verdicts` table's columns) atomically."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
        for row in verdicts:
            check_choice("verdict", row["verdict"], self.VERDICTS)
        with self.transaction():
            verification_id = self.db["verifications"].insert({
                "tier": tier, "tier_version": tier_version, "seeds": json.dumps(list(seeds)),
                "confidence": confidence, "method": method, "created_at": now(),
            }).last_pk
            self.db["verdicts"].insert_all(
                [{**row, "verification_id": verification_id, "higher_is_better": int(row["higher_is_better"])}
                 for row in verdicts])
        return verification_id

    def verdicts(self, design_id: int, tier: str | None = None) -> list[dict[str, Any]]:
        """Every verdict on the design (optionally at one tier), oldest verification first, each row with its
        verification's tier, tier_version, seeds, confidence, method and created_at."""
        rows = self._rows(
            "SELECT v.*, f.tier, f.tier_version, f.seeds, f.confidence, f.method, f.created_at"
            " FROM verdicts v JOIN verifications f ON f.id = v.verification_id"
            " WHERE v.design_id = ? AND (? IS NULL OR f.tier = ?) ORDER BY v.verification_id, v.id",
            [design_id, tier, tier],
        )
        return [{**r, "seeds": json.loads(r["seeds"]), "higher_is_better": bool(r["higher_is_better"])}
                for r in rows]

    def latest_verdict(self, design_id: int, tier: str | None = None) -> dict[str, Any] | None:
        """The design's most recent verification (optionally at one tier), or None if it was never verified.

        Keys: verification_id, tier, tier_version, seeds, confidence, method, created_at, `rows` (its verdict
        rows) and `headline`: the verdict on the score against the strongest reference compared (highest
        reference mean), the one line a leaderboard shows; None when no score was compared.
        """
        rows = self.verdicts(design_id, tier)
        if not rows:
            return None
        latest = [r for r in rows if r["verification_id"] == rows[-1]["verification_id"]]
        on_score = [r for r in latest if r["metric"] == "score" and r["reference_mean"] is not None]
        headline = max(on_score, key=lambda r: r["reference_mean"]) if on_score else None
        first = latest[0]
        keys = ("verification_id", "tier", "tier_version", "seeds", "confidence", "method", "created_at")
        return {**{k: first[k] for k in keys}, "rows": latest, "headline": headline}
