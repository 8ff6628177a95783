"""Checking a declared kernel against its reference, in a way a wrong kernel, or one that does not
compute its result itself, cannot pass.

The plan (``cases``) draws shapes, input distributions and the fill of fresh memory from the check's
seed and a hidden seed the design never sees. For every case and input draw:

1. inputs are drawn, redistributed, fingerprinted (a digest of their bytes) and kept as a pristine
   copy; the kernel gets clones;
2. the call runs under a ``CallWatch`` (``watch``): it must launch a Triton kernel on its own thread,
   run no torch op that computes, cast nothing below the inputs' precision, start no thread or
   process, read none of the garbage collector's object lists and replace no attribute of torch, the
   clocks or the project's modules; fresh memory holds the case's fill value;
3. its outputs must be plain tensors with the reference's structure, dtype, shape and device, held in
   memory a launch was given, sharing memory with no input, no other output and no earlier call's
   output; the inputs (and the pristine copies) must be bit-identical afterwards;
4. the reference runs *after* the kernel, on fresh clones; the outputs as they were when the call
   returned are compared by relative RMS and relative max error with limits per dtype (tighter under
   Triton's interpreter, whose tl.dot is exact float32), and must be finite wherever the reference is;
5. gradients of every floating-point input are compared the same way for random output cotangents;
   the backward is watched like the call and must launch a kernel too;
6. the outputs must not change after the call returned, and no launch may come from another thread
   (work left on a side thread or stream);
7. on the declared shapes (every shape with ``redraw_all``) the same input tensors are overwritten in
   place with a new draw and the forward is checked again, so a kernel that caches by shape or address
   is caught; on one case the kernel is called again on equal inputs in new tensors: the outputs must
   agree bit for bit, in new memory, after launches of the call's own (a cache keyed by input values
   launches nothing).

Before any of this, the static scan (``scan``) reads the kernel's host code. The first failure ends
the check; the report's reason names it and the case (shape, distribution, fill), with the worst error
figures seen so far.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from torch import Tensor

from kernels.harness.cases import DISTRIBUTIONS, Case, case_plan, distribute, fill_value
from kernels.harness.cuda import DEFAULT_ARCHS, compile_report, load_kernel
from kernels.harness.poison import dirty_allocator
from kernels.harness.scan import KernelScanError, kernel_roots, scan_kernel
from kernels.harness.watch import CallWatch, LaunchLog, counted
from kernels.runtime import interpreted, use_interpreter_without_gpu
from kernels.spec import KernelSpec, Shape
from kernels.utils import rel_rms_error


@dataclass(frozen=True)
class Tolerance:
    rms: float  # relative RMS error: ||a - e|| / ||e||
    max: float  # relative max error: max|a - e| / max|e|


# The project's own Triton modules: their kernels are checked against the reference like any other,
# but not scanned (they are reviewed code, and their host code names the library's helpers).
TRUSTED_MODULES = frozenset({"kernels.triton_recurrence", "kernels.triton_chunk", "kernels.triton_chunk_delta"})

# (forward, gradients) per dtype of the reference's output. float32 leaves room for TF32 matmuls in
# tl.dot on a GPU (~1e-3). Read-only: a kernel that reached them could not loosen them in place.
LIMITS: Mapping[torch.dtype, tuple[Tolerance, Tolerance]] = MappingProxyType({
    torch.float64: (Tolerance(2e-3, 2e-2), Tolerance(5e-3, 5e-2)),
    torch.float32: (Tolerance(2e-3, 2e-2), Tolerance(5e-3, 5e-2)),
    torch.float16: (Tolerance(1e-2, 8e-2), Tolerance(3e-2, 0.15)),
    torch.bfloat16: (Tolerance(3e-2, 0.15), Tolerance(6e-2, 0.3)),
})
# Under Triton's interpreter tl.dot is exact float32 (numpy), and every kernel here is ~1e-6 from its
# reference; one computing in bfloat16 (~3e-3) or float16 (~4e-4, and worse at the ends of its range) is not.
INTERPRETED_LIMITS: Mapping[torch.dtype, tuple[Tolerance, Tolerance]] = MappingProxyType({
    **LIMITS,
    torch.float64: (Tolerance(1e-4, 1e-3), Tolerance(2e-4, 2e-3)),
    torch.float32: (Tolerance(1e-4, 1e-3), Tolerance(2e-4, 2e-3)),
})


@dataclass(frozen=True)
class CheckConfig:
    seeds: int = 1  # input draws per case
    hidden: int = 2  # shapes drawn entirely at random, beyond the structured cases
    edges: bool = True  # T = 1, chunk - 1, chunk, chunk + 1, a long T, several sequences and heads
    budget: int = 64  # most B * H * max(T, chunk) of a batched or hidden case (the interpreter's time)
    redraw_all: bool = False  # the in-place redraw (caching check) on every case, not only declared ones


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


def _argument_names(reference: Callable, n: int) -> list[str]:
    try:
        params = list(inspect.signature(reference).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        params = []
    return [params[i] if i < len(params) else f"arg{i}" for i in range(n)]


def _as_outputs(value, names: tuple[str, ...], who: str, plain: bool = False) -> tuple:
    """``value`` as a tuple of outputs. ``plain``: only a tuple of plain tensors (or one), since a
    tuple or tensor subclass can compute its values when the harness reads them, outside the watch."""
    if plain and value is not None and type(value) not in (tuple, Tensor):
        raise KernelFault(f"{who} returned a {type(value).__name__}, expected a tuple or a plain torch.Tensor")
    values = value if isinstance(value, tuple) else (value,)
    if len(values) != len(names):
        raise KernelFault(f"{who} returned {len(values)} value(s), expected {len(names)} ({', '.join(names)})")
    for name, v in zip(names, values):
        if v is not None and not isinstance(v, Tensor):
            raise KernelFault(f"{who} output {name!r} is a {type(v).__name__}, expected a Tensor or None")
        if plain and v is not None and type(v) is not Tensor:
            raise KernelFault(f"output {name!r} is a {type(v).__name__}, a torch.Tensor subclass: outputs must be "
                              "plain tensors (a subclass can compute its values only when they are read)")
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


def _bytes(t: Tensor) -> Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def _digest(t: Tensor) -> bytes:
    return hashlib.blake2b(_bytes(t).cpu().numpy().tobytes(), digest_size=16).digest()


def _same_bits(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(_bytes(a), _bytes(b))


def _span(t: Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def _overlaps(a: Tensor, b: Tensor) -> bool:
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1 and a1 > a0 and b1 > b0


def _copies(result) -> tuple:
    """Copies of the plain tensors a call returned, taken before anything else runs: what a thread
    writes later cannot make them right. Anything else copies as None (and is rejected later)."""
    values = result if type(result) is tuple else (result,)
    return tuple(v.detach().clone() if type(v) is Tensor else None for v in values)


def _restore(owner: object, before: dict) -> list[str]:
    """Put back the attributes of one of the harness's objects that a kernel changed; names them."""
    changed = [name for name, value in before.items() if vars(owner).get(name, before) is not value]
    changed += [name for name in vars(owner) if name not in before]
    for name in changed:
        if name in before:
            object.__setattr__(owner, name, before[name])
        else:
            object.__delattr__(owner, name)
    return [f"{type(owner).__name__}.{name}" for name in changed]


def _check_aliasing(outputs: tuple, out_names: tuple[str, ...], inputs: list[tuple[str, Tensor]],
                    earlier: tuple = ()) -> None:
    tensors = [(n, o) for n, o in zip(out_names, outputs) if isinstance(o, Tensor)]
    for i, (name, out) in enumerate(tensors):
        for in_name, x in inputs:
            if _overlaps(out, x):
                raise KernelFault(f"output {name!r} shares memory with input {in_name!r}")
        for other_name, other in tensors[i + 1:]:
            if _overlaps(out, other):
                raise KernelFault(f"outputs {name!r} and {other_name!r} share memory")
        for old_name, old in zip(out_names, earlier):
            if isinstance(old, Tensor) and _overlaps(out, old):
                raise KernelFault(f"output {name!r} is the memory of an earlier call's output {old_name!r} "
                                  "(a cached result)")


def _check_unchanged(tensors: list[tuple[str, Tensor]], digests: dict[str, bytes], when: str) -> None:
    for name, t in tensors:
        if _digest(t) != digests[name]:
            raise KernelFault(f"the kernel modified its input {name!r} ({when})")


def _line(text: str) -> str:
    """A reason on one line, whatever an exception's message held."""
    return " ".join(text.split())


def _describe(value: float) -> str:
    return f"{value:.3g}"


def _compare(report: KernelReport, limit: Tolerance, quantity: str, actual, expected: Tensor, fill: float) -> None:
    """Compare one quantity and keep the worst figures per quantity in the report."""
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
        raise KernelFault(f"{quantity} is wrong: {int(bad.sum())} of {bad.numel()} values are not finite where the "
                          f"reference's are (fresh memory held {_describe(fill)}: left unwritten, or an overflow)")
    rms = rel_rms_error(actual, expected)
    peak = expected.double().abs().max().clamp_min(1e-30) if expected.numel() else torch.tensor(1.0)
    worst = float((actual.double() - expected.double()).abs().max() / peak) if expected.numel() else 0.0
    errors, max_errors = report.errors, report.max_errors
    errors[quantity] = max(errors.get(quantity, 0.0), rms)
    max_errors[quantity] = max(max_errors.get(quantity, 0.0), worst)
    if rms <= limit.rms and worst <= limit.max:
        return
    what = (f"relative RMS error {rms:.2e} exceeds {limit.rms:.0e}" if not rms <= limit.rms
            else f"relative max error {worst:.2e} exceeds {limit.max:.0e}")
    stale = (actual == fill) & (expected != fill)
    left = (f"; {int(stale.sum())} of {stale.numel()} values hold this case's fill of fresh memory "
            f"({_describe(fill)}): left unwritten") if stale.any() else ""
    raise KernelFault(f"{quantity} is wrong: {what}{left}")


class _Check:
    """What one check holds fixed: the kernel, the reference, the limits and the launch log."""

    def __init__(self, spec: KernelSpec, kernel: Callable, report: KernelReport, log: LaunchLog,
                 generator: torch.Generator, device: str):
        self.spec, self.kernel, self.report, self.log = spec, kernel, report, log
        self.reference, self.inputs = spec.reference, spec.inputs
        self.generator, self.device = generator, device
        self.where = ""  # the call running now, for the reason of a failure
        self.limits = INTERPRETED_LIMITS if device == "cpu" and interpreted() else LIMITS

    def limit(self, quantity: str, dtype: torch.dtype, gradient: bool) -> Tolerance:
        forward, backward = self.limits.get(dtype, self.limits[torch.float32])
        base = backward if gradient else forward
        declared = self.spec.tolerance.get(quantity)
        return Tolerance(min(base.rms, declared), base.max) if declared is not None else base

    def draw(self, shape: Shape, distribution: str) -> tuple[tuple, list[str], dict[str, bytes]]:
        args = self.inputs(shape, self.generator, self.device)
        if not isinstance(args, tuple):
            raise TypeError(f"inputs() must return a tuple of arguments, got {type(args).__name__}")
        args = distribute(args, distribution, self.generator)
        names = _argument_names(self.reference, len(args))
        return args, names, {n: _digest(a) for n, a in zip(names, args) if isinstance(a, Tensor)}

    def call(self, args: tuple, fill: float, backward: bool = False) -> tuple[tuple, tuple]:
        """The kernel's call under a watch (with ``backward``, ``args`` = (outputs, inputs, cotangents) of
        its backward instead); returns the result and a copy taken the moment it returned, or raises the
        first fault."""
        tensors = [a for a in (args[1] if backward else args) if isinstance(a, Tensor)]
        dirty_allocator([t.untyped_storage().nbytes() for t in tensors], self.device, fill)
        if not backward:
            self.log.foreign = 0
        state, declared = dict(vars(self)), dict(vars(self.spec))
        raised, result, returned = None, None, ()
        with CallWatch(self.log, fill, tensors, self.reference, backward) as watch:
            try:
                result = torch.autograd.grad(*args, allow_unused=True) if backward else self.kernel(*args)
                returned = _copies(result)
            except Exception as exc:  # the kernel's own failure is a finding, not a harness error
                raised = exc
        tampered = _restore(self, state) + _restore(self.spec, declared)
        self.log.settle()
        if watch.findings:
            raise KernelFault(watch.findings[0])
        if tampered:
            raise KernelFault(f"changed the harness's {tampered[0]} during the call (put back)")
        if fault := self.log.foreign_fault():
            raise KernelFault(fault)
        if raised is not None:
            where = "the kernel's backward" if backward else "the kernel"
            raise KernelFault(f"{where} raised {type(raised).__name__}: {str(raised)[:300]}") from None
        if backward:
            if fault := watch.fault():
                raise KernelFault(fault)
            return result, returned
        outputs = _as_outputs(result, self.spec.outputs, "the kernel", plain=True)
        if fault := watch.fault() or watch.unwritten(outputs, self.spec.outputs):
            raise KernelFault(fault)
        return outputs, returned

    def run(self, args: tuple, pristine: tuple, names: list[str], digests: dict[str, bytes], fill: float,
            earlier: tuple = (), gradients: bool = True) -> tuple:
        """One checked call on ``args`` (clones of ``pristine``): the checks 2-6 of the module's docstring
        (5 only with ``gradients``)."""
        spec = self.spec
        outputs, returned = self.call(args, fill)
        inputs = [(n, a) for n, a in zip(names, args) if isinstance(a, Tensor)]
        kept = [(n, p) for n, p in zip(names, pristine) if isinstance(p, Tensor)]
        _check_unchanged(inputs, digests, "forward")
        _check_unchanged(kept, digests, "forward: the harness's own copy")
        _check_aliasing(outputs, spec.outputs, inputs + kept, earlier)

        ref_args = _clones(pristine, spec.grad)
        expected = _as_outputs(self.reference(*ref_args), spec.outputs, "the reference")
        for name, out, ref in zip(spec.outputs, returned, expected):
            if ref is None:
                if out is not None:
                    raise KernelFault(f"output {name!r} is a Tensor where the reference returns None")
                continue
            _compare(self.report, self.limit(name, ref.dtype, False), name, out, ref, fill)
        if spec.grad and gradients:
            self.gradients(args, names, digests, outputs, ref_args, expected, fill)
        for name, out, before in zip(spec.outputs, outputs, returned):
            if isinstance(out, Tensor) and not _same_bits(out, before):
                raise KernelFault(f"output {name!r} changed after the kernel returned: work left running on "
                                  "another thread or stream wrote it later")
        if fault := self.log.foreign_fault():
            raise KernelFault(fault)
        return outputs

    def gradients(self, args: tuple, names: list[str], digests: dict[str, bytes], outputs: tuple,
                  ref_args: tuple, expected: tuple, fill: float) -> None:
        spec = self.spec
        differentiable = [i for i, ref in enumerate(expected) if isinstance(ref, Tensor) and ref.requires_grad]
        wrt = [i for i, a in enumerate(ref_args) if isinstance(a, Tensor) and a.requires_grad]
        if not differentiable or not wrt:
            return
        cotangents = [torch.randn(expected[i].shape, generator=self.generator).to(expected[i])
                      for i in differentiable]
        ref_grads = torch.autograd.grad([expected[i] for i in differentiable], [ref_args[i] for i in wrt],
                                        cotangents, allow_unused=True)
        for i in differentiable:
            if not (isinstance(outputs[i], Tensor) and outputs[i].requires_grad):
                raise KernelFault(f"output {spec.outputs[i]!r} carries no gradient (not connected to autograd)")
        _, grads = self.call(([outputs[i] for i in differentiable], [args[i] for i in wrt], cotangents), fill,
                             backward=True)
        _check_unchanged([(n, a) for n, a in zip(names, args) if isinstance(a, Tensor)], digests, "backward")
        for i, grad, ref_grad in zip(wrt, grads, ref_grads):
            if ref_grad is None:
                continue
            if grad is None:
                raise KernelFault(f"no gradient reaches input {names[i]!r}")
            quantity = f"grad_{names[i]}"
            _compare(self.report, self.limit(quantity, ref_grad.dtype, True), quantity, grad, ref_grad, fill)

    def repeat(self, pristine: tuple, names: list[str], first: tuple, fill: float) -> None:
        """The call again on equal inputs in new tensors: the same bits, in new memory, after launches."""
        outputs, _ = self.call(_clones(pristine, self.spec.grad), fill)
        for name, out, old in zip(self.spec.outputs, outputs, first):
            if isinstance(out, Tensor) and isinstance(old, Tensor):
                if _overlaps(out, old):
                    raise KernelFault(f"output {name!r} is the memory of an earlier call's output (a cached result)")
                if not _same_bits(out, old):
                    differ = int((_bytes(out) != _bytes(old)).sum()) if out.shape == old.shape else out.numel()
                    raise KernelFault(f"output {name!r} differs between two identical runs ({differ} bytes differ)")


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


def _run_case(check: _Check, case: Case, config: CheckConfig, draw: int, label: str) -> None:
    """Every call of one case and input draw; ``check.where`` says which call runs, for the reason."""
    distribution = case.distribution if draw == 0 else \
        DISTRIBUTIONS[(DISTRIBUTIONS.index(case.distribution) + draw) % len(DISTRIBUTIONS)]
    check.where = f"{label}: {case.describe(distribution)}"
    pristine, names, digests = check.draw(case.shape, distribution)
    fill = fill_value(case.fill, case.draw, [a for a in pristine if isinstance(a, Tensor)])
    check.where += f", fresh memory filled with {_describe(fill)}"
    args = _clones(pristine, check.spec.grad)
    outputs = check.run(args, pristine, names, digests, fill)
    check.report.cases += 1
    if case.repeat:
        check.where += ", repeated call"
        check.repeat(pristine, names, outputs, fill)
    if case.redraw or config.redraw_all:
        check.where = f"{label}, in-place redraw: {case.describe(case.redistribution)}"
        pristine, names, digests = check.draw(case.shape, case.redistribution)
        fill = fill_value(case.refill, 1 - case.draw, [a for a in pristine if isinstance(a, Tensor)])
        check.where += f", fresh memory filled with {_describe(fill)}"
        check.run(_overwrite(args, pristine), pristine, names, digests, fill, earlier=outputs, gradients=False)
        check.report.cases += 1


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
    plan = case_plan(spec.shapes, spec.chunk, seed, hidden_seed, config.edges, config.hidden, config.budget)
    with torch.enable_grad(), LaunchLog() as log:
        check = _Check(spec, kernel, report, log, torch.Generator().manual_seed(seed), device)
        for index, case in enumerate(plan, 1):
            for draw in range(config.seeds):
                label = f"case {index} of {len(plan)}" + (f", draw {draw + 1}" if config.seeds > 1 else "")
                try:
                    _run_case(check, case, config, draw, label)
                except KernelFault as fault:
                    report.status, report.reason = "mismatch", _line(f"kernel {spec.name!r}: {fault} ({check.where})")
                    return report
                except Exception as exc:  # inputs() or the reference failed: the declaration is broken
                    report.status = "spec"
                    report.reason = _line(f"kernel {spec.name!r}: {type(exc).__name__}: {str(exc)[:300]} "
                                          f"({check.where})")
                    return report
    return report


def check_declared(spec: KernelSpec, source: str | None = None, filename: str = "design.py", device: str = "cpu",
                   seed: int = 0, hidden_seed: int | None = None, config: CheckConfig = CheckConfig(),
                   archs: tuple[str, ...] = DEFAULT_ARCHS) -> KernelReport:
    """Check a declared kernel of either kind: a Python/Triton kernel with ``check_kernel``; CUDA
    source by compiling it for ``archs`` first (errors and resources reported on any machine), then,
    only on a GPU, with ``check_kernel`` on the NVRTC-compiled kernel behind ``spec.cuda.launch``
    (its launches counted like Triton's)."""
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
    kernel = functools.partial(spec.cuda.launch, counted(load_kernel(spec.cuda.source, spec.cuda.entry)))
    report = check_kernel(spec, source, filename, device, seed, hidden_seed, config, kernel=kernel)
    report.notes.update(notes)
    return report
