"""The shape of generated code: indentation, line length and the lines every rendered layer shares."""

from __future__ import annotations

INDENT = "    "
LINE_LENGTH = 110

CONTRACT_ARGS = "d_model: int, n_heads: int, layer_idx: int, n_layers: int"
DIVISIBLE = [
    "if d_model % n_heads:",
    INDENT + 'raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")',
]
SMALL_INIT = [
    "def reset_parameters(self) -> None:",
    INDENT + "for module in self.modules():",
    2 * INDENT + "if isinstance(module, nn.Linear):",
    3 * INDENT + "nn.init.xavier_uniform_(module.weight, gain=2**-2.5)",
]


def indent(lines: list[str], levels: int = 1) -> list[str]:
    return [INDENT * levels + line if line else "" for line in lines]


def signature(name: str, args: str, returns: str = "") -> list[str]:
    """``def name(args)returns:`` on one line, or with the arguments on their own line when too long."""
    line = f"def {name}({args}){returns}:"
    if len(INDENT + line) <= LINE_LENGTH:
        return [line]
    return [f"def {name}(", INDENT + args, f"){returns}:"]


def join_methods(methods: list[list[str]]) -> list[str]:
    lines: list[str] = []
    for i, method in enumerate(methods):
        if i:
            lines.append("")
        lines += indent(method)
    return lines
