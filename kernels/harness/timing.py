"""Timing a kernel on a GPU, in a way that cannot report an impossible number.

- warm-up calls first (compilation, autotuning, allocator growth are not timed);
- before every timed call the L2 cache is flushed by writing a buffer larger than it, so a kernel
  is not credited with data a previous call left in cache;
- each call is bracketed by CUDA events; the median of many calls is reported;
- the event times are cross-checked against synchronized host time over the same calls: events
  that add up to more than the host saw mean a broken measurement (e.g. work left on another
  stream), and the result is rejected;
- a roofline floor from the analytic FLOP and byte counts rejects a median below what the device
  could possibly do;
- the clocks (``time.perf_counter``, ``torch.cuda.Event`` and its methods, ``torch.cuda.synchronize``)
  are the ones found when the harness was imported, before any design: a kernel that replaces them
  changes nothing here, and the replacement itself is rejected (``tampered``).

On a machine without CUDA, ``time_kernel`` raises ``NoGPU``: there is no CPU timing of kernels (the
interpreter's speed means nothing); the harness reports analytic counts instead.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

# Peak dense throughput (FLOP/s, the fastest tensor-core format) and memory bandwidth (B/s), by
# device name. Deliberately the optimistic end: the floor must only reject impossible times.
PEAKS: dict[str, tuple[float, float]] = {
    "H200": (1.98e15, 4.8e12),
    "H100": (1.98e15, 3.35e12),
    "A100": (6.24e14, 2.04e12),
    "L40": (7.33e14, 8.64e11),
    "L4": (2.42e14, 3.0e11),
    "A10": (2.5e14, 6.0e11),
}
DEFAULT_PEAKS = (2.5e15, 8.0e12)  # above any device listed: unknown devices are never falsely rejected
L2_FLUSH_BYTES = 256 << 20

_perf_counter = time.perf_counter
_Event = torch.cuda.Event
_record, _elapsed_time = torch.cuda.Event.record, torch.cuda.Event.elapsed_time
_synchronize = torch.cuda.synchronize


class NoGPU(RuntimeError):
    """Timing needs a CUDA device."""


class TimingError(RuntimeError):
    """The measurement is not trustworthy (impossible or inconsistent times)."""


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    host_ms: float  # synchronized host time per call over the timed calls, flush included
    floor_ms: float  # roofline floor from the analytic counts
    reps: int


def device_peaks(name: str) -> tuple[float, float]:
    for key, peaks in PEAKS.items():
        if key in name:
            return peaks
    return DEFAULT_PEAKS


def roofline_floor_ms(flops: int, nbytes: int, peaks: tuple[float, float]) -> float:
    """The least time any kernel could take for ``flops`` and ``nbytes`` of compulsory traffic."""
    peak_flops, peak_bytes = peaks
    return max(flops / peak_flops, nbytes / peak_bytes) * 1e3


def tampered() -> list[str]:
    """The clocks timing relies on that no longer are the ones found at import."""
    found = {"time.perf_counter": (time.perf_counter, _perf_counter), "torch.cuda.Event": (torch.cuda.Event, _Event),
             "torch.cuda.Event.record": (_Event.record, _record),
             "torch.cuda.Event.elapsed_time": (_Event.elapsed_time, _elapsed_time),
             "torch.cuda.synchronize": (torch.cuda.synchronize, _synchronize)}
    return [name for name, (now, then) in found.items() if now is not then]


def time_kernel(fn: Callable[[], object], flops: int = 0, nbytes: int = 0, warmup: int = 10, reps: int = 50,
                flush_l2: bool = True) -> Timing:
    """Time ``fn()`` (a closure over its inputs) on the current CUDA device."""
    if not torch.cuda.is_available():
        raise NoGPU("timing needs a CUDA device; on a CPU the harness reports FLOP and byte counts only")
    for _ in range(warmup):
        fn()
    if replaced := tampered():
        raise TimingError(f"{', '.join(replaced)} was replaced after the harness was imported: a patched clock")
    flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.float32, device="cuda") if flush_l2 else None
    starts = [_Event(enable_timing=True) for _ in range(reps)]
    ends = [_Event(enable_timing=True) for _ in range(reps)]
    _synchronize()
    host_start = _perf_counter()
    for start, end in zip(starts, ends):
        if flush is not None:
            flush.zero_()
        _record(start)
        fn()
        _record(end)
    _synchronize()
    host_ms = (_perf_counter() - host_start) * 1e3
    if replaced := tampered():
        raise TimingError(f"{', '.join(replaced)} was replaced while the kernel was timed: a patched clock")
    times = sorted(_elapsed_time(s, e) for s, e in zip(starts, ends))
    floor = roofline_floor_ms(flops, nbytes, device_peaks(torch.cuda.get_device_name()))
    result = Timing(median_ms=statistics.median(times), p10_ms=times[len(times) // 10],
                    p90_ms=times[(9 * len(times)) // 10], host_ms=host_ms / reps, floor_ms=floor, reps=reps)
    validate(result, sum(times))
    return result


def validate(timing: Timing, event_total_ms: float) -> None:
    """Reject event times that exceed the host's view of the same calls, or beat the roofline."""
    host_total = timing.host_ms * timing.reps
    if event_total_ms > 1.05 * host_total + 0.05:
        raise TimingError(f"CUDA events add up to {event_total_ms:.3f} ms but the host saw {host_total:.3f} ms "
                          "for the same calls")
    if timing.median_ms < timing.floor_ms:
        raise TimingError(f"median {timing.median_ms:.4f} ms is below the roofline floor {timing.floor_ms:.4f} ms: "
                          "the kernel cannot have done the work")
