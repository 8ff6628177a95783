"""Dotted names in Python source, for the static scans of designs (evaluator.safety) and of kernels
(kernels.harness.scan). Standard library only, so either scan can import it without torch."""

from __future__ import annotations

import ast


def dotted(node: ast.AST) -> str | None:
    """`a.b.c` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def resolve(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name with its first part replaced by what it was imported as (`F.relu` ->
    `torch.nn.functional.relu`), or None when ``node`` is not a dotted name."""
    name = dotted(node)
    if name is None:
        return None
    head, _, rest = name.partition(".")
    if head in aliases:
        return aliases[head] + ("." + rest if rest else "")
    return name
