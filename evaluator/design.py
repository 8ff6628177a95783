"""Loading a design file: parse, scan, execute, and check the contract's shape.

The module docstring's first line is the design's name, the rest its motivation.
"""

from __future__ import annotations

import ast
import inspect
import types
from dataclasses import dataclass

from evaluator.safety import scan
from evaluator.status import EvalFailure, is_oom

REQUIRED_INIT_PARAMS = ("d_model", "n_heads", "layer_idx", "n_layers")


@dataclass(frozen=True)
class DesignInfo:
    name: str
    motivation: str
    has_step: bool
    has_kernels: bool


def parse(code: str) -> ast.Module:
    try:
        return ast.parse(code, filename="design.py")
    except SyntaxError as exc:
        raise EvalFailure("syntax", f"line {exc.lineno}: {exc.msg}") from None


def describe(tree: ast.Module) -> tuple[str, str]:
    """(name, motivation) from the module docstring; empty strings when absent."""
    doc = ast.get_docstring(tree) or ""
    first, _, rest = doc.strip().partition("\n")
    return first.strip().rstrip("."), " ".join(rest.split())


def check_static(code: str) -> ast.Module:
    """Parse and scan without executing anything; raises EvalFailure(syntax | unsafe)."""
    tree = parse(code)
    violations = scan(tree)
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise EvalFailure("unsafe", f"{violations[0]}{more}")
    return tree


def load(code: str, module_name: str = "design") -> tuple[types.ModuleType, DesignInfo]:
    """Execute a scanned design file as a fresh module and check the contract's signatures."""
    tree = check_static(code)
    module = types.ModuleType(module_name)
    module.__file__ = "design.py"
    try:
        exec(compile(tree, "design.py", "exec"), module.__dict__)  # noqa: S102 - scanned, sandboxed
    except Exception as exc:
        if is_oom(exc):
            raise EvalFailure("oom", "out of memory while importing the design") from None
        raise EvalFailure("error", f"importing the design raised {type(exc).__name__}: {exc}") from None
    mixer = getattr(module, "Mixer", None)
    if mixer is None:
        raise EvalFailure("contract", "the design defines no class named Mixer")
    import torch.nn as nn

    if not (isinstance(mixer, type) and issubclass(mixer, nn.Module)):
        raise EvalFailure("contract", f"Mixer must be a subclass of torch.nn.Module, got {type(mixer).__name__}")
    params = inspect.signature(mixer.__init__).parameters
    missing = [p for p in REQUIRED_INIT_PARAMS if p not in params]
    accepts_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if missing and not accepts_kw:
        raise EvalFailure("contract", f"Mixer.__init__ lacks parameter(s) {', '.join(missing)}")
    has_step = callable(getattr(mixer, "step", None))
    has_init_state = callable(getattr(mixer, "init_state", None))
    if has_step != has_init_state:
        raise EvalFailure("contract", "a recurrent form needs both init_state(batch) and step(x_t, state)")
    name, motivation = describe(tree)
    return module, DesignInfo(name or "unnamed", motivation, has_step, hasattr(module, "KERNELS"))
