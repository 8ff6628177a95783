"""The experience database's stores as interfaces: what the rest of the code may ask of each.

``ExperienceDB`` implements them as ``db.records`` (``Records``), ``db.journal`` (``Journal``),
``db.provenance`` (``Provenance``) and ``db.views`` (``Views``). Code outside ``memory/`` names these
in its type hints, so a part that needs one store takes that store, and a test can hand it a fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from memory.records import Design, Evaluation, Event, Ranked, Run


class Records(Protocol):
    """Runs, designs (with duplicates and lineage), evaluations, analyses and events."""

    def start_run(self, budget: int | None, tier: str, config: Mapping[str, Any], workspace: str | None = None) -> int:
        """Record a new run as running; returns its id."""

    def finish_run(self, run_id: int, status: str) -> None:
        """End a run as finished, interrupted or stopped."""

    def resume_run(self, run_id: int) -> Run:
        """Mark an ended run running again; call `abandon_inflight` first if it was killed."""

    def run(self, run_id: int) -> Run:
        """The run with this id; raises RecordNotFound."""

    def latest_run(self) -> Run | None:
        """The most recently started run, or None."""

    def find_by_code_hash(self, h: str) -> Design | None:
        """The design whose whitespace-normalized code hash is `h`, or None."""

    def find_by_struct_hash(self, h: str | None) -> Design | None:
        """The first recorded design with structural hash `h` (None never matches)."""

    def find_duplicate(self, code: str) -> tuple[str, Design] | None:
        """("exact" | "structural", original) when `code` repeats a recorded design, cheapest check first."""

    def add_design(
        self,
        name: str,
        motivation: str,
        code: str,
        *,
        origin: str,
        parents: Sequence[int] = (),
        spec: Mapping[str, Any] | None = None,
        run_id: int | None = None,
        archive_commit: str | None = None,
    ) -> int:
        """Record a new design; raises DuplicateDesignError if its code is already recorded."""

    def set_archive_commit(self, design_id: int, sha: str) -> None:
        """Record the archive commit that holds the design's code."""

    def add_duplicate(
        self, run_id: int | None, code: str, kind: str, original_id: int, name: str, origin: str
    ) -> int:
        """Record a proposal that repeats design `original_id`; it costs no evaluation."""

    def duplicates(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """The recorded duplicates (of one run, or all), oldest first."""

    def design(self, design_id: int) -> Design:
        """The design with this id; raises RecordNotFound."""

    def designs(self, origin: str | None = None) -> list[Design]:
        """Every design (optionally of one origin), oldest first."""

    def begin_evaluation(
        self, design_id: int, run_id: int | None, purpose: str, tier: str, tier_version: int, seed: int
    ) -> int:
        """Record an evaluation as in flight (status "running") before it starts."""

    def finish_evaluation(
        self,
        eval_id: int,
        status: str,
        reason: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        score: float | None = None,
        log: str | None = None,
        duration_s: float | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        """Close a running evaluation with "ok" or a named failure; only "ok" may carry a score."""

    def abandon_inflight(self, run_id: int) -> int:
        """Mark the run's evaluations still "running" (their process died) "interrupted"; returns how many."""

    def spent(self, run_id: int, purpose: str = "search") -> int:
        """Finished evaluations of `purpose` in the run, failures included: what counts against the budget."""

    def evaluation(self, eval_id: int) -> Evaluation:
        """The evaluation with this id; raises RecordNotFound."""

    def evaluations_at(self, tier: str, tier_version: int, status: str | None = None) -> list[Evaluation]:
        """Every evaluation at one tier and version (optionally of one status), oldest first."""

    def set_scores(self, scores: Mapping[int, float | None]) -> None:
        """Replace the scores of ok evaluations, by evaluation id, in one transaction."""

    def evaluations(self, design_id: int) -> list[Evaluation]:
        """The design's evaluations, oldest first."""

    def top(self, tier: str, k: int, tier_version: int | None = None) -> list[tuple[Design, Evaluation]]:
        """The k best designs at `tier`, each with its best ok evaluation, by score desc then design id."""

    def seed_scores(self, tier: str, tier_version: int) -> dict[int, dict[int, Evaluation]]:
        """{design id: {seed: its first ok, scored evaluation}} at one tier and version, replays left out."""

    def twins(self, tier: str, tier_version: int) -> dict[int, int]:
        """{design: the design it trains exactly as} for every twin that is not its group's original."""

    def ranked(self, tier: str, k: int, tier_version: int, twins: Mapping[int, int] | None = None) -> list[Ranked]:
        """The k best designs by the mean score over their seeds, each with its best-scored evaluation,
        twins left out."""

    def references(self, tier: str, tier_version: int) -> dict[str, list[dict]]:
        """Metrics of every ok evaluation of each baseline at this tier and version, by baseline name."""

    def lineage(self, design_id: int) -> list[Design]:
        """Ancestors along first parents, nearest first, up to a root (the design itself excluded)."""

    def children(self, design_id: int) -> list[Design]:
        """Designs that name `design_id` among their parents, oldest first."""

    def siblings(self, design_id: int) -> list[Design]:
        """Other designs that share a parent with this one (roots have none)."""

    def add_analysis(
        self, design_id: int, author: str, text: str, data: Mapping[str, Any] | None = None,
        evaluation_id: int | None = None,
    ) -> int:
        """Record an analysis of the design (optionally of one of its evaluations)."""

    def analyses(self, design_id: int) -> list[dict[str, Any]]:
        """The design's analyses, oldest first, with their data decoded."""

    def log_event(self, run_id: int | None, kind: str, data: Mapping[str, Any] | None = None) -> int:
        """Append an event to the run's log; returns its id."""

    def events(self, run_id: int, after_id: int = 0) -> list[Event]:
        """The run's events with id > after_id, oldest first: poll with the last id seen."""


class Journal(Protocol):
    """LLM calls with their transcripts, per-run usage, and the reply cache."""

    def add_llm_call(
        self,
        run_id: int | None,
        role: str,
        model: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cost: float | None = None,
        latency_s: float | None = None,
        status: str = "ok",
        request: Any = None,
        reply: str | None = None,
        design_id: int | None = None,
    ) -> int:
        """Record one LLM call; cost None means unknown (a model litellm has no price for)."""

    def llm_usage(self, run_id: int) -> dict[str, Any]:
        """Totals for the run: calls, tokens, known cost, and how many calls had an unknown cost."""

    def add_llm_transcript(self, run_id: int | None, call: Mapping[str, Any]) -> int:
        """Record one LLM call (keys LLM_CALL_FIELDS) and cache its reply, in one transaction."""

    def link_llm_calls(self, call_ids: Sequence[int], design_id: int) -> int:
        """Link calls not yet linked to a design to `design_id`; returns how many were linked."""

    def llm_calls(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """The LLM calls (of one run, or all), oldest first, with the request decoded."""

    def cached_reply(self, key: str) -> dict[str, Any] | None:
        """The cached reply for a request hash: {"reply", "prompt_tokens", "completion_tokens", "model"}, or None."""

    def design_llm_calls(self, design_id: int) -> list[dict[str, Any]]:
        """Every LLM call linked to the design, oldest first, prompt and reply included: its transcript."""


class Provenance(Protocol):
    """Replays of recorded evaluations and verifications of designs against references."""

    def add_replay(
        self, design_id: int, evaluation_id: int, replay_evaluation_id: int, verdict: str, exact: bool,
        diffs: Sequence[Mapping[str, Any]], environment: Mapping[str, Any] | None = None,
    ) -> int:
        """Record that `replay_evaluation_id` re-ran `evaluation_id`; `diffs` holds one entry per metric."""

    def replays(self, design_id: int) -> list[dict[str, Any]]:
        """The design's replays, oldest first, with diffs and environment changes decoded."""

    def latest_replay(self, design_id: int) -> dict[str, Any] | None:
        """The design's most recent replay, or None."""

    def add_verification(
        self, tier: str, tier_version: int, seeds: Sequence[int], confidence: float, method: str,
        verdicts: Sequence[Mapping[str, Any]],
    ) -> int:
        """Record one verification and its verdict rows (keys: the `verdicts` table's columns) atomically."""

    def verdicts(self, design_id: int, tier: str | None = None) -> list[dict[str, Any]]:
        """Every verdict on the design (optionally at one tier), oldest verification first."""

    def latest_verdict(self, design_id: int, tier: str | None = None) -> dict[str, Any] | None:
        """The design's most recent verification with its headline verdict, or None if it was never verified."""


class Views(Protocol):
    """Read queries for screens and statistics, shaped and paged in SQL."""

    def evaluated_tiers(self) -> list[dict[str, Any]]:
        """Each (tier, tier_version) that has evaluations, with their count; most recently used first."""

    def leaderboard_page(
        self, tier: str, tier_version: int, *, status: str | None = None, origin: str | None = None,
        sort: str = "score", descending: bool = True, limit: int = 50, offset: int = 0, hide: Sequence[int] = (),
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of designs at a tier with their representative evaluations, and the row count of all pages;
        designs in `hide` have no row."""

    def runs_overview(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its search evaluations spent, designs recorded and best score."""

    def score_history(self, tier: str, tier_version: int, run_id: int | None = None) -> list[dict[str, Any]]:
        """Finished search evaluations at a tier (optionally of one run) in the order they finished."""

    def design_summaries(self, design_ids: Sequence[int], tier: str | None = None,
                         tier_version: int | None = None) -> dict[int, dict[str, Any]]:
        """Name, origin, parents and the representative evaluation of each design, without its code."""

    def child_ids(self, design_id: int) -> list[int]:
        """Designs that name `design_id` among their parents, oldest first."""

    def children_of(self, design_ids: Sequence[int]) -> dict[int, list[int]]:
        """The children of each of `design_ids` (oldest first; absent: none)."""

    def statuses_at(self, tier: str, tier_version: int) -> list[str]:
        """The evaluation statuses that occur at a tier and version, alphabetically."""

    def designs_after(self, design_id: int) -> list[Design]:
        """Designs with an id above `design_id`, oldest first."""

    def evaluations_after(self, eval_id: int, tier: str, tier_version: int) -> list[Evaluation]:
        """Evaluations at a tier and version with an id above `eval_id`, oldest first."""

    def evaluations_by_id(self, eval_ids: Sequence[int]) -> list[Evaluation]:
        """The evaluations with these ids (unknown ids are skipped), oldest first."""

    def analyses_after(self, analysis_id: int) -> list[dict[str, Any]]:
        """Analyses with an id above `analysis_id`, oldest first, with their data decoded."""
