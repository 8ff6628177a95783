"""Where Triton kernels run: compiled on a CUDA device, under Triton's interpreter otherwise.

``@triton.jit`` decides at decoration time whether a kernel is compiled or interpreted, by reading
``TRITON_INTERPRET``. A machine without a GPU cannot run a compiled kernel at all, so there the
interpreter is switched on before any kernel module is decorated (the library's own modules, and a
design's kernels when the evaluator loads it). A machine with a GPU is left alone.
"""

from __future__ import annotations

import os
import sys

import torch


class TritonModeError(RuntimeError):
    """triton was imported (its own library decorated) before the interpreter was chosen."""


def has_gpu() -> bool:
    return torch.cuda.is_available()


def use_interpreter_without_gpu(strict: bool = False) -> bool:
    """Set TRITON_INTERPRET=1 when no CUDA device is present; returns whether kernels are interpreted.

    triton decorates its own library functions (``tl.sum`` ...) when it is imported, so the choice
    must come first: if triton is already loaded in the other mode, interpreted kernels would fail
    deep inside their first reduction; with ``strict`` this raises ``TritonModeError`` instead.
    """
    if not has_gpu():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if strict and interpreted() and "triton.language" in sys.modules:
        from triton.runtime.interpreter import InterpretedFunction

        if not isinstance(sys.modules["triton.language"].sum, InterpretedFunction):
            raise TritonModeError("triton was imported before TRITON_INTERPRET=1 was set; import kernels.harness "
                                  "(or call kernels.runtime.use_interpreter_without_gpu) before triton")
    return interpreted()


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in {"1", "true", "on", "yes"}
