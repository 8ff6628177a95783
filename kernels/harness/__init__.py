"""The kernel harness: checks a declared kernel against its reference, and times it on a GPU.

- ``check``: correctness on many cases, forward and gradients, with inputs that must stay unchanged,
  outputs that must be fresh, unaliased and the same bits on a second run, and cached results caught.
- ``cases``: the plan of a check (shapes, input distributions, the fill of fresh memory), drawn from
  the check's seed and a hidden seed: declared shapes, chunk edges, a long T, several sequences and
  heads, head sizes of 16 to 64 and odd ones.
- ``watch``: what a call does at run time: its Triton launches, the torch ops it runs, the threads it
  starts, what it reads or replaces; ``poison``: fresh memory filled with a value per case.
- ``scan``: a static scan of the kernel's host code for fallbacks, calls into the reference or into
  torch for the core computation, streams, threads and ways around the scan itself.
- ``timing``: GPU timing (warm-up, CUDA events cross-checked with host time, L2 flush, median,
  roofline floor, clocks that cannot be patched); ``flops``: analytic counts used on a CPU and for
  that floor.
- ``cuda``: compiling CUDA C++ kernels with nvcc and reading ptxas's resource report.

Nothing here imports the evaluator; the evaluator turns a failed report into ``kernel-mismatch``.
Importing this package chooses Triton's interpreter on a machine without a GPU (``kernels.runtime``),
so a process that will check kernels should import it before anything imports triton.
"""

from kernels.harness.check import CheckConfig, KernelReport, check_declared, check_kernel
from kernels.runtime import use_interpreter_without_gpu

use_interpreter_without_gpu()

__all__ = ["CheckConfig", "KernelReport", "check_declared", "check_kernel"]
