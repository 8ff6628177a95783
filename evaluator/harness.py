"""The trusted side of an evaluation, run inside the sandbox's child process.

Order matters: the tier's data is generated and the harness's functions are snapshotted
*before* the candidate is imported; then checks, then tasks, re-verifying after each phase.
Returns a JSON-ready dict with a named status, a one-line reason, metrics and a log.
"""

from __future__ import annotations

import os
import platform
import time
import traceback

import torch

from evaluator import checks
from evaluator.design import load
from evaluator.guard import Guard
from evaluator.profile import flops_per_token, peak_rss_mb
from evaluator.status import EvalFailure, is_oom
from evaluator.tasks.common import build_model
from evaluator.tiers import get_tier
from kernels.runtime import use_interpreter_without_gpu


def environment(device: str) -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": device, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}


def _classify(exc: BaseException) -> tuple[str, str]:
    if is_oom(exc):
        return "oom", f"out of memory: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    frames = traceback.extract_tb(exc.__traceback__)
    design_frames = [f for f in frames if f.filename == "design.py"]
    where = design_frames[-1] if design_frames else (frames[-1] if frames else None)
    at = f" at {os.path.basename(where.filename)}:{where.lineno}" if where else ""
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return "error", f"{type(exc).__name__}{at}: {message}"


def evaluate_in_child(payload: dict) -> dict:
    """payload: code, tier, seed. Never raises: every outcome is a status."""
    started = time.perf_counter()
    tier = get_tier(payload["tier"])
    seed = int(payload.get("seed", 0))
    device = "cuda" if tier.device == "cuda" and torch.cuda.is_available() else "cpu"
    metrics: dict = {}
    log: list[str] = []
    info = None
    guard: Guard | None = None
    status, reason = "ok", ""
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        data = {task.name: task.prepare(seed) for task in tier.tasks}
        log.append(f"prepared data for {', '.join(data) or 'no tasks'} in {time.perf_counter() - started:.1f}s")
        guard = Guard()
        use_interpreter_without_gpu()  # before the design's @triton.jit kernels are decorated
        module, info = load(payload["code"])
        guard.verify("import")
        mixer_cls = module.Mixer

        spec = tier.checks
        mixers = checks.build_mixers(mixer_cls, spec)
        metrics.update(checks.check_params(mixers, spec))
        checks.check_shapes_and_causality(mixers, spec, generator)
        metrics.update(checks.check_model(mixer_cls, spec, generator))
        if info.has_step:
            metrics.update(checks.check_recurrent(mixers, spec, generator))
        if info.has_kernels:
            kernel_metrics, kernel_failure = checks.check_kernels(module, payload["code"], spec, seed)
            metrics.update(kernel_metrics)
            if kernel_failure is not None:
                raise kernel_failure
        if tier.scaling_probe:
            metrics.update(checks.scaling_probe(mixers[0], spec, generator))
        guard.verify("checks")
        log.append(f"checks passed at {time.perf_counter() - started:.1f}s")

        for task in tier.tasks:
            t0 = time.perf_counter()
            metrics.update(task.run(mixer_cls, data[task.name], seed, device))
            guard.verify(task.name)
            log.append(f"{task.name} done in {time.perf_counter() - t0:.1f}s")
        if tier.tasks:
            first = tier.tasks[0]
            model = build_model(mixer_cls, first.spec.vocab, first.model, seed, device)
            x, y = data[first.name]["test"] if "test" in data[first.name] else data[first.name]["val"]
            metrics["flops_per_token"] = round(flops_per_token(model, x[:8].to(device), y[:8].to(device)))
            metrics["params"] = sum(p.numel() for p in model.parameters())
        metrics["peak_rss_mb"] = round(peak_rss_mb(), 1)
    except EvalFailure as failure:
        status, reason = failure.status, failure.reason
    except (Exception, MemoryError) as exc:  # the candidate's own exception: a named outcome, not a crash
        status, reason = _classify(exc)
        log.append("".join(traceback.format_exception(exc, limit=-8)))
    if status not in ("ok", "tamper") and guard is not None:
        # A patched loss or metric makes some check fail first (e.g. a zero loss at init); name the cause.
        try:
            guard.verify("the failed phase")
        except EvalFailure as failure:
            status, reason = failure.status, failure.reason
    return {
        "status": status, "reason": reason, "metrics": metrics, "log": "\n".join(log),
        "name": info.name if info else None, "motivation": info.motivation if info else None,
        "has_step": info.has_step if info else None,
        "tier": tier.name, "tier_version": tier.version, "seed": seed,
        "duration_s": round(time.perf_counter() - started, 3), "environment": environment(device),
    }
