"""Evaluations in flight: the loop's concurrency bookkeeping, kept out of the algorithm."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from agents import Draft
from evaluator.run import EvalResult


@dataclass(frozen=True)
class Flight:
    """An evaluation in progress."""

    eval_id: int
    design_id: int
    draft: Draft
    race: bool = False  # another seed of a design already evaluated (``memory.racing``)


class Flights:
    """At most ``workers`` evaluations at once, each a future of an ``EvalResult``."""

    def __init__(self, workers: int):
        self.workers = workers
        self._futures: dict[Future, Flight] = {}

    def __len__(self) -> int:
        return len(self._futures)

    def has_room(self, spent: int, budget: int) -> bool:
        """A worker is free and the budget has room for one more (evaluations in flight count as spent)."""
        return len(self._futures) < self.workers and spent + len(self._futures) < budget

    def design_ids(self) -> set[int]:
        return {flight.design_id for flight in self._futures.values()}

    def racing(self) -> list[Flight]:
        """The flights that are extra seeds of a design already evaluated."""
        return [flight for flight in self._futures.values() if flight.race]

    def launch(self, future: Future, flight: Flight) -> None:
        self._futures[future] = flight

    def landed(self) -> list[tuple[Flight, EvalResult]]:
        """Wait until at least one evaluation ends; every one that has ended, with its result."""
        done, _ = wait(self._futures, return_when=FIRST_COMPLETED)
        return [(self._futures.pop(future), future.result()) for future in done]
