"""The loop's two narrators: an agent step that may fail without ending the run, and the event log."""

from __future__ import annotations

import threading
from collections.abc import Callable

from agents.base import AgentFailure, StopRun
from memory.protocols import Records


class Events:
    """Each event is logged to the database (the UI reads it there) and handed to the listener."""

    def __init__(self, records: Records, run_id: int, listener: Callable[[str, dict], None] | None):
        self.records, self.run_id, self.listener = records, run_id, listener

    def __call__(self, event: str, **data) -> None:
        self.records.log_event(self.run_id, event, data)
        if self.listener:
            self.listener(event, data)


class AgentSteps:
    """Runs one step of a role. An AgentFailure becomes an ``agent-failure`` event and None (the loop goes
    on); a StopRun, or ``limit`` failures in a row, stops the run with a message in ``reason``."""

    def __init__(self, emit: Events, stop: threading.Event, limit: int):
        self.emit, self.stop, self.limit = emit, stop, limit
        self.failures_in_a_row, self.reason, self.agents_stopped = 0, "", False
        self.gave_up = False  # the agents failed ``limit`` times in a row: the run could not work

    def __call__(self, step: str, fn: Callable, *args, **kwargs):
        if self.agents_stopped:
            return None
        try:
            result = fn(*args, **kwargs)
        except AgentFailure as failure:
            self.failures_in_a_row += 1
            self.emit("agent-failure", step=step, status=failure.status, reason=failure.reason,
                      calls=list(failure.calls))
            if self.failures_in_a_row >= self.limit:
                self.gave_up = True
                self.halt(f"{self.limit} agent failures in a row; the last: {failure.status}: {failure.reason}")
            return None
        except StopRun as stop:
            self.agents_stopped = True
            self.halt(str(stop))
            return None
        self.failures_in_a_row = 0
        return result

    def halt(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            self.emit("stage", stage=f"stopped: {reason}")
        self.stop.set()
