"""``rearrange`` and ``repeat`` with einops' pattern language, in plain torch.

Designs may use einops; an exported design must run where only torch is installed, so ``discover
export`` inlines this module in its place. It covers what designs use: named axes, parenthesized
groups, the unit axis ``1``, ``...``, and axis sizes as keywords (``rearrange(x, "b t (h d) -> b h t d",
h=4)``); for ``repeat``, new axes on the right given by keyword or as a number. Like einops it
reshapes to elementary axes, permutes, and reshapes again, so results are the same views einops
returns. ``tests/test_export.py`` checks it against einops.
"""

import math

import torch


class EinopsPatternError(ValueError):
    """A pattern this implementation cannot read, or one that does not fit the tensor."""


def _parse_side(side: str) -> list[list[str]]:
    """'b t (h d) 1 ...' -> [['b'], ['t'], ['h', 'd'], [], ['...']]; a group is a list of axis names."""
    groups: list[list[str]] = []
    current: list[str] | None = None
    for token in side.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            if current is not None:
                raise EinopsPatternError(f"nested parentheses in {side!r}")
            current = []
        elif token == ")":
            if current is None:
                raise EinopsPatternError(f"unbalanced ')' in {side!r}")
            groups.append(current)
            current = None
        else:
            if not (token.isidentifier() or token.isdigit() or token == "..."):
                raise EinopsPatternError(f"cannot read axis {token!r} in {side!r}")
            names = [] if token == "1" else [token]
            if current is None:
                groups.append(names)
            else:
                current.extend(names)
    if current is not None:
        raise EinopsPatternError(f"unbalanced '(' in {side!r}")
    return groups


def _expand_ellipsis(groups: list[list[str]], names: list[str]) -> list[list[str]]:
    out = []
    for group in groups:
        if group == ["..."]:
            out.extend([name] for name in names)
        else:
            out.append([n for axis in group for n in (names if axis == "..." else [axis])])
    return out


def _sizes(tensor: torch.Tensor, left: list[list[str]], known: dict[str, int], pattern: str) -> dict[str, int]:
    if len(left) != tensor.dim():
        raise EinopsPatternError(f"pattern {pattern!r} has {len(left)} axes on the left; the tensor has "
                                 f"{tensor.dim()} ({tuple(tensor.shape)})")
    sizes = dict(known)
    for group, length in zip(left, tensor.shape):
        unknown = [n for n in group if n not in sizes]
        fixed = math.prod(sizes[n] for n in group if n not in unknown)
        if len(unknown) > 1:
            raise EinopsPatternError(f"cannot infer the sizes of {unknown} in {pattern!r}; give all but one")
        if unknown:
            if fixed == 0 or length % fixed:
                raise EinopsPatternError(f"axis of length {length} does not split into {group} in {pattern!r}")
            sizes[unknown[0]] = length // fixed
        elif fixed != length:
            raise EinopsPatternError(f"axis {group or ['1']} should have length {fixed}, got {length} in {pattern!r}")
    return sizes


def _transform(tensor: torch.Tensor, pattern: str, known: dict[str, int], allow_new: bool) -> torch.Tensor:
    if pattern.count("->") != 1:
        raise EinopsPatternError(f"pattern needs exactly one '->': {pattern!r}")
    left_side, right_side = (_parse_side(s) for s in pattern.split("->"))
    n_ellipsis = tensor.dim() - sum(1 for g in left_side if g != ["..."])
    dots = [f"...{i}" for i in range(n_ellipsis)] if any("..." in g for g in left_side) else []
    left, right = _expand_ellipsis(left_side, dots), _expand_ellipsis(right_side, dots)
    sizes = _sizes(tensor, left, known, pattern)
    if any(n.isdigit() for g in left for n in g):
        raise EinopsPatternError(f"numbered axes other than 1 are only for new axes on the right: {pattern!r}")
    left_axes = [n for g in left for n in g]
    right_axes = [n for g in right for n in g]
    new = [n for n in right_axes if n not in left_axes]
    if sorted(set(left_axes) - set(right_axes)) or (new and not allow_new):
        raise EinopsPatternError(f"axes differ between the sides of {pattern!r}")
    for name in new:
        if not name.isdigit() and name not in sizes:
            raise EinopsPatternError(f"new axis {name!r} in {pattern!r} needs its size as a keyword")
    x = tensor.reshape([sizes[n] for n in left_axes])
    x = x.permute([left_axes.index(n) for n in right_axes if n in left_axes])
    if new:
        for position, name in enumerate(right_axes):
            if name in new:
                x = x.unsqueeze(position)
        x = x.expand([int(n) if n in new and n.isdigit() else sizes[n] if n in new else -1 for n in right_axes])
    return x.reshape([math.prod(int(n) if n.isdigit() else sizes[n] for n in g) for g in right])


def rearrange(tensor: torch.Tensor, pattern: str, **axes_lengths: int) -> torch.Tensor:
    """einops.rearrange: reorder, split and merge axes."""
    return _transform(tensor, pattern, axes_lengths, allow_new=False)


def repeat(tensor: torch.Tensor, pattern: str, **axes_lengths: int) -> torch.Tensor:
    """einops.repeat: rearrange, then broadcast new axes to the given sizes (a copy, as in einops)."""
    return _transform(tensor, pattern, axes_lengths, allow_new=True).clone()
