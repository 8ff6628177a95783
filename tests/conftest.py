"""Session-wide test setup.

Without a GPU, Triton kernels run under Triton's interpreter, which must be chosen before triton is
first imported (it decorates its own library on import); some modules import triton indirectly
(torch.utils.flop_counter), so the choice is made here, before any test module is collected.
"""

from kernels.runtime import use_interpreter_without_gpu

use_interpreter_without_gpu()
