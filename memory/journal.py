"""The LLM journal: every attempt at an LLM call, and the reply cache.

Every attempt is one llm_calls row (prompt, reply, status, tokens, cost), linked to the design it
produced once that design is recorded; every reply is also cached under the hash of its request, so a
run can be re-done from the cache without a model.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from memory.store import Store, now, to_json


class JournalStore(Store):
    """LLM calls with their transcripts, per-run usage, and cached replies."""

    LLM_CALL_FIELDS: ClassVar[tuple[str, ...]] = (
        "role", "model", "status", "request", "reply", "error", "prompt_tokens", "completion_tokens", "cost",
        "latency_s", "attempt", "cache_key", "cached", "design_id")

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
        return self._insert("llm_calls", {
            "run_id": run_id, "design_id": design_id, "role": role, "model": model,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost": cost,
            "latency_s": latency_s, "status": status, "request": to_json(request), "reply": reply,
            "created_at": now(),
        })

    def llm_usage(self, run_id: int) -> dict[str, Any]:
        """Totals for the run: calls, tokens, known cost, and how many calls had an unknown cost."""
        return self._rows(
            "SELECT count(*) AS calls, coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
            " coalesce(sum(completion_tokens), 0) AS completion_tokens, coalesce(sum(cost), 0.0) AS cost,"
            " coalesce(sum(cost IS NULL), 0) AS unknown_cost_calls FROM llm_calls WHERE run_id = ?",
            [run_id],
        )[0]

    def add_llm_transcript(self, run_id: int | None, call: Mapping[str, Any]) -> int:
        """Record one LLM call (keys LLM_CALL_FIELDS) and, when it has a reply and a cache key and was not
        itself served from the cache, cache the reply (the first reply for a key is kept); one transaction."""
        if unknown := sorted(set(call) - set(self.LLM_CALL_FIELDS)):
            raise ValueError(f"unknown LLM call field(s) {', '.join(unknown)}; "
                             f"known: {', '.join(self.LLM_CALL_FIELDS)}")
        row = {name: call.get(name) for name in self.LLM_CALL_FIELDS}
        row.update(run_id=run_id, request=to_json(row["request"]), cached=int(bool(row["cached"])), created_at=now())
        with self.transaction():
            call_id = self.db["llm_calls"].insert(row).last_pk
            if row["cache_key"] and row["reply"] is not None and not row["cached"]:
                self.conn.execute(
                    "INSERT OR IGNORE INTO llm_cache (key, model, reply, prompt_tokens, completion_tokens, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [row["cache_key"], row["model"], row["reply"], row["prompt_tokens"], row["completion_tokens"],
                     row["created_at"]])
        return call_id

    def link_llm_calls(self, call_ids: Sequence[int], design_id: int) -> int:
        """Link calls not yet linked to a design to `design_id`; returns how many were linked."""
        with self.transaction():
            return self.conn.execute(
                "UPDATE llm_calls SET design_id = ? WHERE design_id IS NULL AND id IN (SELECT value FROM json_each(?))",
                [design_id, json.dumps(list(call_ids))]).rowcount

    def llm_calls(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """The LLM calls (of one run, or all), oldest first, with the request decoded."""
        rows = self._rows("SELECT * FROM llm_calls WHERE ? IS NULL OR run_id = ? ORDER BY id", [run_id, run_id])
        return [{**r, "request": json.loads(r["request"]) if r["request"] else None} for r in rows]

    def cached_reply(self, key: str) -> dict[str, Any] | None:
        """The cached reply for a request hash: {"reply", "prompt_tokens", "completion_tokens", "model"}, or None."""
        rows = self._rows("SELECT model, reply, prompt_tokens, completion_tokens FROM llm_cache WHERE key = ?", [key])
        return rows[0] if rows else None

    def design_llm_calls(self, design_id: int) -> list[dict[str, Any]]:
        """Every LLM call linked to the design, oldest first, prompt and reply included: its transcript."""
        rows = self._rows("SELECT * FROM llm_calls WHERE design_id = ? ORDER BY id", [design_id])
        return [{**r, "request": json.loads(r["request"]) if r["request"] else None} for r in rows]
