"""Evaluating a design file: the parent's side.

The static scan runs here first (it executes nothing); everything else runs in a sandboxed
child through ``evaluator.harness.evaluate_in_child``. Whatever happens in the child comes back
as an ``EvalResult`` with a named status; the caller's process is never at risk.

Many evaluations: ``submit`` them to an executor from ``make_executor``, whose fork server has
``PRELOAD`` imported once. One: ``evaluate``, which starts a sandbox of its own.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sandbox
from evaluator.design import check_static, describe
from evaluator.status import EvalFailure
from evaluator.tiers import DEFAULT_TIER, get_tier

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


def job_for(code: str, tier: str = DEFAULT_TIER, seed: int = 0, wall_s: float | None = None) -> sandbox.Job:
    spec = get_tier(tier)
    limits = sandbox.Limits(wall_s=wall_s or spec.wall_s, memory_bytes=spec.memory_bytes)
    return sandbox.Job(target="evaluator.harness:evaluate_in_child",
                       payload={"code": code, "tier": spec.name, "seed": seed}, limits=limits)


def result_from(process: sandbox.ProcessResult, code: str, tier: str, seed: int,
                described: tuple[str | None, str | None] | None = None) -> EvalResult:
    """Turn what the sandbox saw into a named outcome; ``described``: the design's (name, motivation)
    when the caller has parsed it already."""
    spec = get_tier(tier)
    name, motivation = described if described is not None else describe_safely(code)
    base = {"tier": spec.name, "tier_version": spec.version, "seed": seed, "name": name, "motivation": motivation}
    isolation = {"isolation": process.isolation, "ready_s": process.ready_s}
    if process.outcome == "returned" and process.value is not None:
        value = dict(process.value)
        env = {**value.pop("environment", {}), **isolation, "project_commit": project_commit()}
        log = value.pop("log", "")
        value.pop("has_step", None)
        output = _output_tail(process)
        return EvalResult(**{**base, **{k: v for k, v in value.items() if k in EvalResult.__dataclass_fields__}},
                          log=log + output, environment=env)
    # What the sandbox saw, as an evaluation status; "raised" means the harness itself failed,
    # because the harness turns every exception of the design into a named status.
    status = {"timeout": "timeout", "cpu-limit": "timeout", "memory": "oom", "raised": "harness",
              "invalid-value": "harness", "sandbox-error": "harness"}.get(process.outcome, "crash")
    reason = process.error or process.outcome
    last_words = [line for line in process.stderr.strip().splitlines() if line.strip()]
    if status == "crash" and last_words:
        reason = f"{reason}; stderr ends: {last_words[-1][:300]}"
    if status == "timeout":
        reason = f"no result within {process.wall_s:.0f}s ({reason})"
    return EvalResult(**base, status=status, reason=reason, duration_s=process.wall_s,
                      log=(process.traceback or "") + _output_tail(process),
                      environment={**isolation, "project_commit": project_commit()})


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


def submit(executor: sandbox.Executor, code: str, tier: str = DEFAULT_TIER, seed: int = 0) -> Future:
    """Start one evaluation on ``executor``; the future resolves to an EvalResult.

    Any sandbox executor works; one from ``make_executor`` has the harness imported already, so the
    evaluation's start-up costs a fork."""
    out: Future = Future()
    failed = static_failure(code, tier, seed)
    if failed is not None:
        out.set_result(failed)
        return out
    started = time.perf_counter()
    # Parsed here, not in the callback: done() runs on the executor's thread, and CPython 3.11's ast
    # module is not safe to use from two threads at once (a parse racing the loop's own parses fails
    # with "AST constructor recursion depth mismatch").
    described = describe_safely(code)

    def done(process_future: Future) -> None:
        try:
            result = result_from(process_future.result(), code, tier, seed, described)
        except BaseException as exc:  # surfaced to whoever waits on the future
            out.set_exception(exc)
            return
        out.set_result(_timed(result, started))

    executor.submit(job_for(code, tier, seed)).add_done_callback(done)
    return out


def evaluate(code: str, tier: str = DEFAULT_TIER, seed: int = 0, wall_s: float | None = None) -> EvalResult:
    """Evaluate one design in a fresh sandboxed process; blocks until it is done."""
    started = time.perf_counter()
    failed = static_failure(code, tier, seed)
    if failed is not None:
        return failed
    process = sandbox.run(job_for(code, tier, seed, wall_s), preload=PRELOAD)
    return _timed(result_from(process, code, tier, seed), started)


def evaluate_file(path: str | Path, tier: str = DEFAULT_TIER, seed: int = 0) -> EvalResult:
    return evaluate(Path(path).read_text(encoding="utf-8"), tier, seed)
