"""Duplicate detection for design files, cheapest layer first.

`code_hash` hashes the whitespace-normalized text (the few-shot architecture prompting paper's
method): it runs before anything else and catches verbatim and reformatted resubmissions.
`structural_hash` hashes the AST after removing docstrings and giving every identifier the file
binds a canonical name, so a copy with renamed variables, comments or formatting hashes the same
while a changed operator, constant or structure does not.
"""

import ast
import hashlib
import re

# Names the evaluator or Python looks up by name; renaming them changes what a design does.
CONTRACT_NAMES = frozenset({"Mixer", "forward", "init_state", "step", "KERNELS"})

# nn.Module methods that bind a member under a string name, like `self.x = ...` does.
_REGISTER_METHODS = frozenset({"register_buffer", "register_parameter", "register_module", "add_module"})

# Runs of blanks other than a lone space: matching lone spaces too would do the same job twice as slowly.
_SPACE_RUNS = re.compile(r"\t[ \t]*| [ \t]+")


def normalize_whitespace(code: str) -> str:
    """Collapse runs of spaces and tabs to one space, strip line ends, drop blank lines, use \\n endings."""
    text = _SPACE_RUNS.sub(" ", code.replace("\r\n", "\n").replace("\r", "\n"))
    return "\n".join(line for line in map(str.rstrip, text.split("\n")) if line)


def code_hash(code: str) -> str:
    """sha256 hex digest of `normalize_whitespace(code)`."""
    return hashlib.sha256(normalize_whitespace(code).encode()).hexdigest()


def structural_hash(code: str) -> str | None:
    """sha256 hex digest of the canonical AST of `code`, or None when the code cannot be parsed.

    Unparseable code (a syntax error, a null byte, nesting too deep for the parser) has no structure
    to compare: it returns None rather than raising, the caller records the design with no structural
    hash, and the check tier reports the syntax failure.

    Canonical form: docstrings and other bare string statements are removed (comments are already
    gone), argument and return annotations are dropped, and each identifier bound in the file (module,
    function and class names, arguments, assigned, loop, with, except and comprehension names, import
    aliases, and members: names bound in a class body, attributes assigned on `self`, or registered
    with `self.register_buffer("name", ...)` and friends) is renamed to a numbered placeholder in
    order of first appearance. A name is keyed by the scope that binds it, so a local renamed in one
    method but not in another still matches, while a closure variable never matches a local.
    Dunder names, `CONTRACT_NAMES`, attributes of anything but `self` (torch.nn.Linear, F.silu,
    x.transpose) and keyword argument names of calls keep their spelling, since renaming those
    changes behaviour.
    """
    try:
        tree = ast.parse(code)
        binders = _Binders()
        binders.visit(tree)
        _Canonicalizer(binders.bound, binders.declared_global, binders.members).visit(tree)
        dump = ast.dump(tree, annotate_fields=False)
    except (SyntaxError, ValueError, RecursionError):
        return None
    return hashlib.sha256(dump.encode()).hexdigest()


def _keeps_name(name: str) -> bool:
    return name in CONTRACT_NAMES or (name.startswith("__") and name.endswith("__"))


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _receiver(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    positional = [*node.args.posonlyargs, *node.args.args]
    return positional[0].arg if positional else None


def _is_bare_string(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
    )


def _registered_member(call: ast.Call, receiver: str | None) -> ast.Constant | None:
    """The string constant naming the member in `self.register_buffer("name", ...)`, if `call` is one."""
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr in _REGISTER_METHODS
        and isinstance(func.value, ast.Name)
        and func.value.id == receiver
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        return call.args[0]
    return None


class _Binders(ast.NodeVisitor):
    """First pass: the names each scope binds, and the member names of the file's classes.

    Scopes are the module, classes, functions and lambdas; a comprehension binds into the scope
    around it, which is coarser than Python but only ever merges names, never confuses them.
    """

    def __init__(self) -> None:
        self.bound: dict[ast.AST, set[str]] = {}
        self.declared_global: dict[ast.AST, set[str]] = {}
        self.members: set[str] = set()
        self._not_local: dict[ast.AST, set[str]] = {}
        self._scopes: list[ast.AST] = []
        self._receivers: list[str | None] = [None]

    def _bind(self, name: str) -> None:
        self.bound[self._scopes[-1]].add(name)

    def _push(self, node: ast.AST, names: list[str]) -> None:
        self._scopes.append(node)
        self.bound[node] = set(names)
        self.declared_global[node] = set()
        self._not_local[node] = set()

    def _pop(self) -> None:
        node = self._scopes.pop()
        self.bound[node] -= self._not_local[node]

    def visit_Module(self, node: ast.Module) -> None:
        self._push(node, [])
        self.generic_visit(node)
        self._pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        in_class = isinstance(self._scopes[-1], ast.ClassDef)
        self._bind(node.name)
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.visit(expr)
        self._push(node, [a.arg for a in _all_args(node.args)])
        self._receivers.append(_receiver(node) if in_class else self._receivers[-1])
        for stmt in node.body:
            self.visit(stmt)
        self._receivers.pop()
        self._pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in [*node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.visit(expr)
        self._push(node, [a.arg for a in _all_args(node.args)])
        self.visit(node.body)
        self._pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name)
        for expr in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expr)
        self._push(node, [])
        for stmt in node.body:
            self.visit(stmt)
        self.members |= self.bound[node]
        self._pop()

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            self._bind(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if not isinstance(node.ctx, ast.Load) and isinstance(value, ast.Name) and value.id == self._receivers[-1]:
            self.members.add(node.attr)
        self.visit(value)

    def visit_Call(self, node: ast.Call) -> None:
        registered = _registered_member(node, self._receivers[-1])
        if registered is not None:
            self.members.add(registered.value)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name.partition(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        module, scope = self._scopes[0], self._scopes[-1]
        self.bound[module].update(node.names)
        if scope is not module:
            self.declared_global[scope].update(node.names)
            self._not_local[scope].update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        # Not bound here: lookups fall through to the enclosing function.
        self._not_local[self._scopes[-1]].update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)


class _Scope:
    __slots__ = ("index", "is_class", "bound", "globals", "receiver")

    def __init__(self, index: int, is_class: bool, bound: set[str], globals_: set[str], receiver: str | None):
        self.index = index
        self.is_class = is_class
        self.bound = bound
        self.globals = globals_
        self.receiver = receiver


class _Canonicalizer(ast.NodeVisitor):
    """Second pass, in place: rename bound identifiers, strip docstrings and annotations.

    Placeholders are `%<n>`, which no Python identifier can spell, numbered by first appearance of
    (scope, name); every member shares one namespace so `self.q_proj` matches wherever it is used.
    """

    def __init__(
        self, bound: dict[ast.AST, set[str]], declared_global: dict[ast.AST, set[str]], members: set[str]
    ) -> None:
        self._bound = bound
        self._declared_global = declared_global
        self._members = members
        self._scopes: list[_Scope] = []
        self._placeholders: dict[tuple[int | str, str], str] = {}
        self._n_scopes = 0

    def _placeholder(self, key: tuple[int | str, str]) -> str:
        name = self._placeholders.get(key)
        if name is None:
            name = self._placeholders[key] = f"%{len(self._placeholders)}"
        return name

    def _binding_scope(self, name: str) -> _Scope | None:
        """The scope whose binding `name` refers to here, following Python's lookup rules."""
        innermost = self._scopes[-1]
        for scope in reversed(self._scopes):
            if scope.is_class and scope is not innermost:
                continue  # methods do not see names bound in the class body
            if name in scope.globals:
                module = self._scopes[0]
                return module if name in module.bound else None
            if name in scope.bound:
                return scope
        return None

    def _rename(self, name: str) -> str:
        if _keeps_name(name):
            return name
        scope = self._binding_scope(name)
        if scope is None:
            return name  # a builtin, or a name from a star import
        return self._placeholder(("member", name) if scope.is_class else (scope.index, name))

    def _member(self, name: str) -> str:
        return name if _keeps_name(name) or name not in self._members else self._placeholder(("member", name))

    def _is_receiver(self, node: ast.expr) -> bool:
        if not isinstance(node, ast.Name):
            return False
        scope = self._binding_scope(node.id)
        return scope is not None and scope.receiver == node.id

    def _push(self, node: ast.AST, receiver: str | None = None) -> None:
        is_class = isinstance(node, ast.ClassDef)
        bound, globals_ = self._bound[node], self._declared_global[node]
        self._scopes.append(_Scope(self._n_scopes, is_class, bound, globals_, receiver))
        self._n_scopes += 1

    def _visit_all(self, nodes: list) -> None:
        for node in nodes:
            if node is not None:
                self.visit(node)

    def _visit_body(self, body: list[ast.stmt]) -> None:
        body[:] = [stmt for stmt in body if not _is_bare_string(stmt)]
        for stmt in body:
            self.visit(stmt)

    def generic_visit(self, node: ast.AST) -> None:
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                if value and isinstance(value[0], ast.stmt):
                    self._visit_body(value)
                    continue
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def visit_Module(self, node: ast.Module) -> None:
        self._push(node)
        self.generic_visit(node)
        self._scopes.pop()

    def _enter_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, receiver: str | None):
        self._visit_all([*node.args.defaults, *node.args.kw_defaults])
        self._push(node, receiver)
        for arg in _all_args(node.args):
            arg.annotation = None
            arg.arg = self._rename(arg.arg)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        receiver = _receiver(node) if self._scopes[-1].is_class else None
        self._visit_all(node.decorator_list)
        node.name = self._rename(node.name)
        node.returns = None
        self._enter_function(node, receiver)
        self._visit_body(node.body)
        self._scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._enter_function(node, None)
        self.visit(node.body)
        self._scopes.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_all([*node.decorator_list, *node.bases, *node.keywords])
        node.name = self._rename(node.name)
        self._push(node)
        self._visit_body(node.body)
        self._scopes.pop()

    def visit_Name(self, node: ast.Name) -> None:
        node.id = self._rename(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self._is_receiver(node.value):
            node.attr = self._member(node.attr)
        self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and self._is_receiver(func.value):
            registered = _registered_member(node, func.value.id)
            if registered is not None:
                registered.value = self._member(registered.value)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                continue
            if alias.asname or "." not in alias.name:
                alias.asname = self._rename(alias.asname or alias.name)
            # `import a.b` binds `a`; its uses are renamed, the statement keeps the module path.

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        node.names = [self._rename(name) for name in node.names]

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            node.name = self._rename(node.name)
        self.generic_visit(node)
