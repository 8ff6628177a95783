"""The kernel harness: checks a declared kernel against its reference, and times it on a GPU.

- ``check``: correctness on many shapes (declared, edge and hidden), forward and gradients, with
  poisoned uninitialized memory and checks for mutated inputs, aliased outputs and cached results.
- ``scan``: a static scan of the kernel's host code for fallbacks, calls into the reference or into
  torch for the core computation, streams and threads.
- ``timing``: GPU timing (warm-up, CUDA events cross-checked with host time, L2 flush, median,
  roofline floor); ``flops``: analytic counts used on a CPU and for that floor.
- ``cuda``: compiling CUDA C++ kernels with nvcc and reading ptxas's resource report.

Nothing here imports the evaluator; the evaluator turns a failed report into ``kernel-mismatch``.
Importing this package chooses Triton's interpreter on a machine without a GPU (``kernels.runtime``),
so a process that will check kernels should import it before anything imports triton.
"""

from kernels.harness.check import CheckConfig, KernelReport, check_declared, check_kernel
from kernels.runtime import use_interpreter_without_gpu

use_interpreter_without_gpu()

__all__ = ["CheckConfig", "KernelReport", "check_declared", "check_kernel"]
