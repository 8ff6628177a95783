"""The ``KERNELS`` contract: what a design declares about its custom kernels.

A design file may define ``KERNELS = [KernelSpec(...), ...]``. Each entry pairs a kernel (a Triton
kernel behind a Python function, or CUDA C++ source) with the PyTorch reference it must match and
an input generator. The harness in ``kernels.harness`` calls both on shapes of its own choosing
(the declared ones, edge cases, and a hidden set drawn from a seed the design never sees) and
compares outputs and gradients. For the five recurrences, ``recurrence_spec`` fills in the
reference (the naive token loop), the inputs and the operation counts, so a design only names the
op and its kernel:

    KERNELS = [recurrence_spec("gla", gla_kernel)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from kernels.recurrences import RECURRENCES

Shape = Mapping[str, int]


@dataclass(frozen=True)
class CudaSource:
    """A kernel written in CUDA C++ instead of Triton.

    ``source`` holds ``extern "C" __global__`` functions; ``entry`` names the one to launch.
    ``launch(kernel, *inputs)`` allocates the outputs and calls ``kernel(grid=..., block=...,
    args=[...])`` (the callable ``torch.cuda._compile_kernel`` returns); it has the reference's
    signature after the first argument. The harness compiles ``source`` with nvcc on any machine
    (errors, registers, spills, shared memory) and runs ``launch`` only where a GPU is present.
    """

    source: str
    entry: str
    launch: Callable


@dataclass(frozen=True)
class KernelSpec:
    """One declared kernel and how to check it.

    kernel, reference: same signature, return a Tensor or a tuple of Tensors (None allowed where
      the reference returns None). ``kernel`` is None when ``cuda`` is given.
    inputs(shape, generator, device) -> tuple of positional arguments for both; tensors in it
      are drawn from ``generator``. ``shape`` maps dimension names (B, H, T, K, V) to sizes.
    shapes: the shapes the design expects; the harness adds edge cases and hidden ones.
    outputs: a name per returned value, used in error reports ("o", "final_state").
    grad: also compare gradients of every floating-point tensor input.
    chunk: the kernel's block length in T, so that T = chunk - 1, chunk, chunk + 1 are tested.
    tolerance: per-quantity relative RMS limits ("o", "grad_q", ...); they can only tighten the
      harness's own limits, never loosen them.
    flops, bytes: analytic counts for one forward call at a shape (for throughput and the roofline
      floor under timing).
    """

    name: str
    kernel: Callable | None
    reference: Callable
    inputs: Callable[[Shape, torch.Generator, str], tuple]
    shapes: tuple[Shape, ...] = ({"B": 1, "H": 2, "T": 20, "K": 16, "V": 16},)
    outputs: tuple[str, ...] = ("o",)
    grad: bool = True
    chunk: int = 16
    tolerance: Mapping[str, float] = field(default_factory=dict)
    flops: Callable[[Shape], int] | None = None
    bytes: Callable[[Shape], int] | None = None
    cuda: CudaSource | None = None


def recurrence_reference(op: str) -> tuple[str, str]:
    """(module, name) of ``op``'s naive token loop: the reference ``recurrence_spec`` checks a kernel against."""
    return f"kernels.{op}.naive", f"naive_recurrent_{op}"


def _reference(op: str) -> Callable:
    """The naive token loop of ``op``, imported lazily so this module stays light."""
    import importlib

    module, name = recurrence_reference(op)
    return getattr(importlib.import_module(module), name)


def recurrence_inputs(op: str) -> Callable[[Shape, torch.Generator, str], tuple]:
    """Inputs as the designs produce them: L2-normalized keys for the delta rules, sigmoid betas,
    log-sigmoid decays, and a random initial state so that the state path is checked too.

    Returns (q, k, v, *gates, scale=None, initial_state, output_final_state=True).
    """
    gates, per_channel = RECURRENCES[op]
    delta = "beta" in gates

    def inputs(shape: Shape, generator: torch.Generator, device: str) -> tuple:
        B, H, T, K, V = (int(shape[d]) for d in "BHTKV")

        def randn(*size: int) -> Tensor:
            return torch.randn(*size, generator=generator).to(device)

        q, k, v = randn(B, H, T, K), randn(B, H, T, K), randn(B, H, T, V)
        if delta:
            k = F.normalize(k, dim=-1)
        extra = []
        if "g" in gates:
            extra.append(F.logsigmoid(randn(B, H, T, K) if per_channel else randn(B, H, T) + 2.0))
        if delta:
            extra.append(torch.sigmoid(randn(B, H, T)))
        return (q, k, v, *extra, None, 0.5 * randn(B, H, K, V), True)

    return inputs


def recurrence_spec(op: str, kernel: Callable, chunk: int = 16, name: str | None = None,
                    shapes: tuple[Shape, ...] | None = None) -> KernelSpec:
    """A KernelSpec for a kernel of one of the five recurrences, checked against its naive loop.

    ``kernel`` has the naive op's signature: (q, k, v, *gates, scale, initial_state,
    output_final_state) -> (o, final state or None).
    """
    if op not in RECURRENCES:
        raise ValueError(f"unknown recurrence {op!r}; choose one of {', '.join(RECURRENCES)}")
    from kernels.harness.flops import recurrence_bytes, recurrence_flops

    return KernelSpec(
        name=name or op, kernel=kernel, reference=_reference(op), inputs=recurrence_inputs(op),
        shapes=shapes or ({"B": 1, "H": 2, "T": 2 * chunk + 3, "K": 16, "V": 16},),
        outputs=("o", "final_state"), grad=True, chunk=chunk,
        flops=lambda s: recurrence_flops(op, s), bytes=lambda s: recurrence_bytes(op, s),
    )
