"""Evaluating a design file: the parent's side.

The static scan runs here first (it executes nothing); the design runs only in sandboxed
children, and every metric that counts is measured from outside them (``evaluator.measure``).
Whatever happens in a child comes back as an ``EvalResult`` with a named status; the caller's
process is never at risk.

Many evaluations: ``submit`` them to an executor from ``make_executor``, whose fork server has
``PRELOAD`` imported once. One: ``evaluate``, which starts a sandbox of its own.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import sandbox
from evaluator.design import check_static, describe
from evaluator.measure import defines_step, measure, new_key
from evaluator.status import EvalFailure
from evaluator.tiers import DEFAULT_TIER, get_tier

T = TypeVar("T")

PRELOAD = ("torch", "evaluator.harness")  # what every evaluation imports: each job then costs a fork


@dataclass(frozen=True)
class EvalResult:
    status: str
    reason: str
    tier: str
    tier_version: int
    seed: int
    metrics: dict = field(default_factory=dict)
    name: str | None = None
    motivation: str | None = None
    log: str = ""
    duration_s: float = 0.0
    environment: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)


def project_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def measured_result(run_job, code: str, tier: str, seed: int, key: bytes | None = None,
                    described: tuple[str | None, str | None] | None = None,
                    declares_step: bool | None = None) -> EvalResult:
    """One evaluation measured from outside the design's processes (``evaluator.measure``), as a result.

    ``run_job`` runs one sandbox job; ``key`` is the secret the held-out data derive from (a fresh one
    when None: results of the same key share their held-out data, so a workspace passes its own);
    ``described`` and ``declares_step``: the design's (name, motivation) and whether its Mixer declares
    ``step``, when the caller has parsed it already."""
    started = time.perf_counter()
    spec = get_tier(tier)
    name, motivation = described if described is not None else describe_safely(code)
    status, reason, metrics, value, processes = measure(run_job, code, spec.name, seed, key or new_key(),
                                                        declares_step)
    training = processes[0]
    isolation = training.isolation
    environment = {k: v for k, v in value.get("environment", {}).items() if isinstance(v, (str, int, float))} \
        if isinstance(value.get("environment"), dict) else {}
    missing = sorted({m for process in processes for m in sandbox.missing_protections(process.isolation)})
    environment.update(isolation=isolation, ready_s=training.ready_s, project_commit=project_commit(),
                       measured_outside=True, jobs=len(processes),
                       jobs_cpu_s=round(sum(process.cpu_s for process in processes), 3), missing_protections=missing)
    log = value.get("log") if isinstance(value.get("log"), str) else ""
    if status == "crash" and training.stderr.strip():
        last_words = [line for line in training.stderr.strip().splitlines() if line.strip()]
        reason = f"{reason}; stderr ends: {last_words[-1][:300]}"
    return EvalResult(status=status, reason=reason, tier=spec.name, tier_version=spec.version, seed=seed,
                      metrics=metrics, name=name, motivation=motivation,
                      log=log[-20000:] + (training.traceback or "") + _output_tail(training),
                      duration_s=round(time.perf_counter() - started, 3), environment=environment)


def _output_tail(process: sandbox.ProcessResult, limit: int = 4000) -> str:
    parts = []
    for label, text in (("stdout", process.stdout), ("stderr", process.stderr)):
        if text and text.strip():
            parts.append(f"\n--- {label}{' (truncated)' if process.truncated else ''} ---\n{text[-limit:]}")
    return "".join(parts)


def describe_safely(code: str) -> tuple[str | None, str | None]:
    try:
        import ast

        name, motivation = describe(ast.parse(code))
        return name or None, motivation or None
    except SyntaxError:
        return None, None


def static_failure(code: str, tier: str, seed: int) -> EvalResult | None:
    """A syntax or safety failure found without running anything, or None."""
    try:
        check_static(code)
    except EvalFailure as failure:
        spec = get_tier(tier)
        name, motivation = describe_safely(code)
        return EvalResult(status=failure.status, reason=failure.reason, tier=spec.name, tier_version=spec.version,
                          seed=seed, name=name, motivation=motivation)
    return None


def _timed(result: EvalResult, started: float) -> EvalResult:
    """The result with the caller's wall time when the child reported none (it died early)."""
    if result.duration_s:
        return result
    return EvalResult(**{**result.to_dict(), "duration_s": round(time.perf_counter() - started, 3)})


def make_executor(name: str = "local", *, workers: int | None = None, **options) -> sandbox.Executor:
    """A sandbox executor for evaluations (``sandbox.make_executor``), its fork servers preloaded with ``PRELOAD``."""
    return sandbox.make_executor(name, workers=workers, preload=PRELOAD, **options)


def _runner(executor: sandbox.Executor):
    """``run_job`` on ``executor``: a job submitted there and waited for; one the executor dropped
    (``cancel_all``, or shut down) reads as cancelled."""
    def run_job(job: sandbox.Job) -> sandbox.ProcessResult:
        try:
            return executor.submit(job).result()
        except CancelledError:
            return sandbox.ProcessResult("cancelled", error="withdrawn at the caller's request")
        except RuntimeError as exc:  # submitted after shutdown
            return sandbox.ProcessResult("cancelled", error=str(exc))
    return run_job


def submit(executor: sandbox.Executor, code: str, tier: str = DEFAULT_TIER, seed: int = 0,
           key: bytes | None = None) -> Future:
    """Start one evaluation on ``executor``; the future resolves to an EvalResult.

    The evaluation's jobs (training, then queries) run on the executor; the measuring runs on a
    thread of this process. Any sandbox executor works; one from ``make_executor`` has the harness
    imported already, so each job's start-up costs a fork."""
    out: Future = Future()
    failed = static_failure(code, tier, seed)
    if failed is not None:
        out.set_result(failed)
        return out
    # Parsed here, not on the measuring thread: CPython 3.11's ast module is not safe to use from two
    # threads at once (a parse racing the loop's own parses fails with "AST constructor recursion
    # depth mismatch").
    described, declares_step = describe_safely(code), defines_step(code)

    def work() -> None:
        try:
            out.set_result(measured_result(_runner(executor), code, tier, seed, key, described, declares_step))
        except BaseException as exc:  # surfaced to whoever waits on the future
            out.set_exception(exc)

    threading.Thread(target=work, name="measure", daemon=True).start()
    return out


def in_turn(executor: sandbox.Executor, items: Iterable[T], start: Callable[[T], Future]) -> Iterator[tuple[T, Future]]:
    """Start ``start(item)`` for each item, no more at once than the executor runs jobs (its ``workers``;
    all at once where it has no such bound), and yield (item, future) as each completes.

    Every evaluation's jobs share the executor's queue, so evaluations started all at once advance in
    step and all end together: nothing would finish (or be saved from a kill) before the last one."""
    waiting = list(items)
    width = getattr(executor, "workers", None) or max(1, len(waiting))
    running: dict[Future, T] = {}
    while waiting or running:
        while waiting and len(running) < width:
            item = waiting.pop(0)
            running[start(item)] = item
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            yield running.pop(future), future


def evaluate(code: str, tier: str = DEFAULT_TIER, seed: int = 0, wall_s: float | None = None,
             key: bytes | None = None) -> EvalResult:
    """Evaluate one design in sandboxed processes of its own; blocks until it is done.

    ``wall_s`` replaces the tier's limit on training; ``key``: see ``measured_result``."""
    started = time.perf_counter()
    failed = static_failure(code, tier, seed)
    if failed is not None:
        return failed
    with sandbox.Sandbox(PRELOAD) as box:
        def run_job(job: sandbox.Job) -> sandbox.ProcessResult:
            if wall_s is not None and job.target.endswith(":train_in_child"):
                job = sandbox.Job(job.target, job.payload, replace(job.limits, wall_s=wall_s))
            return box.run(job)
        return _timed(measured_result(run_job, code, tier, seed, key), started)


def evaluate_file(path: str | Path, tier: str = DEFAULT_TIER, seed: int = 0) -> EvalResult:
    return evaluate(Path(path).read_text(encoding="utf-8"), tier, seed)
