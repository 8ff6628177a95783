"""Static safety scan of a design file.

A design may import only the modules the contract names and may not reach the file system,
processes, the network, the interpreter's internals or the evaluation protocol (seeding,
threads). The scan is a first line of defence run before any candidate code executes; the
sandbox is the second. It reports the first violation with its line number.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from kernels.ast_names import dotted, resolve

ALLOWED_IMPORTS = frozenset(
    {"torch", "math", "einops", "triton", "typing", "functools", "dataclasses", "kernels", "__future__"}
)
# Modules a design may take names from (``from M import name``) although their package is not allowed:
# ``import collections`` would bind the package, whose private names reach ``sys``.
FROM_ONLY = frozenset({"collections.abc"})

FORBIDDEN_CALLS = frozenset(
    {
        "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars", "input",
        "breakpoint", "exit", "quit", "memoryview", "setattr", "delattr",
    }
)

# Dunder attributes that lead out of the object model into frames, modules or builtins.
FORBIDDEN_DUNDERS = frozenset(
    {
        "__globals__", "__builtins__", "__subclasses__", "__bases__", "__base__", "__mro__", "__code__",
        "__closure__", "__dict__", "__class__", "__import__", "__loader__", "__spec__", "__getattribute__",
        "__reduce__", "__reduce_ex__", "__self__", "__func__", "__module__", "__wrapped__", "__defaults__",
        "__kwdefaults__", "__traceback__", "__frame__", "f_globals", "f_locals", "f_back", "gi_frame",
        "tb_frame", "co_code",
    }
)

# torch entry points that touch files, processes, the network, native code or the protocol.
FORBIDDEN_TORCH = (
    "torch.load", "torch.save", "torch.hub", "torch.utils.cpp_extension", "torch.utils.data",
    "torch.distributed", "torch.multiprocessing", "torch.ops.load_library", "torch.classes",
    "torch.compile", "torch.jit", "torch.package", "torch.set_num_threads", "torch.set_num_interop_threads",
    "torch.manual_seed", "torch.seed", "torch.random", "torch.set_default_dtype", "torch.set_default_device",
    "torch.set_grad_enabled", "torch.autograd.set_detect_anomaly", "torch.set_flush_denormal",
    "torch.use_deterministic_algorithms", "torch.backends", "torch.cuda.manual_seed", "torch._C",
    "torch._dynamo", "torch._inductor", "torch.utils.flop_counter", "torch.profiler",
    # modules torch imports for itself, and its own file readers and writers
    "torch.os", "torch.sys", "torch.from_file", "torch.serialization", "torch._utils", "torch._ops",
    "torch.storage", "torch.UntypedStorage.from_file", "torch.Tensor.tofile",
)
# Methods that read or write files whatever object they are reached through.
FORBIDDEN_METHODS = frozenset({"tofile", "fromfile", "from_file", "numpy"})


# Project modules a design must not reach: the kernel harness judges the design's own kernels.
FORBIDDEN_PROJECT = ("kernels.harness",)


@dataclass(frozen=True)
class Violation:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class _Scanner(ast.NodeVisitor):
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.aliases: dict[str, str] = {}  # local name -> imported module path

    def _flag(self, node: ast.AST, message: str) -> None:
        self.violations.append(Violation(getattr(node, "lineno", 0), message))

    def _check_module(self, node: ast.AST, module: str) -> None:
        root = module.split(".")[0]
        if root not in ALLOWED_IMPORTS:
            self._flag(node, f"import of {module!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_IMPORTS))})")
        self._check_path(node, module)

    def _check_path(self, node: ast.AST, path: str) -> None:
        for bad in FORBIDDEN_PROJECT:
            if path == bad or path.startswith(bad + "."):
                self._flag(node, f"use of {bad} is not allowed in a design (it checks the design's kernels)")
                return
        for bad in FORBIDDEN_TORCH:
            if path == bad or path.startswith(bad + "."):
                self._flag(node, f"use of {bad} is not allowed in a design")
                return

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = root

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._flag(node, "relative imports are not allowed")
            return
        module = node.module or ""
        if module not in FROM_ONLY:
            self._check_module(node, module)
        for alias in node.names:
            if alias.name == "*":
                self._flag(node, "star imports are not allowed")
                continue
            self._check_path(node, f"{module}.{alias.name}")
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in FORBIDDEN_DUNDERS:
            self._flag(node, f"access to attribute {node.attr!r} is not allowed")
        if node.attr in FORBIDDEN_METHODS:
            self._flag(node, f"use of .{node.attr} is not allowed in a design (it reaches files or numpy)")
        resolved = resolve(node, self.aliases)
        if resolved:
            self._check_path(node, resolved)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_DUNDERS or node.id in {"__builtins__", "__loader__", "__spec__"}:
            self._flag(node, f"use of {node.id!r} is not allowed")
        if node.id in self.aliases:
            self._check_path(node, self.aliases[node.id])

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            self._flag(node, f"call to {node.func.id}() is not allowed")
        if isinstance(node.func, ast.Name) and node.func.id in {"getattr", "hasattr"} and len(node.args) >= 2:
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self._flag(node, f"{node.func.id}() with a computed attribute name is not allowed")
            elif name.value.startswith("__"):
                self._flag(node, f"{node.func.id}() of a dunder attribute is not allowed")
            elif (owner := resolve(node.args[0], self.aliases)) is not None:  # getattr(torch, "save") is torch.save
                self._check_path(node, f"{owner}.{name.value}")
                if name.value in FORBIDDEN_METHODS:
                    self._flag(node, f"use of .{name.value} is not allowed in a design (it reaches files or numpy)")
        self.generic_visit(node)

    def _check_store(self, target: ast.AST) -> None:
        # Assigning into an imported module (e.g. `F.cross_entropy = ...`) patches the harness.
        if isinstance(target, ast.Attribute):
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.aliases:
                self._flag(target, f"assignment to {dotted(target)} modifies an imported module")
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._check_store(element)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_store(target)
        # `F = torch.nn.functional` makes F a name for the module, so `F.cross_entropy = ...` is caught too.
        resolved = resolve(node.value, self.aliases)
        if resolved is not None and resolved.split(".")[0] in ALLOWED_IMPORTS:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.aliases[target.id] = resolved
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_store(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_store(node.target)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self._flag(node, "global statements are not allowed")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._flag(node, "nonlocal statements are not allowed")


def scan(tree: ast.Module) -> list[Violation]:
    """Every violation in a parsed design, in source order."""
    scanner = _Scanner()
    # Imports first, so aliases are known wherever they are used.
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            scanner.visit(node)
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            scanner.visit(node)
    return sorted(set(scanner.violations), key=lambda v: v.line)
