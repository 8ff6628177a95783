"""Error figures of the Triton recurrence kernels against their float32 naive loops, and on a GPU their
speed against flash-linear-attention.

For each op and shape: the relative RMS error of the forward output and of every input gradient,
for the chunked Triton kernel (``triton_<op>``, tl.dot within a chunk) and, for comparison, the
token-by-token Triton kernel (``fused_recurrent_<op>``) and the chunked PyTorch form, all against the
naive token loop in float32. On a CPU the kernels run under Triton's interpreter, so only errors and the
analytic FLOP/byte counts are printed. On a GPU, each kernel that passed its gate (the harness's
float32 limits) is timed fwd+bwd (``kernels.harness.timing``: warm-up, L2 flush, CUDA events
checked against host time, roofline floor) next to flash-linear-attention's chunk kernel on the
same inputs when ``fla`` is importable, and the time ratios ours / fla are printed.

Run: python bench/bench_kernels.py [--ops gla,delta_rule] [--shapes 1x2x64x32x32]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kernels.harness  # noqa: E402, F401 - chooses Triton's interpreter on a CPU before triton is imported
from kernels.delta_rule import chunk_delta_rule
from kernels.delta_rule.triton import fused_recurrent_delta_rule, triton_delta_rule
from kernels.gated_delta_rule import chunk_gated_delta_rule
from kernels.gated_delta_rule.triton import fused_recurrent_gated_delta_rule, triton_gated_delta_rule
from kernels.gla import chunk_gla
from kernels.gla.triton import fused_recurrent_gla, triton_gla
from kernels.harness.check import LIMITS
from kernels.harness.flops import recurrence_bytes, recurrence_flops
from kernels.harness.timing import TimingError, time_kernel
from kernels.linear_attn import chunk_linear_attn
from kernels.linear_attn.triton import fused_recurrent_linear_attn, triton_linear_attn
from kernels.simple_gla import chunk_simple_gla
from kernels.simple_gla.triton import fused_recurrent_simple_gla, triton_simple_gla
from kernels.spec import RECURRENCES, recurrence_inputs, recurrence_spec
from kernels.utils import rel_rms_error

# op -> (chunked Triton, token-by-token Triton, chunked PyTorch)
OPS: dict[str, tuple[Callable, Callable, Callable]] = {
    "linear_attn": (triton_linear_attn, fused_recurrent_linear_attn, chunk_linear_attn),
    "simple_gla": (triton_simple_gla, fused_recurrent_simple_gla, chunk_simple_gla),
    "gla": (triton_gla, fused_recurrent_gla, chunk_gla),
    "delta_rule": (triton_delta_rule, fused_recurrent_delta_rule, chunk_delta_rule),
    "gated_delta_rule": (triton_gated_delta_rule, fused_recurrent_gated_delta_rule, chunk_gated_delta_rule),
}
FORMS = ("chunked", "fused")
CPU_SHAPES = ["1x2x33x16x16", "2x2x64x32x32"]
GPU_SHAPES = ["8x8x1024x64x64", "4x16x2048x128x128"]


def parse_shape(text: str) -> dict[str, int]:
    values = [int(x) for x in text.split("x")]
    if len(values) != 5:
        raise ValueError(f"a shape is BxHxTxKxV, got {text!r}")
    return dict(zip("BHTKV", values))


def errors(op: str, fn: Callable, shape: dict, device: str) -> dict[str, float]:
    """Relative RMS error of o and of each input gradient of ``fn`` against the naive loop."""
    reference = recurrence_spec(op, fn).reference
    args = recurrence_inputs(op)(shape, torch.Generator().manual_seed(0), device)
    names = ["q", "k", "v", *RECURRENCES[op][0], "initial_state"]
    results = []
    for f in (fn, reference):
        leaves = [a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args]
        o, _ = f(*leaves[:-3], scale=None, initial_state=leaves[-2], output_final_state=False)
        o.backward(torch.randn(o.shape, generator=torch.Generator().manual_seed(1)).to(o))
        tensors = [a for a in leaves if isinstance(a, torch.Tensor)]
        results.append((o.detach(), [t.grad for t in tensors]))
    (o, grads), (o_ref, grads_ref) = results
    out = {"o": rel_rms_error(o, o_ref)}
    out.update({f"d{n}": rel_rms_error(g, r) for n, g, r in zip(names, grads, grads_ref)})
    return out


def fla_call(op: str) -> Callable | None:
    """flash-linear-attention's chunk kernel for ``op`` in our (B, H, T, .) layout, or None."""
    try:
        import fla.ops.delta_rule as fla_delta
        import fla.ops.gated_delta_rule as fla_gated_delta
        import fla.ops.gla as fla_gla
        import fla.ops.linear_attn as fla_linear
        import fla.ops.simple_gla as fla_simple
    except ImportError:
        return None
    chunk = {"linear_attn": fla_linear.chunk_linear_attn, "simple_gla": fla_simple.chunk_simple_gla,
             "gla": fla_gla.chunk_gla, "delta_rule": fla_delta.chunk_delta_rule,
             "gated_delta_rule": fla_gated_delta.chunk_gated_delta_rule}[op]

    def call(q, k, v, *gates, scale=None, initial_state=None, output_final_state=False):
        t = [x.transpose(1, 2).contiguous() for x in (q, k, v, *gates)]  # fla: (B, T, H, .)
        o, state = chunk(*t, scale=scale, initial_state=initial_state, output_final_state=output_final_state)
        return o.transpose(1, 2), state

    return call


def time_ms(fn: Callable, op: str, shape: dict) -> float:
    args = recurrence_inputs(op)(shape, torch.Generator().manual_seed(0), "cuda")
    leaves = [a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args]
    do = torch.randn(shape["B"], shape["H"], shape["T"], shape["V"], device="cuda")

    def step():
        o, _ = fn(*leaves[:-3], scale=None, initial_state=leaves[-2], output_final_state=False)
        o.backward(do)

    flops = recurrence_flops(op, shape) + recurrence_flops(op, shape, backward=True)
    nbytes = recurrence_bytes(op, shape) + recurrence_bytes(op, shape, backward=True)
    return time_kernel(step, flops=flops, nbytes=nbytes).median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default="", help="comma-separated subset of ops (default: all)")
    parser.add_argument("--shapes", default="", help="comma-separated BxHxTxKxV shapes")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shapes = [parse_shape(s) for s in (args.shapes.split(",") if args.shapes else
                                       GPU_SHAPES if device == "cuda" else CPU_SHAPES)]
    ops = [op for op in OPS if not args.ops or op in args.ops.split(",")]
    gate = LIMITS[torch.float32]
    print(f"torch {torch.__version__}, device {device}"
          + ("" if device == "cuda" else " (Triton interpreter: errors and counts only)"))
    for shape in shapes:
        label = "x".join(str(shape[d]) for d in "BHTKV")
        for op in ops:
            *kernels, torch_chunk = OPS[op]
            pytorch = errors(op, torch_chunk, shape, device)
            print(f"{op} {label}: {recurrence_flops(op, shape) / 1e6:.2f} MFLOP fwd, "
                  f"{recurrence_bytes(op, shape) / 1e6:.2f} MB; chunked PyTorch: o {pytorch['o']:.1e}")
            timed = {}
            for form, fn in zip(FORMS, kernels):
                ours = errors(op, fn, shape, device)
                worst_grad = max(v for k, v in ours.items() if k != "o")
                passed = ours["o"] <= gate[0].rms and worst_grad <= gate[1].rms
                grads = " ".join(f"{k} {v:.1e}" for k, v in ours.items() if k != "o")
                print(f"  triton {form:8s} o {ours['o']:.1e} {grads}" + ("" if passed else "  FAILED its gate"))
                if device == "cuda" and passed:
                    timed[form] = fn
            if timed:
                print_times(op, shape, timed)


def print_times(op: str, shape: dict, kernels: dict[str, Callable]) -> None:
    """fwd+bwd time of each kernel, and its ratio to flash-linear-attention's when that is installed."""
    fla = fla_call(op)
    try:
        fla_ms = time_ms(fla, op, shape) if fla is not None else None
        for form, fn in kernels.items():
            ms = time_ms(fn, op, shape)
            ratio = f", ratio ours/fla {ms / fla_ms:.2f}" if fla_ms else ""
            print(f"  time   {form:8s} fwd+bwd {ms:.3f} ms" + (f", fla {fla_ms:.3f} ms{ratio}" if fla_ms else ""))
        if fla is None:
            print("  (flash-linear-attention not installed: no ratio)")
    except TimingError as exc:
        print(f"  timing rejected: {exc}")

if __name__ == "__main__":
    main()
