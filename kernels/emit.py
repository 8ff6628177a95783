"""Triton kernel source for a design file, so a design carries (and is checked on) its own kernel.

The offline coder writes a recurrent design's kernel into the design file instead of importing it:
the chunked Triton kernels of the design's family, copied verbatim with their comments from the
library (``kernels/triton_chunk.py`` for linear attention and the decayed forms,
``kernels/triton_chunk_delta.py`` for the delta rules), and a wrapper named for the design's op
with the naive loop's signature. The design then declares ``KERNELS = [recurrence_spec(op,
<wrapper>)]``, and the evaluator checks that copy like any kernel an LLM might write.
``recurrence_kernel_source`` is the single place that knows what a copy needs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from kernels.spec import RECURRENCES

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Family:
    source: Path  # the library module whose definitions are copied
    entry: str  # its public function, called by the design's wrapper


FAMILIES = {
    "linear_attn": Family(HERE / "triton_chunk.py", "chunked_recurrence"),
    "simple_gla": Family(HERE / "triton_chunk.py", "chunked_recurrence"),
    "gla": Family(HERE / "triton_chunk.py", "chunked_recurrence"),
    "delta_rule": Family(HERE / "triton_chunk_delta.py", "chunked_delta_recurrence"),
    "gated_delta_rule": Family(HERE / "triton_chunk_delta.py", "chunked_delta_recurrence"),
}
# Set up before any kernel is decorated, by the evaluator for designs: not copied.
SKIPPED_IMPORTS = {"kernels.runtime"}


@dataclass(frozen=True)
class KernelSource:
    code: str  # the definitions and the wrapper, without imports
    imports: tuple[tuple[str, str], ...]  # (module, name) from the project the code needs, e.g. constants


def wrapper_name(op: str) -> str:
    return f"{op}_kernel"


def _definitions(tree: ast.Module, lines: list[str]) -> list[str]:
    """Every top-level function, class and assignment, decorators and comments inside included."""
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)):
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        out.append("\n".join(lines[first - 1: node.end_lineno]))
    return out


def _project_imports(tree: ast.Module) -> tuple[tuple[str, str], ...]:
    return tuple((node.module, alias.name) for node in tree.body
                 if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kernels.")
                 and node.module not in SKIPPED_IMPORTS for alias in node.names)


def recurrence_kernel_source(op: str) -> KernelSource:
    """The kernels of ``op``'s family and ``<op>_kernel``, a wrapper with the signature of
    ``naive_recurrent_<op>``."""
    if op not in RECURRENCES:
        raise ValueError(f"no Triton kernel for {op!r}; supported: {', '.join(RECURRENCES)}")
    family = FAMILIES[op]
    text = family.source.read_text(encoding="utf-8")
    tree = ast.parse(text)
    blocks = _definitions(tree, text.splitlines())
    if not any(block.startswith(f"def {family.entry}(") for block in blocks):
        raise RuntimeError(f"{family.source.name} lacks {family.entry}")
    gates, _ = RECURRENCES[op]
    params = "".join(f"{gate}: Tensor, " for gate in gates)
    passed = "".join(f", {gate}={gate}" for gate in gates)
    name = wrapper_name(op)
    indent = " " * (len(name) + 5)
    call = f"    return {family.entry}("
    wrapper = (
        f"def {name}(q: Tensor, k: Tensor, v: Tensor, {params}scale: float | None = None,\n"
        f"{indent}initial_state: Tensor | None = None,\n"
        f"{indent}output_final_state: bool = False) -> tuple[Tensor, Tensor | None]:\n"
        f'    """The {op} recurrence on the Triton kernels above, with the contract of naive_recurrent_{op}."""\n'
        f"{call}q, k, v{passed}, scale=scale, initial_state=initial_state,\n"
        f"{' ' * len(call)}output_final_state=output_final_state)"
    )
    return KernelSource(code="\n\n\n".join([*blocks, wrapper]), imports=_project_imports(tree))
