"""Triton kernel source for a design file, so a design carries (and is checked on) its own kernel.

The offline coder writes a recurrent design's kernel into the design file instead of importing it:
the library's recurrence kernels (``kernels/triton_recurrence.py``, copied verbatim with their
comments) and a wrapper named for the design's op with the naive loop's signature. The design then
declares ``KERNELS = [recurrence_spec(op, <wrapper>)]``, and the evaluator checks that copy like
any kernel an LLM might write. ``recurrence_kernel_source`` is the single place that knows which
definitions a copy needs.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kernels.spec import RECURRENCES

SOURCE = Path(__file__).with_name("triton_recurrence.py")
# The definitions a design needs, in the library's order.
DEFINITIONS = ("CHUNK_SIZE", "_advance", "recurrence_fwd_kernel", "recurrence_bwd_kernel", "_block_sizes",
               "_decay_kind", "FusedRecurrence", "fused_recurrence")
# Names the copied code uses from its imports; the design file must import them.
REQUIRED_IMPORTS = ("import torch", "import triton", "import triton.language as tl", "from torch import Tensor")


def _segments(source: str) -> dict[str, str]:
    """Top-level definition name -> its source text, decorators and comments inside included."""
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        out[name] = "\n".join(lines[first - 1 : node.end_lineno])
    return out


def wrapper_name(op: str) -> str:
    return f"{op}_kernel"


def recurrence_kernel_source(op: str) -> str:
    """The code block (no imports) defining the kernels and ``<op>_kernel``, the wrapper with the
    signature of ``naive_recurrent_<op>``."""
    if op not in RECURRENCES:
        raise ValueError(f"no Triton kernel for {op!r}; supported: {', '.join(RECURRENCES)}")
    segments = _segments(SOURCE.read_text(encoding="utf-8"))
    missing = [name for name in DEFINITIONS if name not in segments]
    if missing:
        raise RuntimeError(f"{SOURCE.name} lacks {', '.join(missing)}")
    gates, _ = RECURRENCES[op]
    params = "".join(f"{gate}: Tensor, " for gate in gates)
    passed = "".join(f", {gate}={gate}" for gate in gates)
    name = wrapper_name(op)
    indent = " " * (len(name) + 5)
    wrapper = (
        f"def {name}(q: Tensor, k: Tensor, v: Tensor, {params}scale: float | None = None,\n"
        f"{indent}initial_state: Tensor | None = None,\n"
        f"{indent}output_final_state: bool = False) -> tuple[Tensor, Tensor | None]:\n"
        f'    """The {op} recurrence on the Triton kernels above, with the contract of naive_recurrent_{op}."""\n'
        f"    return fused_recurrence(q, k, v{passed}, scale=scale, initial_state=initial_state,\n"
        f"                            output_final_state=output_final_state)"
    )
    blocks = [segments["CHUNK_SIZE"]] + [segments[n] for n in DEFINITIONS[1:]] + [wrapper]
    return blocks[0] + "\n\n\n" + "\n\n\n".join(blocks[1:])
