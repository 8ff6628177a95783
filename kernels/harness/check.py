"""Checking a declared kernel against its reference, in a way a wrong kernel cannot pass.

For every case (the declared shapes; T = 1, chunk - 1, chunk, chunk + 1 and non-power-of-two head
sizes; shapes drawn from a hidden seed the design never sees) and every input draw:

1. inputs are drawn and kept as a pristine copy; the kernel gets clones, under poisoned memory;
2. its outputs must match the reference's structure, type, shape, dtype and device, must not share
   memory with any input or with each other, and the inputs must be bit-identical afterwards;
3. the reference runs *after* the kernel, on fresh clones, so the kernel cannot pick up memory the
   reference just freed; outputs are compared by relative RMS and relative max error with limits per
   quantity, and must be finite wherever the reference is;
4. gradients of every floating-point input are compared the same way, for random output cotangents;
5. for the declared shapes (every shape with ``redraw_all``), the same input tensors are then
   overwritten in place with a new draw and everything is repeated, so a kernel that caches results
   by shape or by address is caught; every other shape is new to the kernel anyway.

Before any of this, the static scan (``scan``) reads the kernel's host code. The first failure ends
the check; the report carries it with the worst error figures seen so far.
"""

from __future__ import annotations

import functools
import inspect
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from kernels.harness.cuda import DEFAULT_ARCHS, compile_report, load_kernel
from kernels.harness.poison import dirty_allocator, poisoned_memory
from kernels.harness.scan import KernelScanError, kernel_roots, scan_kernel
from kernels.runtime import use_interpreter_without_gpu
from kernels.spec import KernelSpec, Shape
from kernels.utils import rel_rms_error


@dataclass(frozen=True)
class Tolerance:
    rms: float  # relative RMS error: ||a - e|| / ||e||
    max: float  # relative max error: max|a - e| / max|e|


# (forward, gradients) per dtype of the reference's output. float32 leaves room for TF32 matmuls in
# tl.dot on a GPU (~1e-3); every kernel here is ~1e-7 from its reference on a CPU.
# The project's own Triton modules: their kernels are checked against the reference like any other,
# but not scanned (they are reviewed code, and their host code names the library's helpers).
TRUSTED_MODULES = frozenset({"kernels.triton_recurrence", "kernels.triton_chunk", "kernels.triton_chunk_delta"})

LIMITS: dict[torch.dtype, tuple[Tolerance, Tolerance]] = {
    torch.float64: (Tolerance(2e-3, 2e-2), Tolerance(5e-3, 5e-2)),
    torch.float32: (Tolerance(2e-3, 2e-2), Tolerance(5e-3, 5e-2)),
    torch.float16: (Tolerance(1e-2, 8e-2), Tolerance(3e-2, 0.15)),
    torch.bfloat16: (Tolerance(3e-2, 0.15), Tolerance(6e-2, 0.3)),
}


@dataclass(frozen=True)
class CheckConfig:
    seeds: int = 1  # input draws per shape, each followed by an in-place redraw
    hidden: int = 2  # shapes drawn from the hidden seed
    edges: bool = True  # T = 1, chunk - 1, chunk, chunk + 1 and non-power-of-two head sizes
    max_len: int = 40  # longest T of the edge and hidden shapes
    odd_dims: tuple[int, int] = (12, 20)  # (K, V) that are not powers of two
    hidden_dims: tuple[int, int] = (3, 24)  # range of K and V in hidden shapes
    redraw_all: bool = False  # the in-place redraw (caching check) on every shape, not only declared ones


@dataclass
class KernelReport:
    """The outcome of checking one KernelSpec. ``status``: ok, mismatch (wrong numbers, structure or
    behaviour), scan (rejected by the static scan), spec (a malformed declaration), or for CUDA
    kernels compile-error, compiled-only (no GPU to run it) and nvcc-not-found."""

    name: str
    status: str = "ok"
    reason: str = ""
    errors: dict[str, float] = field(default_factory=dict)  # worst relative RMS error per quantity
    max_errors: dict[str, float] = field(default_factory=dict)  # worst relative max error per quantity
    cases: int = 0
    hidden_seed: int = 0
    flops: int | None = None
    bytes: int | None = None
    notes: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in {"ok", "compiled-only", "nvcc-not-found"}

    def figures(self) -> dict:
        """Flat metrics for the experience database: kernel_<name>_<figure>."""
        prefix = f"kernel_{self.name}_"
        out: dict = {prefix + "status": self.status, prefix + "cases": self.cases,
                     prefix + "hidden_seed": self.hidden_seed}
        out.update({f"{prefix}err_{q}": float(f"{v:.3g}") for q, v in self.errors.items()})
        out.update({f"{prefix}maxerr_{q}": float(f"{v:.3g}") for q, v in self.max_errors.items()})
        if self.flops is not None:
            out[prefix + "flops"] = self.flops
        if self.bytes is not None:
            out[prefix + "bytes"] = self.bytes
        out.update({prefix + key: value for key, value in self.notes.items()})
        return out


class KernelFault(Exception):
    """A kernel failed one check; the message says expected versus actual."""


def case_shapes(spec: KernelSpec, config: CheckConfig, hidden_seed: int) -> list[tuple[str, dict]]:
    """(kind, shape) for every case, declared first, hidden last; no shape twice."""
    base = dict(spec.shapes[0])
    cases = [("declared", dict(s)) for s in spec.shapes]
    if config.edges and "T" in base:
        C = spec.chunk
        for T in (1, C - 1, C, C + 1):
            if 1 <= T <= max(config.max_len, C + 1):
                cases.append(("edge", {**base, "T": T}))
    if config.edges and ("K" in base or "V" in base):
        K, V = config.odd_dims
        cases.append(("edge", {**base, **({"K": K} if "K" in base else {}), **({"V": V} if "V" in base else {})}))
    rng = random.Random(hidden_seed)
    for _ in range(config.hidden):
        shape = dict(base)
        if "T" in shape:
            shape["T"] = rng.randint(2, config.max_len)
        for dim in ("K", "V"):
            if dim in shape:
                shape[dim] = rng.randint(*config.hidden_dims)
        cases.append(("hidden", shape))
    unique, seen = [], set()
    for kind, shape in cases:
        key = tuple(sorted(shape.items()))
        if key not in seen:
            seen.add(key)
            unique.append((kind, shape))
    return unique


def _argument_names(reference: Callable, n: int) -> list[str]:
    try:
        params = list(inspect.signature(reference).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        params = []
    return [params[i] if i < len(params) else f"arg{i}" for i in range(n)]


def _as_outputs(value, names: tuple[str, ...], who: str) -> tuple:
    values = value if isinstance(value, tuple) else (value,)
    if len(values) != len(names):
        raise KernelFault(f"{who} returned {len(values)} value(s), expected {len(names)} ({', '.join(names)})")
    for name, v in zip(names, values):
        if v is not None and not isinstance(v, Tensor):
            raise KernelFault(f"{who} output {name!r} is a {type(v).__name__}, expected a Tensor or None")
    return values


def _clones(args: tuple, grad: bool) -> tuple:
    out = []
    for a in args:
        if isinstance(a, Tensor):
            a = a.detach().clone()
            if grad and a.is_floating_point():
                a.requires_grad_(True)
        out.append(a)
    return tuple(out)


def _span(t: Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def _overlaps(a: Tensor, b: Tensor) -> bool:
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1 and a1 > a0 and b1 > b0


def _check_aliasing(outputs: tuple, out_names: tuple[str, ...], inputs: list[tuple[str, Tensor]]) -> None:
    tensors = [(n, o) for n, o in zip(out_names, outputs) if isinstance(o, Tensor)]
    for i, (name, out) in enumerate(tensors):
        for in_name, x in inputs:
            if _overlaps(out, x):
                raise KernelFault(f"output {name!r} shares memory with input {in_name!r}")
        for other_name, other in tensors[i + 1:]:
            if _overlaps(out, other):
                raise KernelFault(f"outputs {name!r} and {other_name!r} share memory")


def _check_unchanged(args: tuple, pristine: tuple, names: list[str], when: str) -> None:
    for name, a, p in zip(names, args, pristine):
        if isinstance(a, Tensor) and not torch.equal(a.detach(), p):
            raise KernelFault(f"the kernel modified its input {name!r} ({when})")


class _Comparer:
    """Compares quantities and keeps the worst figures per quantity for the report."""

    def __init__(self, report: KernelReport, spec: KernelSpec):
        self.report, self.spec = report, spec

    def limit(self, quantity: str, dtype: torch.dtype, gradient: bool) -> Tolerance:
        forward, backward = LIMITS.get(dtype, LIMITS[torch.float32])
        base = backward if gradient else forward
        declared = self.spec.tolerance.get(quantity)
        return Tolerance(min(base.rms, declared), base.max) if declared is not None else base

    def compare(self, quantity: str, actual, expected: Tensor, gradient: bool = False) -> None:
        if not isinstance(actual, Tensor):
            raise KernelFault(f"{quantity}: got {type(actual).__name__}, expected a Tensor")
        if actual.shape != expected.shape:
            raise KernelFault(f"{quantity}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
        if actual.dtype != expected.dtype:
            raise KernelFault(f"{quantity}: dtype {actual.dtype}, expected {expected.dtype}")
        if actual.device != expected.device:
            raise KernelFault(f"{quantity}: device {actual.device}, expected {expected.device}")
        actual, expected = actual.detach(), expected.detach()
        bad = ~torch.isfinite(actual) & torch.isfinite(expected)
        if bad.any():
            raise KernelFault(f"{quantity}: {int(bad.sum())} of {bad.numel()} values are not finite "
                              "(unwritten output memory reads as NaN)")
        rms = rel_rms_error(actual, expected)
        peak = expected.double().abs().max().clamp_min(1e-30) if expected.numel() else torch.tensor(1.0)
        worst = float((actual.double() - expected.double()).abs().max() / peak) if expected.numel() else 0.0
        errors, max_errors = self.report.errors, self.report.max_errors
        errors[quantity] = max(errors.get(quantity, 0.0), rms)
        max_errors[quantity] = max(max_errors.get(quantity, 0.0), worst)
        limit = self.limit(quantity, expected.dtype, gradient)
        if not rms <= limit.rms:
            raise KernelFault(f"{quantity}: relative RMS error {rms:.2e} exceeds {limit.rms:.0e}")
        if not worst <= limit.max:
            raise KernelFault(f"{quantity}: relative max error {worst:.2e} exceeds {limit.max:.0e}")


def _run_call(spec: KernelSpec, kernel: Callable, args: tuple, pristine: tuple, generator: torch.Generator,
              comparer: _Comparer) -> None:
    """One kernel call on ``args`` (clones of ``pristine``), checked against a fresh reference call."""
    names = _argument_names(spec.reference, len(args))
    inputs = [(n, a) for n, a in zip(names, args) if isinstance(a, Tensor)]
    inputs += [(n, p) for n, p in zip(names, pristine) if isinstance(p, Tensor)]
    device = next((a.device for _, a in inputs), torch.device("cpu"))
    with poisoned_memory():
        dirty_allocator([a.untyped_storage().nbytes() for _, a in inputs], device)
        try:
            outputs = _as_outputs(kernel(*args), spec.outputs, "the kernel")
        except KernelFault:
            raise
        except Exception as exc:  # the kernel's own failure is a finding, not a harness error
            raise KernelFault(f"the kernel raised {type(exc).__name__}: {str(exc)[:300]}") from None
    _check_unchanged(args, pristine, names, "forward")
    _check_aliasing(outputs, spec.outputs, inputs)

    ref_args = _clones(pristine, spec.grad)
    expected = _as_outputs(spec.reference(*ref_args), spec.outputs, "the reference")
    for name, out, ref in zip(spec.outputs, outputs, expected):
        if ref is None:
            if out is not None:
                raise KernelFault(f"output {name!r} is a Tensor where the reference returns None")
            continue
        comparer.compare(name, out, ref)
    if not spec.grad:
        return

    differentiable = [i for i, ref in enumerate(expected) if isinstance(ref, Tensor) and ref.requires_grad]
    wrt = [i for i, a in enumerate(ref_args) if isinstance(a, Tensor) and a.requires_grad]
    cotangents = [torch.randn(expected[i].shape, generator=generator).to(expected[i]) for i in differentiable]
    ref_grads = torch.autograd.grad([expected[i] for i in differentiable], [ref_args[i] for i in wrt], cotangents,
                                    allow_unused=True)
    for i in differentiable:
        if not (isinstance(outputs[i], Tensor) and outputs[i].requires_grad):
            raise KernelFault(f"output {spec.outputs[i]!r} carries no gradient (not connected to autograd)")
    with poisoned_memory():
        try:
            grads = torch.autograd.grad([outputs[i] for i in differentiable], [args[i] for i in wrt], cotangents,
                                        allow_unused=True)
        except Exception as exc:
            raise KernelFault(f"the kernel's backward raised {type(exc).__name__}: {str(exc)[:300]}") from None
    _check_unchanged(args, pristine, names, "backward")
    for i, grad, ref_grad in zip(wrt, grads, ref_grads):
        if ref_grad is None:
            continue
        if grad is None:
            raise KernelFault(f"no gradient reaches input {names[i]!r}")
        comparer.compare(f"grad_{names[i]}", grad, ref_grad, gradient=True)


def _draw(spec: KernelSpec, shape: Shape, generator: torch.Generator, device: str) -> tuple:
    args = spec.inputs(shape, generator, device)
    if not isinstance(args, tuple):
        raise TypeError(f"inputs() must return a tuple of arguments, got {type(args).__name__}")
    return args


def _overwrite(args: tuple, new: tuple) -> tuple:
    """``args`` with every tensor overwritten in place by the one in ``new`` (the same objects, the same
    addresses), and the other arguments replaced."""
    out = []
    for a, n in zip(args, new):
        if isinstance(a, Tensor) and isinstance(n, Tensor) and a.shape == n.shape:
            with torch.no_grad():
                a.copy_(n)
            out.append(a)
        else:
            out.append(n)
    return tuple(out)


def _static_findings(spec: KernelSpec, kernel: Callable, source: str | None, filename: str) -> str | None:
    """The first finding of the static scan, or None. Kernels from the project's own Triton modules
    are trusted; the project's reference ops are never accepted as kernels."""
    module = getattr(kernel, "__module__", "") or ""
    if kernel is spec.reference:
        return "the kernel is the reference itself"
    if module.startswith("kernels."):
        if module.endswith(".triton") or module in TRUSTED_MODULES:
            return None
        return f"the kernel {getattr(kernel, '__qualname__', kernel)!r} is a reference op of {module}"
    if source is None:
        return None
    try:
        findings = scan_kernel(source, kernel_roots(kernel, filename), spec.reference)
    except (KernelScanError, SyntaxError) as exc:
        return str(exc)
    if findings:
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        return f"{findings[0]}{more}"
    return None


def check_kernel(spec: KernelSpec, source: str | None = None, filename: str = "design.py", device: str = "cpu",
                 seed: int = 0, hidden_seed: int | None = None, config: CheckConfig = CheckConfig(),
                 kernel: Callable | None = None) -> KernelReport:
    """Check ``spec`` and return a report; never raises for a faulty kernel.

    source/filename: the design's code and the file name it was compiled under, for the static scan
    (None skips it: the kernel is project code). hidden_seed: None draws a fresh one; it is recorded in
    the report so that a failure can be replayed. kernel: overrides ``spec.kernel`` (CUDA kernels).
    """
    use_interpreter_without_gpu(strict=True)
    hidden_seed = secrets.randbits(32) if hidden_seed is None else hidden_seed
    report = KernelReport(name=spec.name, hidden_seed=hidden_seed)
    kernel = kernel if kernel is not None else spec.kernel
    if spec.cuda is not None and kernel is None:
        return check_declared(spec, source, filename, device, seed, hidden_seed, config)
    if not callable(kernel) or not callable(spec.reference) or not callable(spec.inputs):
        report.status, report.reason = "spec", "kernel, reference and inputs must be callables"
        return report
    if not spec.shapes or not spec.outputs:
        report.status, report.reason = "spec", "a KernelSpec needs at least one shape and one output name"
        return report
    finding = _static_findings(spec, kernel, source, filename)
    if finding is not None:
        report.status, report.reason = "scan", f"kernel scan: {finding}"
        return report
    if spec.flops is not None:
        report.flops = int(spec.flops(spec.shapes[0]))
    if spec.bytes is not None:
        report.bytes = int(spec.bytes(spec.shapes[0]))
    comparer = _Comparer(report, spec)
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for kind, shape in case_shapes(spec, config, hidden_seed):
            for draw in range(config.seeds):
                where = f"{kind} shape {shape}, draw {draw}"
                try:
                    pristine = _draw(spec, shape, generator, device)
                    args = _clones(pristine, spec.grad)
                    _run_call(spec, kernel, args, pristine, generator, comparer)
                    report.cases += 1
                    if kind == "declared" or config.redraw_all:
                        pristine = _draw(spec, shape, generator, device)
                        _run_call(spec, kernel, _overwrite(args, pristine), pristine, generator, comparer)
                        report.cases += 1
                except KernelFault as fault:
                    report.status, report.reason = "mismatch", f"{spec.name}: {where}: {fault}"
                    return report
                except Exception as exc:  # inputs() or the reference failed: the declaration is broken
                    report.status = "spec"
                    report.reason = f"{spec.name}: {where}: {type(exc).__name__}: {str(exc)[:300]}"
                    return report
    return report


def check_declared(spec: KernelSpec, source: str | None = None, filename: str = "design.py", device: str = "cpu",
                   seed: int = 0, hidden_seed: int | None = None, config: CheckConfig = CheckConfig(),
                   archs: tuple[str, ...] = DEFAULT_ARCHS) -> KernelReport:
    """Check a declared kernel of either kind: a Python/Triton kernel with ``check_kernel``; CUDA
    source by compiling it for ``archs`` first (errors and resources reported on any machine), then,
    only on a GPU, with ``check_kernel`` on the NVRTC-compiled kernel behind ``spec.cuda.launch``."""
    if spec.cuda is None:
        return check_kernel(spec, source, filename, device, seed, hidden_seed, config)
    compiled = compile_report(spec.cuda.source, archs)
    notes: dict = {}
    functions = [r for per_arch in compiled.resources.values() for r in per_arch.values()]
    if functions:
        notes = {"registers": max(r.registers for r in functions), "smem_bytes": max(r.smem for r in functions),
                 "spill_bytes": max(r.spill_stores + r.spill_loads for r in functions)}
    if compiled.status == "compile-error":
        return KernelReport(spec.name, "compile-error", f"{spec.name}: nvcc: {compiled.log[:600]}", notes=notes,
                            hidden_seed=hidden_seed or 0)
    if device != "cuda" or not torch.cuda.is_available():
        status = "compiled-only" if compiled.ok else "nvcc-not-found"
        reason = compiled.summary() if compiled.ok else compiled.log
        return KernelReport(spec.name, status, f"{spec.name}: not run without a GPU; {reason}", notes=notes,
                            hidden_seed=hidden_seed or 0)
    kernel = functools.partial(spec.cuda.launch, load_kernel(spec.cuda.source, spec.cuda.entry))
    report = check_kernel(spec, source, filename, device, seed, hidden_seed, config, kernel=kernel)
    report.notes.update(notes)
    return report
