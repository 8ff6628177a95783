"""Read models: the queries behind the UI's screens and the agents' context.

A screen reads only the columns it shows, sorted and paged in SQL, so a screen over 10,000 designs
loads in milliseconds. A design's "representative" evaluation at a tier is the one rule every view
shares (``memory.records.REPRESENTS``): among its evaluations that are not replays, its best ok one
(highest score), else its latest. A reader that keeps its own copy (the agents' context) reads only the rows
after the last id it has seen (`designs_after`, `evaluations_after`, `analyses_after`).
"""

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from memory.records import REPRESENTS, Design, Evaluation
from memory.store import INTERRUPTED, RUNNING, Store


class ReadModels(Store):
    """Pages, overviews and statistics over the records, read in SQL."""

    LEADERBOARD_SORTS: ClassVar[dict[str, str]] = {
        "score": "r.mean_score", "seeds": "r.seeds", "id": "r.design_id", "name": "d.name", "origin": "d.origin",
        "status": "r.status", "duration": "r.duration_s",
    }
    # Rank 1 is the representative evaluation among the rows a query keeps; every such query keeps only
    # the rows that may represent a design (REPRESENTS: no replays).
    _REPRESENTATIVE = "row_number() OVER (PARTITION BY e.design_id ORDER BY e.status = 'ok' DESC, e.score IS NULL," \
                      " e.score DESC, e.id DESC)"

    def current_tier(self) -> str | None:
        """The tier the workspace works at: its latest run's, else the tier of its latest evaluation; None when
        it has neither (the commands that read a tier default to this one)."""
        rows = (self._rows("SELECT tier FROM runs ORDER BY id DESC LIMIT 1")
                or self._rows("SELECT tier FROM evaluations ORDER BY id DESC LIMIT 1"))
        return rows[0]["tier"] if rows else None

    def evaluated_tiers(self) -> list[dict[str, Any]]:
        """Each (tier, tier_version) that has evaluations, with their count; most recently used first."""
        return self._rows("SELECT tier, tier_version, count(*) AS n FROM evaluations GROUP BY tier, tier_version"
                          " ORDER BY max(id) DESC")

    def leaderboard_page(
        self, tier: str, tier_version: int, *, status: str | None = None, origin: str | None = None,
        sort: str = "score", descending: bool = True, limit: int = 50, offset: int = 0, hide: Sequence[int] = (),
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of designs evaluated at a tier, each with its representative evaluation, and the row count
        over all pages. A row's ``score`` is the mean over the design's ok evaluations there (``seeds`` of
        them; ``best_score`` is the representative's), as ``discover top`` ranks.

        `status` None keeps every design, "failed" those whose representative evaluation is a named failure,
        any other value that status. `sort` is a key of LEADERBOARD_SORTS or a metric name; rows without a
        value sort last in either direction, ties by design id. Ranking, filtering and sorting read narrow
        columns only (designs are joined before the page is cut only to filter or sort by their columns);
        metrics and names are read for the rows of the page. Designs in `hide` have no row (the UI hides twins,
        ``memory.twins``).
        """
        if sort in self.LEADERBOARD_SORTS:
            key, metric = self.LEADERBOARD_SORTS[sort], None
        elif sort.isidentifier():
            key, metric = "r.metric", f"$.{sort}"
        else:
            raise ValueError(f"sort must be one of {', '.join(self.LEADERBOARD_SORTS)} or a metric name; got {sort!r}")
        if limit < 1 or offset < 0:
            raise ValueError(f"limit must be >= 1 and offset >= 0; got limit {limit}, offset {offset}")
        params = {"tier": tier, "version": tier_version, "origin": origin, "status": status, "metric": metric,
                  "running": RUNNING, "interrupted": INTERRUPTED, "limit": limit, "offset": offset,
                  "hide": json.dumps([int(i) for i in hide])}
        by_design = origin is not None or key.startswith("d.")
        selected = (
            " FROM (SELECT e.id AS evaluation_id, e.design_id, e.status, e.score, e.duration_s,"
            "  avg(CASE WHEN e.status = 'ok' THEN e.score END) OVER (PARTITION BY e.design_id) AS mean_score,"
            "  count(CASE WHEN e.status = 'ok' THEN e.score END) OVER (PARTITION BY e.design_id) AS seeds,"
            f"  {'json_extract(e.metrics, :metric)' if metric else 'NULL'} AS metric, {self._REPRESENTATIVE} AS rank"
            f"  FROM evaluations e WHERE e.tier = :tier AND e.tier_version = :version AND e.{REPRESENTS}) r"
            + (" JOIN designs d ON d.id = r.design_id" if by_design else "") +
            " WHERE r.rank = 1" + (" AND d.origin = :origin" if origin is not None else "") +
            (" AND r.design_id NOT IN (SELECT value FROM json_each(:hide))" if hide else "") +
            " AND (:status IS NULL OR r.status = :status"
            "  OR (:status = 'failed' AND r.status NOT IN ('ok', :running, :interrupted)))"
        )
        order = f"{key} IS NULL, {key} {'DESC' if descending else 'ASC'}, r.design_id"
        rows = self._rows(
            "SELECT d.id, d.name, d.origin, d.parents, d.run_id, e.id AS evaluation_id, e.status, e.reason,"
            " p.mean_score AS score, e.score AS best_score, p.seeds, e.seed, e.metrics, e.duration_s, p.total"
            " FROM (SELECT r.evaluation_id, r.design_id, r.mean_score, r.seeds, count(*) OVER () AS total,"
            f"  row_number() OVER (ORDER BY {order}) AS position {selected}"
            "  ORDER BY position LIMIT :limit OFFSET :offset) p"
            " JOIN designs d ON d.id = p.design_id JOIN evaluations e ON e.id = p.evaluation_id ORDER BY p.position",
            params,
        )
        if rows:
            total = rows[0]["total"]
        else:  # past the last page (or nothing matches): count without the page
            total = self._rows("SELECT count(*) AS n" + selected, params)[0]["n"] if offset else 0
        for row in rows:
            del row["total"]
            row["parents"] = json.loads(row["parents"])
            row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
        return rows, total

    def runs_overview(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its search evaluations spent, designs recorded and best score."""
        return self._rows(
            "SELECT r.id, r.started_at, r.ended_at, r.status, r.budget, r.tier,"
            " (SELECT count(*) FROM evaluations e WHERE e.run_id = r.id AND e.purpose = 'search'"
            "   AND e.status NOT IN (:running, :interrupted)) AS spent,"
            " (SELECT count(*) FROM designs d WHERE d.run_id = r.id) AS designs,"
            " (SELECT max(e.score) FROM evaluations e WHERE e.run_id = r.id AND e.purpose = 'search') AS best_score"
            " FROM runs r ORDER BY r.id DESC",
            {"running": RUNNING, "interrupted": INTERRUPTED},
        )

    def score_history(self, tier: str, tier_version: int, run_id: int | None = None) -> list[dict[str, Any]]:
        """Finished search evaluations at a tier (optionally of one run) in the order they finished:
        the data behind a best-score-so-far curve."""
        return self._rows(
            "SELECT id, design_id, run_id, status, score FROM evaluations"
            " WHERE tier = :tier AND tier_version = :version AND purpose = 'search'"
            " AND status NOT IN (:running, :interrupted) AND (:run IS NULL OR run_id = :run)"
            " ORDER BY finished_at, id",
            {"tier": tier, "version": tier_version, "run": run_id, "running": RUNNING, "interrupted": INTERRUPTED},
        )

    def design_summaries(self, design_ids: Sequence[int], tier: str | None = None,
                         tier_version: int | None = None) -> dict[int, dict[str, Any]]:
        """Name, origin, parents and the representative evaluation of each design (at `tier` and `tier_version`
        when given, else at any), without its code."""
        rows = self._rows(
            "SELECT d.id, d.name, d.origin, d.parents, d.run_id, r.tier, r.tier_version, r.status, r.score"
            " FROM designs d LEFT JOIN (SELECT e.id, e.design_id, e.tier, e.tier_version, e.status, e.score, "
            + self._REPRESENTATIVE + " AS rank FROM evaluations e"
            "  WHERE e.design_id IN (SELECT value FROM json_each(:ids))"
            f"  AND (:tier IS NULL OR e.tier = :tier) AND (:version IS NULL OR e.tier_version = :version)"
            f"  AND e.{REPRESENTS}) r"
            " ON r.design_id = d.id AND r.rank = 1"
            " WHERE d.id IN (SELECT value FROM json_each(:ids)) ORDER BY d.id",
            {"ids": json.dumps([int(i) for i in design_ids]), "tier": tier, "version": tier_version},
        )
        return {row["id"]: {**row, "parents": json.loads(row["parents"])} for row in rows}

    def child_ids(self, design_id: int) -> list[int]:
        """Designs that name `design_id` among their parents, oldest first."""
        return self.children_of([design_id]).get(design_id, [])

    def children_of(self, design_ids: Sequence[int]) -> dict[int, list[int]]:
        """The children of each of `design_ids` (oldest first; absent: none), read in one pass over the designs."""
        rows = self._rows(
            "SELECT DISTINCT p.value AS parent, d.id FROM designs d, json_each(d.parents) p"
            " WHERE p.value IN (SELECT value FROM json_each(?)) ORDER BY d.id",
            [json.dumps([int(i) for i in design_ids])],
        )
        children: dict[int, list[int]] = {}
        for row in rows:
            children.setdefault(row["parent"], []).append(row["id"])
        return children

    def statuses_at(self, tier: str, tier_version: int) -> list[str]:
        """The evaluation statuses that occur at a tier and version, alphabetically."""
        rows = self._rows("SELECT DISTINCT status FROM evaluations WHERE tier = ? AND tier_version = ? ORDER BY status",
                          [tier, tier_version])
        return [row["status"] for row in rows]

    def designs_after(self, design_id: int) -> list[Design]:
        """Designs with an id above `design_id`, oldest first."""
        return [Design.from_row(r) for r in self._rows("SELECT * FROM designs WHERE id > ? ORDER BY id", [design_id])]

    def evaluations_after(self, eval_id: int, tier: str, tier_version: int) -> list[Evaluation]:
        """Evaluations at a tier and version with an id above `eval_id`, oldest first."""
        rows = self._rows("SELECT * FROM evaluations WHERE id > ? AND tier = ? AND tier_version = ? ORDER BY id",
                          [eval_id, tier, tier_version])
        return [Evaluation.from_row(r) for r in rows]

    def evaluations_by_id(self, eval_ids: Sequence[int]) -> list[Evaluation]:
        """The evaluations with these ids (unknown ids are skipped), oldest first."""
        rows = self._rows("SELECT * FROM evaluations WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                          [json.dumps([int(i) for i in eval_ids])])
        return [Evaluation.from_row(r) for r in rows]

    def analyses_after(self, analysis_id: int) -> list[dict[str, Any]]:
        """Analyses with an id above `analysis_id`, oldest first, with their data decoded."""
        rows = self._rows("SELECT * FROM analyses WHERE id > ? ORDER BY id", [analysis_id])
        return [{**r, "data": json.loads(r["data"]) if r["data"] else None} for r in rows]
