"""What an export does with a design's ``KERNELS`` declaration.

``KERNELS`` is the evaluator's metadata: each entry pairs a kernel with the PyTorch reference it must
match, for the kernel harness to check. A standalone module has no harness, so the export leaves the
declaration out, with the ``kernels.spec`` imports that build it (``recurrence_spec`` reaches into the
harness for its operation counts). What it says is still of use: where triton is absent, each
declared kernel is bound to its reference, so a design that takes its Triton kernel on a GPU runs the
PyTorch code the kernel was checked against instead.

Two forms of entry name their kernel and reference in a way the export can read without running
anything: ``recurrence_spec(op, kernel, ...)`` (the reference is ``op``'s naive token loop) and
``KernelSpec(name, kernel, reference, ...)`` with the kernel a name the design binds. Any other entry
is left out with no fallback; launching its kernel without triton raises.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from kernels.spec import recurrence_reference

SPEC_MODULE = "kernels.spec"


class DeclarationError(ValueError):
    """The design uses ``kernels.spec`` outside its ``KERNELS`` declaration (with the line)."""


@dataclass(frozen=True)
class Fallback:
    """Bind ``kernel`` to its reference where triton is absent: a kernels block (``module``, ``name``)
    to inline, or, with ``module`` None, ``name`` is an expression of the design's own."""

    kernel: str
    module: str | None
    name: str


@dataclass(frozen=True)
class Declaration:
    statements: tuple[ast.stmt, ...]  # the KERNELS assignment and the kernels.spec imports, left out
    fallbacks: tuple[Fallback, ...]


def _is_kernels_assignment(node: ast.stmt) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return any(isinstance(t, ast.Name) and t.id == "KERNELS" for t in targets)


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _fallback(entry: ast.expr, spec_names: dict[str, str]) -> Fallback | None:
    """The fallback an entry of ``KERNELS`` declares, or None for a form the export cannot read."""
    if not (isinstance(entry, ast.Call) and isinstance(entry.func, ast.Name) and entry.func.id in spec_names):
        return None
    kernel = _argument(entry, 1, "kernel")
    if not isinstance(kernel, ast.Name):
        return None
    if spec_names[entry.func.id] == "recurrence_spec":
        op = _argument(entry, 0, "op")
        if isinstance(op, ast.Constant) and isinstance(op.value, str):
            module, name = recurrence_reference(op.value)
            return Fallback(kernel.id, module, name)
    elif spec_names[entry.func.id] == "KernelSpec" and (reference := _argument(entry, 2, "reference")) is not None:
        return Fallback(kernel.id, None, ast.unparse(reference))
    return None


def declaration(tree: ast.Module, where: str) -> Declaration:
    """The statements of ``tree`` an export leaves out, and the fallbacks its ``KERNELS`` declares."""
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == SPEC_MODULE and not n.level]
    assignments = [n for n in tree.body if _is_kernels_assignment(n)]
    spec_names = {a.asname or a.name: a.name for node in imports for a in node.names}
    inside = {id(n) for node in [*imports, *assignments] for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in spec_names and id(node) not in inside:
            raise DeclarationError(f"{where}:{node.lineno}: {SPEC_MODULE}'s {spec_names[node.id]} is used outside "
                                   "the KERNELS declaration, and a standalone module has no kernel harness")
    fallbacks = []
    for node in assignments:
        entries = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else []
        fallbacks += [f for entry in entries if (f := _fallback(entry, spec_names)) is not None]
    return Declaration(tuple(imports + assignments), tuple(fallbacks))
