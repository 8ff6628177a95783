"""The LLM client's journal, backed by the experience database: the loop's side of the agents' boundary.

Agents never touch the database; the LLM client hands each call to a ``Journal``. This one writes
every call as it happens (so a killed run keeps its transcript and its spend), looks cached replies
up in this workspace's database or, for a replay, in another one, and tells the client what the run
has spent so far, so caps hold across ``--resume``. Each call is also an ``llm-call`` event in the run's
log (role, model, status, attempt, latency and tokens), which the live display and ``discover log`` read.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from agents.llm import LLMCall, Usage
from memory import ExperienceDB


class DBJournal:
    def __init__(self, db: ExperienceDB, run_id: int, cache_from: str | Path | None = None):
        self.db, self.run_id = db, run_id
        self.cache_db = db
        if cache_from:
            if not Path(cache_from).is_file():
                raise FileNotFoundError(f"llm_cache_from: no experience database at {cache_from}")
            self.cache_db = ExperienceDB(cache_from, readonly=True)

    def record(self, call: LLMCall) -> int:
        """Store the call, then log it as an ``llm-call`` event, so the run's log shows calls as they happen."""
        call_id = self.db.journal.add_llm_transcript(self.run_id, asdict(call))
        self.db.records.log_event(self.run_id, "llm-call", {
            "role": call.role, "model": call.model, "status": call.status, "attempt": call.attempt,
            "latency_s": call.latency_s, "prompt_tokens": call.prompt_tokens,
            "completion_tokens": call.completion_tokens})
        return call_id

    def cached(self, key: str) -> dict | None:
        return self.cache_db.journal.cached_reply(key)

    def usage(self) -> Usage:
        return Usage(**self.db.journal.llm_usage(self.run_id))

    def close(self) -> None:
        if self.cache_db is not self.db:
            self.cache_db.close()
