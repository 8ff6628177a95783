"""Static scan of a declared kernel's code: is the kernel really the kernel?

Numbers alone cannot tell a Triton kernel from a wrapper that calls the reference, computes the
result with torch, or tries the kernel and falls back to PyTorch when it raises. So the harness
reads the code the kernel reaches: starting from the declared callable, every function and class
of the design file it names, transitively. Device code (``@triton.jit``) may compute anything;
host code may allocate, reshape and launch, but not:

- ``try`` / ``except`` (a fallback path; a kernel that fails should fail),
- name the reference or one of the project's reference ops (``naive_*``, ``chunk_*``, ``*_step``),
- call torch beyond allocation, dtype and shape helpers (``torch.matmul``, ``F.*``, ...), call a
  computing tensor method (``.matmul``, ``.cumsum``, ``.exp``, ``.__matmul__``, ``torch.Tensor.mm``, ...),
  use the ``@`` operator, ``operator`` or numpy, or read tensor values (``.tolist()``, ``.item()``),
- create CUDA streams or graphs, or use threads,
- reach past the scan (``getattr`` with a computed name, ``importlib``, ``__import__``, ``sys.modules``,
  ``gc``, ``inspect``, ``eval``) or assign attributes of imported modules (a patched timer).

The scan is the first line only: what it cannot see (an alias bound outside a function, an op it does
not list) the run-time watch (``watch``) catches while the kernel runs.
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from kernels.ast_names import dotted, resolve

# torch names host code may use: allocation, dtypes and devices, shape helpers, the autograd base.
ALLOWED_TORCH = frozenset({
    "torch.empty", "torch.empty_like", "torch.empty_strided", "torch.zeros", "torch.zeros_like", "torch.ones",
    "torch.ones_like", "torch.full", "torch.full_like", "torch.arange", "torch.Tensor", "torch.Size",
    "torch.device", "torch.dtype", "torch.is_tensor", "torch.is_floating_point", "torch.promote_types",
    "torch.finfo", "torch.iinfo", "torch.get_default_dtype", "torch.autograd", "torch.autograd.Function",
    "torch.no_grad", "torch.cuda.is_available", "torch.cuda.current_device", "torch.cuda.device",
    "torch.cuda.get_device_capability", "torch.float16", "torch.bfloat16", "torch.float32", "torch.float64",
    "torch.float", "torch.half", "torch.double", "torch.int32", "torch.int64", "torch.long", "torch.int",
    "torch.bool", "torch.uint8", "torch.int8", "torch.int16",
})
# Tensor methods that compute; allocation, views, copies and dtype moves are allowed.
COMPUTING_METHODS = frozenset({
    "matmul", "mm", "bmm", "baddbmm", "addmm", "addbmm", "addmv", "mv", "dot", "einsum", "tensordot", "outer",
    "kron", "cumsum", "cumprod", "cummax", "logcumsumexp", "sum", "mean", "prod", "exp", "exp2", "expm1",
    "log", "log1p", "softmax", "log_softmax", "sigmoid", "tanh", "tril", "triu", "tril_", "triu_", "mul", "mul_",
    "add", "add_", "sub", "sub_", "div", "div_", "addcmul", "addcmul_", "addcdiv", "pow", "sqrt", "rsqrt",
    "solve_triangular", "inverse", "cholesky", "masked_fill", "masked_fill_", "where", "scatter_add",
    "index_add", "index_add_", "conv1d", "linear", "norm", "amax", "max", "min", "clamp", "cross",
})
ARITHMETIC_DUNDERS = frozenset({
    f"__{op}__" for base in ("matmul", "mul", "add", "sub", "truediv", "floordiv", "pow", "mod", "neg", "and", "or",
                            "xor") for op in (base, "r" + base, "i" + base)})
READ_METHODS = frozenset({"tolist", "numpy", "item"})
HOST_COMPUTE_MODULES = frozenset({"numpy", "operator", "scipy"})
INTROSPECTION = frozenset({"gc", "inspect", "importlib", "ctypes", "builtins", "sys.modules", "sys._getframe"})
INTROSPECTION_BUILTINS = frozenset({"__import__", "globals", "vars", "eval", "exec", "__builtins__"})
THREAD_NAMES = frozenset({"threading", "Thread", "ThreadPoolExecutor", "ProcessPoolExecutor", "multiprocessing",
                          "concurrent", "asyncio", "_thread"})
STREAM_NAMES = frozenset({"Stream", "ExternalStream", "stream", "set_stream", "CUDAGraph", "graph", "graphs"})
EINOPS_ALLOWED = frozenset({"einops.rearrange", "einops.repeat", "einops.pack", "einops.unpack"})
DEVICE_DECORATORS = frozenset({"jit", "autotune", "heuristics"})


@dataclass(frozen=True)
class Finding:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class KernelScanError(ValueError):
    """The declared kernel cannot be located in the source (a lambda, a builtin, another file)."""


def _is_reference_op(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf.startswith(("naive_", "chunk_")) or leaf.endswith("_step")


def _module_aliases(tree: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                    alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    return {node.name: node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _is_device(node: ast.AST) -> bool:
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = dotted(target) or ""
        if name.rsplit(".", 1)[-1] in DEVICE_DECORATORS:
            return True
    return False


class _HostScanner(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str], forbidden_names: set[str], device: bool):
        self.aliases, self.forbidden_names, self.device = aliases, forbidden_names, device
        self.findings: list[Finding] = []
        self.names: set[str] = set()  # every name used, to follow into other definitions

    def flag(self, node: ast.AST, message: str) -> None:
        self.findings.append(Finding(getattr(node, "lineno", 0), message))

    def visit_Try(self, node: ast.AST) -> None:
        self.flag(node, "try/except in kernel code: a fallback path hides a failing kernel")
        self.generic_visit(node)

    visit_TryStar = visit_Try

    def visit_Name(self, node: ast.Name) -> None:
        self.names.add(node.id)
        if node.id in self.forbidden_names:
            self.flag(node, f"kernel code uses the reference {node.id!r}")
        elif node.id in THREAD_NAMES:
            self.flag(node, f"kernel code uses {node.id!r} (threads are not allowed)")
        elif node.id in INTROSPECTION_BUILTINS and node.id not in self.aliases:
            self.flag(node, f"kernel code uses {node.id} (reaching past the scan is not allowed)")
        else:
            self._check_path(node, self.aliases.get(node.id))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        path = resolve(node, self.aliases)
        if path is not None:
            self._check_path(node, path, imported=(dotted(node) or "").split(".")[0] in self.aliases)
            # the chain's root is checked here; only visit it for name collection
            root = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name):
                self.names.add(root.id)
                if root.id in self.forbidden_names:
                    self.flag(node, f"kernel code uses the reference {root.id!r}")
            return
        self.generic_visit(node)

    def _check_path(self, node: ast.AST, path: str | None, imported: bool = True) -> None:
        """``imported``: the path starts at an imported name (not a local that shares a module's name)."""
        if not path:
            return
        root = path.split(".")[0]
        if root == "kernels" and _is_reference_op(path):
            self.flag(node, f"kernel code uses the reference op {path}")
        elif imported and any(path == name or path.startswith(name + ".") for name in INTROSPECTION):
            self.flag(node, f"kernel code uses {path} (reaching past the scan is not allowed)")
        elif any(word in THREAD_NAMES for word in path.split(".")):
            self.flag(node, f"kernel code uses {path} (threads are not allowed)")
        elif path.startswith("torch.cuda.") and path.split(".")[2] in STREAM_NAMES:
            self.flag(node, f"kernel code uses {path} (streams and graphs are not allowed: timing and "
                            "ordering belong to the harness)")
        elif self.device:
            return
        elif root == "torch" and not any(path == ok or path.startswith(ok + ".") for ok in ALLOWED_TORCH):
            self.flag(node, f"host code calls {path}: the kernel must compute the result itself")
        elif path.startswith("torch.Tensor.") and path.split(".")[2] in COMPUTING_METHODS | ARITHMETIC_DUNDERS:
            self.flag(node, f"host code calls {path}: the kernel must compute the result itself")
        elif imported and any(path == name or path.startswith(name + ".") for name in HOST_COMPUTE_MODULES):
            self.flag(node, f"host code calls {path}: the kernel must compute the result itself")
        elif root == "einops" and path not in EINOPS_ALLOWED:
            self.flag(node, f"host code calls {path}: the kernel must compute the result itself")

    def visit_Call(self, node: ast.Call) -> None:
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if not self.device and method in COMPUTING_METHODS | ARITHMETIC_DUNDERS:
            if (called := resolve(node.func, self.aliases)) is None or not called.startswith(("triton.", "tl.")):
                self.flag(node, f"host code calls .{method}(): the kernel must compute the result itself")
        elif not self.device and method in READ_METHODS:
            self.flag(node, f"host code reads tensor values with .{method}(): the kernel must compute the result "
                            "itself")
        if isinstance(node.func, ast.Name) and node.func.id in {"getattr", "setattr", "delattr"} and node.args:
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.flag(node, f"kernel code calls {node.func.id} with a computed name (the scan cannot follow it)")
            elif (owner := resolve(node.args[0], self.aliases)) is not None:
                if node.func.id != "getattr" and (dotted(node.args[0]) or "").split(".")[0] in self.aliases:
                    self.flag(node, f"kernel code assigns {owner}.{name.value}: patching modules is not allowed")
                self._check_path(node, f"{owner}.{name.value}",
                                 imported=(dotted(node.args[0]) or "").split(".")[0] in self.aliases)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            owner = dotted(target.value) if isinstance(target, ast.Attribute) else None
            if owner is not None and owner.split(".")[0] in self.aliases:
                self.flag(node, f"kernel code assigns {resolve(target, self.aliases)}: patching modules is not allowed")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.MatMult) and not self.device:
            self.flag(node, "host code multiplies matrices with @: the kernel must compute the result itself")
        self.generic_visit(node)


def kernel_roots(kernel: Callable, filename: str) -> list[str]:
    """Names of the top-level definitions in ``filename`` the declared kernel starts from.

    A function, a class (its ``apply`` or an instance's ``__call__``), or a partial of one. Raises
    KernelScanError when the kernel is not defined in that file.
    """
    target = kernel
    while isinstance(target, functools.partial):
        target = target.func
    owner = getattr(target, "__self__", None)
    if inspect.isclass(owner):  # SomeFunction.apply
        target = owner
    elif not (inspect.isfunction(target) or inspect.isclass(target)) and callable(target):
        target = type(target)
    code = getattr(target, "__code__", None)
    if code is not None:
        where = code.co_filename
        if target.__name__ == "<lambda>":
            raise KernelScanError("a kernel must be a named function or class, not a lambda")
    else:
        module = inspect.getmodule(target)
        where = getattr(module, "__file__", None) if module is not None else None
        if where is None and target.__module__ == "design":
            where = filename
    if where != filename:
        raise KernelScanError(f"the kernel {getattr(target, '__qualname__', target)!r} is not defined in the design "
                              f"({where or 'no source file'})")
    return [target.__qualname__.split(".")[0]]


def scan_kernel(source: str, roots: list[str], reference: Callable | None = None) -> list[Finding]:
    """Findings in the code reachable from ``roots`` (top-level names in ``source``), in line order."""
    tree = ast.parse(source)
    definitions = _definitions(tree)
    aliases = _module_aliases(tree)
    forbidden = {name for name, path in aliases.items() if path.startswith("kernels.") and _is_reference_op(path)}
    if reference is not None:
        ref_name = getattr(reference, "__name__", None)
        if ref_name in definitions:
            forbidden.add(ref_name)
        forbidden |= {name for name, path in aliases.items() if ref_name and path.endswith("." + ref_name)}
    missing = [r for r in roots if r not in definitions]
    if missing:
        raise KernelScanError(f"no top-level definition named {', '.join(missing)} in the design")
    findings: list[Finding] = []
    seen: set[str] = set()
    queue = list(roots)
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        scanner = _HostScanner(aliases, forbidden, device=_is_device(definitions[name]))
        node = definitions[name]
        for child in (node.body if isinstance(node, ast.ClassDef) else [node]):
            scanner.visit(child)
        findings += scanner.findings
        queue += [n for n in scanner.names if n in definitions and n not in seen]
    return sorted(set(findings), key=lambda f: (f.line, f.message))
