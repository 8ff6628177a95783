"""Exporting a design as one standalone module that needs only torch.

A design file imports the project's reference blocks (``from kernels.delta_rule import
chunk_delta_rule``) and may use einops. ``standalone(code)`` turns it into a file that runs anywhere
torch is installed:

1. the ``kernels`` modules the design reaches (following their own imports) are inlined in
   dependency order, their code verbatim, their imports hoisted to the top of the file;
2. a top-level name defined in two inlined modules, or also bound by the design, is renamed in the
   inlined copy to ``<module>_<name>`` (token by token, so comments and layout stay), and the design's
   own code is left exactly as written (a design that imported a renamed block gets an alias line);
3. einops' ``rearrange`` and ``repeat`` are replaced by ``memory.export.einops_lite``, their plain-torch
   equivalent; anything else from einops stays an import and is listed in ``requires``;
4. triton is optional: its imports are guarded, and where it is absent they name the stand-in of
   ``memory.export.triton_absent``, so the Triton kernels load but never launch. The guard stands where
   the first inlined module imported triton (after ``use_interpreter_without_gpu()``, whose choice must
   come first), or above the design where only the design imports it. The ``KERNELS`` declaration (the
   evaluator's kernel-check metadata) is left out with its ``kernels.spec`` imports, and where triton is
   absent each declared kernel is bound to its reference (``memory.export.declared``);
5. a design that reaches the kernels package's Triton modules (``kernels.triton_chunk``,
   ``kernels.triton_chunk_delta``, ``kernels.triton_recurrence``, directly or through
   ``kernels.<op>.triton``) gets, where triton is absent, each module's entry point (``chunked_recurrence``
   ...) bound to its PyTorch form from ``memory.export.torch_paths``, inlined with the blocks it uses.
   A design that launches those modules' kernels or autograd functions itself still needs triton.

``memory.export.card`` writes the header card that ``export_design`` puts in the module docstring.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from memory.export import einops_lite, torch_paths, triton_absent
from memory.export.declared import DeclarationError, Fallback, declaration

KERNELS_ROOT = Path(__file__).resolve().parent.parent.parent / "kernels"
ROOT = KERNELS_ROOT.parent  # where kernels and memory.export.torch_paths, both inlined, are found
EINOPS_LITE = ("rearrange", "repeat")
OPTIONAL = "triton"  # imported where installed; the module loads without it


class ExportError(ValueError):
    """The design uses a form of import that cannot be inlined (with the line)."""


@dataclass(frozen=True)
class Export:
    code: str
    inlined: tuple[str, ...]  # kernels (and memory.export.torch_paths) modules inlined, in order
    requires: tuple[str, ...]  # packages besides torch the file cannot load without
    optional: tuple[str, ...] = ()  # packages the file uses where installed (triton)


@dataclass(frozen=True)
class _Module:
    """A kernels module: its source, its imports split into kernels ones and the rest, and what it defines."""

    name: str
    path: Path
    source: str
    tree: ast.Module
    kernel_imports: tuple[tuple[str, str, str], ...]  # (module, name, bound name)
    defines: tuple[str, ...]

    @property
    def key(self) -> str:
        """kernels.delta_rule.chunk -> delta_rule_chunk: the prefix for a renamed name."""
        return self.name.removeprefix("kernels.").removeprefix(torch_paths.__name__ + ".").replace(".", "_")

    @property
    def has_code(self) -> bool:
        return any(not _is_import(s) and not _is_docstring(s) and not _is_all(s) for s in self.tree.body)


def _is_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.Import | ast.ImportFrom)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_all(node: ast.stmt) -> bool:
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)


def _bound_names(node: ast.stmt) -> list[str]:
    """Names a top-level statement binds in the module namespace."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
        node, ast.AnnAssign | ast.AugAssign) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")[: len(package.split(".")) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imports_kernels(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] == "kernels"
    return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "kernels" for a in node.names)


def _optional_branches(tree: ast.Module, where: str) -> list[tuple[ast.If, bool]]:
    """The `if` blocks (without `else`) that import a kernels module inside a function: optional fast
    paths, such as a Triton kernel taken on CUDA, whose fallback is the PyTorch code after them. The
    export leaves them out. Each comes with whether it is alone in its block. Any other nested import
    of kernels or einops cannot be inlined and is refused."""
    top = {id(s) for s in tree.body}
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    nested = [n for n in ast.walk(tree) if _is_import(n) and id(n) not in top]
    branches: dict[int, ast.If] = {}
    for node in nested:
        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        enclosing = parents.get(id(node))
        while enclosing is not None and not (isinstance(enclosing, ast.If) and not enclosing.orelse):
            enclosing = parents.get(id(enclosing))
        if _imports_kernels(node) and enclosing is not None:
            branches[id(enclosing)] = enclosing
        elif _imports_kernels(node) or (module or "").split(".")[0] == "einops":
            raise ExportError(f"{where}:{node.lineno}: an import of {module or '.'!r} inside a function cannot be "
                              "inlined; import it at the top of the file")
    out = []
    for branch in branches.values():
        if any(other is not branch and other.lineno <= branch.lineno and branch.end_lineno <= other.end_lineno
               for other in branches.values()):
            continue  # inside another optional branch, which goes as a whole
        siblings = next(body for field in ("body", "orelse", "finalbody")
                        if (body := getattr(parents[id(branch)], field, None)) and branch in body)
        out.append((branch, len(siblings) == 1))
    return out


def _without_branches(source: str, branches: list[tuple[ast.If, bool]]) -> str:
    """`source` with each optional branch replaced by a comment (or `pass` where the block needs a statement)."""
    lines = source.splitlines(keepends=True)
    for branch, alone in sorted(branches, key=lambda b: b[0].lineno, reverse=True):
        indent = " " * branch.col_offset
        note = (f"{'pass  ' if alone else ''}# export: an optional fast path (if {ast.unparse(branch.test)}) "
                "is left out; the PyTorch code runs on any device\n")
        lines[branch.lineno - 1: branch.end_lineno] = [indent + note]
    return "".join(lines)


@cache
def _load(name: str) -> _Module:
    """The kernels module `name` (e.g. "kernels.delta_rule"), or a module of memory.export.torch_paths, parsed."""
    parts = name.split(".")
    package_init = ROOT.joinpath(*parts, "__init__.py")
    path = package_init if package_init.exists() else ROOT.joinpath(*parts).with_suffix(".py")
    if not path.exists():
        raise ExportError(f"there is no module {name!r} in the kernels package")
    original = path.read_text(encoding="utf-8")
    source = _without_branches(original, _optional_branches(ast.parse(original, filename=str(path)), str(path)))
    tree = ast.parse(source, filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imports = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, package)
            if module.split(".")[0] == "kernels":
                imports.extend((module, a.name, a.asname or a.name) for a in node.names)
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "kernels" for a in node.names):
            raise ExportError(f"{path}:{node.lineno}: `import kernels...` cannot be inlined; use `from ... import`")
    defines = [n for s in tree.body if not _is_import(s) and not _is_all(s) for n in _bound_names(s)]
    return _Module(name, path, source, tree, tuple(imports), tuple(defines))


def _resolve(module: str, name: str) -> tuple[str, str]:
    """(defining module, name) for `name` as seen in `module`, following re-exports."""
    loaded = _load(module)
    if name in loaded.defines:
        return module, name
    for source, imported, bound in loaded.kernel_imports:
        if bound == name:
            return _resolve(source, imported)
    if ROOT.joinpath(*module.split("."), name).exists() or ROOT.joinpath(*module.split("."), f"{name}.py").exists():
        raise ExportError(f"`from {module} import {name}` imports a module; import the names it defines instead")
    raise ExportError(f"{module} defines no {name!r}")


def _closure(roots: list[str]) -> list[str]:
    """The kernels modules reachable from `roots`, each after the modules it imports from."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ExportError(f"kernels modules import each other in a cycle through {name}")
        visiting.add(name)
        for module, _, _ in _load(name).kernel_imports:
            visit(module)
        visiting.discard(name)
        order.append(name)

    for root in roots:
        visit(root)
    return order


def _rename_tokens(source: str, renames: dict[str, str]) -> str:
    """`source` with every name in `renames` replaced where it is a name, not an attribute or keyword."""
    if not renames:
        return source
    lines = source.splitlines(keepends=True)
    edits: dict[int, list[tuple[int, int, str]]] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME or tok.string not in renames:
            continue
        before = next((t for t in reversed(tokens[:i]) if t.type not in (tokenize.NL, tokenize.COMMENT)), None)
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        if before is not None and before.string == ".":
            continue  # an attribute of something else
        if after is not None and after.string == "=" and before is not None and before.string in ("(", ","):
            continue  # a keyword argument's name
        edits.setdefault(tok.start[0], []).append((tok.start[1], tok.end[1], renames[tok.string]))
    for row, row_edits in edits.items():
        line = lines[row - 1]
        for start, end, new in sorted(row_edits, reverse=True):
            line = line[:start] + new + line[end:]
        lines[row - 1] = line
    return "".join(lines)


def _strip(source: str, tree: ast.Module, drop, comments=lambda node: False,
           replace: tuple[ast.stmt, str] | None = None) -> str:
    """`source` without the top-level statements for which `drop(node)` is true (whole lines), and for
    those where `comments(node)` is also true, the comment lines right above them. `replace`, a dropped
    statement and a text, puts the text where that statement was."""
    lines = source.splitlines(keepends=True)
    dropped = set()
    for node in tree.body:
        if drop(node):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            while comments(node) and first > 1 and lines[first - 2].lstrip().startswith("#"):
                first -= 1
            dropped.update(range(first, node.end_lineno + 1))
    if replace is not None:
        node, text = replace
        dropped.discard(node.lineno)
        lines[node.lineno - 1] = text.rstrip("\n") + "\n"
    kept = [line for number, line in enumerate(lines, start=1) if number not in dropped]
    return re.sub(r"\n{3,}", "\n\n\n", "".join(kept)).strip("\n") + "\n"


class _Imports:
    """The hoisted imports of the design and the inlined modules, deduplicated, with clashes refused."""

    def __init__(self):
        self.future: set[str] = set()
        self.plain: dict[str, str] = {}  # bound name -> statement
        self.from_: dict[str, set[str]] = {}  # module -> {"name" | "name as alias"}
        self.targets: dict[str, str] = {}  # bound name -> what it refers to
        self.guarded: dict[str, list[str]] = {}  # statement -> the names it binds, imported inside `try`
        self.einops_lite = False
        self.requires: set[str] = set()

    def add(self, node: ast.Import | ast.ImportFrom, where: str) -> None:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            self.future.update(a.name for a in node.names)
            return
        for alias in node.names:
            if ((node.module or "") if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0] == OPTIONAL:
                self._guard(node, alias, where)
                continue
            if isinstance(node, ast.ImportFrom):
                module, bound = node.module or "", alias.asname or alias.name
                if module == "einops" and alias.name in EINOPS_LITE and bound == alias.name:
                    self._bind(bound, "memory.export.einops_lite." + alias.name, where, node.lineno)
                    self.einops_lite = True
                    continue
                self._bind(bound, f"{module}.{alias.name}", where, node.lineno)
                self.from_.setdefault(module, set()).add(alias.name if bound == alias.name else
                                                         f"{alias.name} as {bound}")
            else:
                module = alias.name
                bound = alias.asname or module.split(".")[0]
                self._bind(bound, module if alias.asname else bound, where, node.lineno)
                statement = f"import {module}" + (f" as {alias.asname}" if alias.asname else "")
                self.plain[statement] = statement
            if module.split(".")[0] == "einops":
                self.requires.add("einops")

    def _guard(self, node: ast.Import | ast.ImportFrom, alias: ast.alias, where: str) -> None:
        if isinstance(node, ast.ImportFrom):
            bound = alias.asname or alias.name
            self._bind(bound, f"{node.module}.{alias.name}", where, node.lineno)
            statement = f"from {node.module} import {alias.name}" + (f" as {bound}" if bound != alias.name else "")
        else:
            bound = alias.asname or alias.name.split(".")[0]
            self._bind(bound, alias.name if alias.asname else bound, where, node.lineno)
            statement = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
        self.guarded.setdefault(statement, [])
        if bound not in self.guarded[statement]:
            self.guarded[statement].append(bound)

    def is_guarded(self, node: ast.stmt) -> bool:
        """Whether `node` is a top-level import of triton, which the guard takes the place of."""
        if isinstance(node, ast.ImportFrom):
            return (node.module or "").split(".")[0] == OPTIONAL and not node.level
        return isinstance(node, ast.Import) and any(a.name.split(".")[0] == OPTIONAL for a in node.names)

    def triton(self) -> str:
        """A name the guard binds: triton, or the stand-in where triton is absent."""
        return next(names[0] for names in self.guarded.values())

    def guard(self, stand_in: str) -> str:
        """The guarded imports: inside `try`, and bound to `stand_in` where triton is not installed."""
        statements = sorted(self.guarded, key=lambda s: (s.startswith("from "), s))
        bound = list(dict.fromkeys(name for s in statements for name in self.guarded[s]))
        return "\n".join(["try:", *(f"    {s}" for s in statements),
                          "except ImportError:  # not installed: the Triton kernels below load but cannot launch",
                          f"    {' = '.join(bound)} = {stand_in}()"])

    def _bind(self, bound: str, target: str, where: str, line: int) -> None:
        known = self.targets.setdefault(bound, target)
        if known != target:
            raise ExportError(f"{where}:{line}: `{bound}` would mean both {known} and {target} in one file")

    def lines(self) -> list[str]:
        """isort's layout: __future__, then the standard library, then the rest."""
        groups: list[list[str]] = [[], [], []]
        if self.future:
            groups[0].append(f"from __future__ import {', '.join(sorted(self.future))}")
        for statement in sorted(self.plain.values()):
            groups[_group(statement.split()[1])].append(statement)
        for module, names in sorted(self.from_.items()):
            groups[_group(module)].append(f"from {module} import {', '.join(sorted(names))}")
        return [line for group in groups if group for line in [*group, ""]][:-1]


def _group(module: str) -> int:
    return 1 if module.split(".")[0] in sys.stdlib_module_names else 2


def _docstring_literal(text: str) -> str:
    return '"""' + text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').rstrip() + '\n"""'


def standalone(code: str, card: str | None = None) -> Export:
    """The design `code` as a module that needs only torch (and the standard library) to load and run;
    see the module docstring. `card` is appended to the design's docstring."""
    try:
        tree = ast.parse(code, filename="design.py")
    except SyntaxError as exc:
        raise ExportError(f"design.py:{exc.lineno}: {exc.msg}") from None
    branches = _optional_branches(tree, "design.py")
    if branches:
        code = _without_branches(code, branches)
        tree = ast.parse(code, filename="design.py")
    try:
        declared = declaration(tree, "design.py")
    except DeclarationError as exc:
        raise ExportError(str(exc)) from None
    left_out = {id(n) for n in declared.statements}
    imports, wanted = _Imports(), []  # wanted: (module, name, bound name) the design imports from kernels
    for node in tree.body:
        if id(node) in left_out:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kernels" and not node.level:
            wanted.extend((node.module, a.name, a.asname or a.name) for a in node.names)
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "kernels" for a in node.names):
            raise ExportError(f"design.py:{node.lineno}: `import kernels...` cannot be inlined; "
                              "write `from kernels.<module> import <name>`")
        elif _is_import(node):
            imports.add(node, "design.py")
    # Without triton a declared kernel is its reference; with no triton import there is nothing to fall back from.
    fallbacks = declared.fallbacks if imports.guarded else ()
    roots = [m for m, _, _ in wanted] + [f.module for f in fallbacks if f.module]
    closure = _closure(list(dict.fromkeys(roots)))
    # The Triton entry points reached, each with its PyTorch form, inlined for where triton is absent.
    triton_modules = [m for m in closure if m in torch_paths.STANDS_IN]
    if triton_modules:
        closure = _closure(list(dict.fromkeys(roots + [torch_paths.module_for(m) for m in triton_modules])))
    modules = [_load(m) for m in closure]
    with_code = [m for m in modules if m.has_code]
    for module in with_code:
        for node in module.tree.body:
            if _is_import(node) and not (isinstance(node, ast.ImportFrom) and node.level) and \
                    not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kernels")):
                imports.add(node, str(module.path.relative_to(KERNELS_ROOT.parent)))
    design_names = {n for s in tree.body if not _is_import(s) and id(s) not in left_out for n in _bound_names(s)}
    taken = design_names | set(imports.targets)
    shims = [shim for shim, used in ((einops_lite, imports.einops_lite), (triton_absent, imports.guarded)) if used]
    for shim in shims:
        shim_tree, shim_names = _shim(shim)
        for node in shim_tree.body:
            if _is_import(node):
                imports.add(node, _shim_path(shim))
        if clash := sorted(design_names & shim_names):
            raise ExportError(f"the design defines {', '.join(clash)}, which the export's {_shim_path(shim)} "
                              "also defines; rename them in the design")
        taken |= shim_names
    flat = _flat_names(with_code, taken)
    sections = [f"# --- {_SHIM_TITLES[shim]} ({_shim_path(shim)})\n\n{_shim_body(shim)}" for shim in shims]
    # The guard goes where the first inlined module imports triton, as its kernels are decorated at load.
    guard_at = next((node for module in with_code for node in module.tree.body if imports.is_guarded(node)), None)
    for module in with_code:
        local = {n: flat[(module.name, n)] for n in module.defines}
        local |= {bound: flat[_resolve(source, name)] for source, name, bound in module.kernel_imports}
        source = _rename_tokens(module.source, {k: v for k, v in local.items() if k != v})
        here = any(node is guard_at for node in module.tree.body)
        body = _strip(source, module.tree, lambda n: _is_import(n) or _is_docstring(n) or _is_all(n),
                      replace=(guard_at, imports.guard("MissingTriton")) if here else None)
        title = (ast.get_docstring(module.tree) or "").strip().splitlines()
        relative = module.path.relative_to(KERNELS_ROOT.parent).as_posix()
        sections.append(f"# --- {relative}" + (f": {title[0][:100]}" if title else "") + "\n\n" + body)
    if triton_modules:
        sections.append(_torch_paths_note(triton_modules, flat, imports))
    aliases = [f"{bound} = {flat[_resolve(module, name)]}" for module, name, bound in wanted
               if bound != flat[_resolve(module, name)]]
    docstring = (ast.get_docstring(tree, clean=False) or "").strip()
    if card:
        docstring = f"{docstring}\n\n{card.strip()}" if docstring else card.strip()
    design_body = _strip(code, tree, lambda n: _is_import(n) or (_is_docstring(n) and n is tree.body[0])
                         or id(n) in left_out, comments=lambda n: id(n) in left_out)
    parts = [(_docstring_literal(docstring) + "\n\n" if docstring else "") + "\n".join(imports.lines())]
    if sections:
        parts.append("# Reference blocks from Discover's kernels package, inlined so this file needs only torch.\n\n"
                     + "\n\n".join(sections).rstrip("\n") + ("\n\n" + "\n".join(aliases) if aliases else ""))
    if imports.guarded and guard_at is None:
        parts.append("# --- triton, where it is installed\n\n" + imports.guard("MissingTriton"))
    parts.append("# --- the design\n\n" + design_body)
    if declared.statements:
        parts.append(_declaration_note(fallbacks, flat, imports))
    text = "\n\n\n".join(p.strip("\n") for p in parts if p) + "\n"
    optional = (OPTIONAL,) if imports.guarded else ()
    return Export(text, tuple(m.name for m in with_code), tuple(sorted(imports.requires)), optional)


def _declaration_note(fallbacks: tuple[Fallback, ...], flat: dict[tuple[str, str], str], imports: _Imports) -> str:
    """What stands in the export for the KERNELS declaration: a note, and the fallbacks where triton is absent."""
    lines = ["# export: the KERNELS declaration, which the evaluator checks each kernel against, is left out."]
    if fallbacks:
        triton = imports.triton()
        lines += ["# Without triton, each declared kernel is the PyTorch reference it was checked against.",
                  f"if isinstance({triton}, MissingTriton):"]
        lines += [f"    {f.kernel} = {flat[_resolve(f.module, f.name)] if f.module else f.name}" for f in fallbacks]
    return "\n".join(lines)


def _torch_paths_note(triton_modules: list[str], flat: dict[tuple[str, str], str], imports: _Imports) -> str:
    """Where triton is absent, each Triton entry point reached is bound to its PyTorch form."""
    lines = ["# --- without triton, the Triton entry points above run as their PyTorch forms "
             f"({Path(torch_paths.__file__).parent.relative_to(ROOT).as_posix()})", "",
             f"if isinstance({imports.triton()}, MissingTriton):"]
    for module in triton_modules:
        entry, stand_in = torch_paths.STANDS_IN[module]
        lines.append(f"    {flat[(module, entry)]} = {flat[(torch_paths.module_for(module), stand_in)]}")
    return "\n".join(lines)


def _flat_names(modules: list[_Module], taken: set[str]) -> dict[tuple[str, str], str]:
    """(module, name) -> the name it has in the flat file: itself unless two modules define it or the
    design (or an import) already uses it, then `<module key>_<name>`."""
    counts: dict[str, int] = {}
    for module in modules:
        for name in set(module.defines):
            counts[name] = counts.get(name, 0) + 1
    flat = {}
    for module in modules:
        for name in module.defines:
            flat[(module.name, name)] = name if counts[name] == 1 and name not in taken else f"{module.key}_{name}"
    if len(set(flat.values())) != len(flat) or set(flat.values()) & taken:
        raise ExportError("inlining the kernels modules would give two blocks the same name")
    return flat


_SHIM_TITLES = {einops_lite: "einops' rearrange and repeat in plain torch",
                triton_absent: "a stand-in for triton where it is not installed"}


def _shim_path(shim) -> str:
    return Path(shim.__file__).relative_to(KERNELS_ROOT.parent).as_posix()


@cache
def _shim(shim) -> tuple[ast.Module, frozenset[str]]:
    """A module of memory.export that the export inlines, parsed, and the names it defines."""
    tree = ast.parse(Path(shim.__file__).read_text(encoding="utf-8"))
    return tree, frozenset(n for s in tree.body if not _is_import(s) and not _is_docstring(s) for n in _bound_names(s))


def _shim_body(shim) -> str:
    return _strip(Path(shim.__file__).read_text(encoding="utf-8"), _shim(shim)[0],
                  lambda n: _is_import(n) or _is_docstring(n))
