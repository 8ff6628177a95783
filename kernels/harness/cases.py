"""The cases a kernel is checked on: shapes, input distributions and the fill of fresh memory.

A check draws its plan from the check's seed and a hidden seed the design never sees, so a kernel cannot
know its shapes in advance. Whatever the draw, a plan with ``edges`` holds:

- the declared shapes, with the spec's own inputs, then overwritten in place with another draw;
- T = 1, chunk - 1, chunk and chunk + 1, and a long T beyond max(chunk, 64) that is a multiple of
  neither;
- a batch of two or more sequences with two or more heads;
- head sizes K and V drawn independently, from 16, 32 and 64 and from sizes that are not powers of two;
- every input distribution and every fill of fresh memory, once there are as many cases as kinds.

A dimension varies only where the declared shape names it. The batched and hidden cases keep their
cost, B * H * max(T, chunk), within ``budget``, and the edges and the long case have one sequence of
one head: Triton's interpreter on a CPU walks every program in Python, one per sequence, head and
chunk (or token), so its time grows with that cost.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import torch
from torch import Tensor

HEAD_SIZES = (16, 32, 64)
LONG_T = 64  # the long case's T exceeds this and the chunk
DISTRIBUTIONS = ("normal", "uniform", "large", "small", "sparse")
FILLS = ("nan", "inf", "zero", "constant", "scale")


@dataclass(frozen=True)
class Case:
    """One shape of a plan. ``draw`` seeds what is random per case beyond the shape (the fill's sign
    and size); ``redraw``: the inputs are then overwritten in place with a new draw and checked again
    (a kernel that caches by shape or address); ``repeat``: the kernel is called twice on equal inputs
    (bitwise determinism, and a launch every time)."""

    kind: str
    shape: dict[str, int]
    distribution: str
    fill: str
    draw: float = 0.5
    redraw: bool = False
    repeat: bool = False
    redistribution: str = "uniform"  # the redraw's distribution and fill
    refill: str = "nan"

    def describe(self, distribution: str | None = None) -> str:
        dims = " ".join(f"{k}={v}" for k, v in self.shape.items())
        return f"{self.kind}: {dims}, {distribution or self.distribution} inputs"


def _head_size(rng: random.Random) -> int:
    if rng.random() < 0.65:
        return rng.choice(HEAD_SIZES)
    size = rng.randint(3, 63)
    return size + 1 if size & (size - 1) == 0 else size


def _shape(rng: random.Random, base: dict[str, int], **dims: int) -> dict[str, int]:
    shape = dict(base)
    for dim in ("K", "V"):
        if dim in shape:
            shape[dim] = _head_size(rng)
    shape.update({dim: size for dim, size in dims.items() if dim in shape})
    return shape


def _length(rng: random.Random, low: int, high: int, *multiples: int) -> int:
    """A T in [low, high] that is a multiple of none of ``multiples`` (above 1) where the range allows."""
    high = max(low, high)
    for _ in range(50):
        T = rng.randint(low, high)
        if all(T % m for m in multiples if m > 1):
            return T
    return T


def case_plan(base_shapes, chunk: int, seed: int, hidden_seed: int, edges: bool = True, hidden: int = 2,
              budget: int = 64) -> list[Case]:
    """The plan of one check: declared cases first, then the edges, the long and the batched case, then
    ``hidden`` shapes drawn at random. The same seeds give the same plan; its length depends only on
    the declared shapes, ``chunk`` and the counts."""
    rng = random.Random(f"kernel-check:{seed}:{hidden_seed}")
    base = dict(base_shapes[0])
    drawn: list[tuple[str, dict[str, int]]] = []
    if edges and "T" in base:
        for T in sorted({T for T in (1, chunk - 1, chunk, chunk + 1) if T >= 1}):
            drawn.append(("edge", _shape(rng, base, T=T, B=1, H=1)))
        floor = max(LONG_T, chunk)
        T = _length(rng, floor + 1, floor + floor // 2, chunk, LONG_T)
        drawn.append(("long", _shape(rng, base, T=T, B=1, H=1)))
    if edges and ("B" in base or "H" in base):
        B, H = _heads(rng, base, (2, 3), (2, 3), budget, chunk)
        T = _length(rng, 2, budget // _heads_of(base, B, H), chunk)
        drawn.append(("batched", _shape(rng, base, B=B, H=H, T=T)))
    elif edges and ("K" in base or "V" in base):
        drawn.append(("heads", _shape(rng, base)))
    for _ in range(hidden):
        B, H = _heads(rng, base, (1, 2, 3), (1, 2, 3, 4), budget, chunk)
        T = _length(rng, 2, min(LONG_T + LONG_T // 2, budget // _heads_of(base, B, H)), chunk)
        drawn.append(("hidden", _shape(rng, base, B=B, H=H, T=T)))

    cases = [Case("declared", dict(s), "normal", "", redraw=True) for s in base_shapes]
    cases += [Case(kind, shape, "", "") for kind, shape in drawn]
    distributions = _spread(rng, DISTRIBUTIONS, len(cases) - len(base_shapes))
    fills = _spread(rng, FILLS, len(cases))
    plan = []
    for i, case in enumerate(cases):
        distribution = case.distribution or distributions[i - len(base_shapes)]
        plan.append(Case(case.kind, case.shape, distribution, fills[i], draw=rng.random(), redraw=case.redraw,
                         redistribution=rng.choice([d for d in DISTRIBUTIONS if d != "normal"]),
                         refill=rng.choice(FILLS)))
    repeat = min(range(len(plan)), key=lambda i: (plan[i].shape.get("T", 2) < 2, _cost(plan[i].shape, base, chunk)))
    plan[repeat] = replace(plan[repeat], repeat=True)
    return plan


def _spread(rng: random.Random, kinds: tuple[str, ...], n: int) -> list[str]:
    """n kinds, each of them once before any twice, in random order."""
    out: list[str] = []
    while len(out) < n:
        batch = list(kinds)
        rng.shuffle(batch)
        out += batch
    return out[:n]


def _heads_of(base: dict[str, int], B: int, H: int) -> int:
    return (B if "B" in base else 1) * (H if "H" in base else 1)


def _heads(rng: random.Random, base: dict[str, int], batches: tuple[int, ...], heads: tuple[int, ...], budget: int,
           chunk: int) -> tuple[int, int]:
    """(B, H) at random among those whose cost stays within ``budget``, or the smallest."""
    options = [(B, H) for B in batches for H in heads]
    affordable = [o for o in options if _cost({"B": o[0], "H": o[1]}, base, chunk) <= budget]
    return rng.choice(affordable) if affordable else options[0]


def _cost(shape: dict[str, int], base: dict[str, int], chunk: int) -> int:
    """What a case costs the interpreter, about: every sequence and head, in chunks of at least ``chunk``
    tokens (a chunked kernel walks one program per chunk, a token loop one step per token)."""
    return _heads_of(base, shape.get("B", 1), shape.get("H", 1)) * max(shape.get("T", 1), chunk)


def _domain(t: Tensor) -> str:
    """The constraint the spec's draw shows, which a new distribution must keep: unit-norm rows (L2-
    normalized keys), the unit interval (gates such as beta), one sign (log decays), or none."""
    if t.numel() == 0:
        return "free"
    x = t.detach().double()
    if x.dim() >= 1 and x.shape[-1] > 1 and bool(((x.norm(dim=-1) - 1).abs() < 1e-3).all()):
        return "unit_rows"
    low, high = float(x.min()), float(x.max())
    if low >= 0 and high <= 1:
        return "unit_interval"
    if low >= 0:
        return "nonnegative"
    if high <= 0:
        return "nonpositive"
    return "free"


def _reshaped(t: Tensor, distribution: str, generator: torch.Generator) -> Tensor:
    domain = _domain(t)
    x = t.detach().cpu()
    dtype = x.dtype
    x = x.double()

    def uniform(*size: int) -> Tensor:
        return torch.rand(size or x.shape, generator=generator, dtype=torch.float64)

    if distribution == "uniform":
        if domain == "free":
            x = (2 * uniform() - 1) * math.sqrt(3) * max(float(x.square().mean().sqrt()), 1e-3)
        elif domain == "unit_interval":
            x = uniform()
        elif domain == "unit_rows":
            x = torch.nn.functional.normalize(2 * uniform() - 1, dim=-1)
        else:
            x = uniform() * 2 * max(float(x.abs().mean()), 1e-6) * (-1 if domain == "nonpositive" else 1)
    elif distribution in ("large", "small") and domain == "free":
        # ~1e5 in float32: past float16's largest value (65504); ~1e-5: among float16's subnormals.
        top = min(5.3, math.log10(torch.finfo(dtype).max) / 7)
        exponent = top - 0.6 * float(uniform(1))
        x = x * 10 ** (exponent if distribution == "large" else -exponent)
    elif distribution == "sparse":
        keep_rate = 0.1 + 0.3 * float(uniform(1))
        keep = uniform(*x.shape[:-1], 1) if domain == "unit_rows" and x.dim() else uniform()
        keep = keep < keep_rate
        keep.view(-1)[0] = True  # never all zeros: an all-zero quantity has no relative error
        x = x * keep
    return x.to(dtype).to(t.device)


def distribute(args: tuple, distribution: str, generator: torch.Generator) -> tuple:
    """The spec's inputs redrawn from ``distribution``: normal (as the spec draws them), uniform, large
    magnitude (beyond float16's range), small (near float16's subnormals) or sparse (mostly zeros).
    Magnitudes change only for inputs without a constraint; integer tensors and other arguments stay."""
    if distribution == "normal":
        return args
    return tuple(_reshaped(a, distribution, generator) if isinstance(a, Tensor) and a.is_floating_point() else a
                 for a in args)


def fill_value(kind: str, draw: float, inputs: list[Tensor]) -> float:
    """The value fresh memory holds in a case: NaN, an infinity, zero, a random constant, or a constant at
    the inputs' own scale (what a plausible result looks like). ``draw`` in [0, 1) picks sign and size."""
    sign = 1.0 if draw < 0.5 else -1.0
    if kind == "nan":
        return float("nan")
    if kind == "inf":
        return sign * float("inf")
    if kind == "zero":
        return 0.0
    if kind == "constant":
        return sign * 10 ** (-3 + 6 * ((2 * draw) % 1.0))
    floats = [t.detach().double() for t in inputs if t.is_floating_point() and t.numel()]
    scale = max((float(t.square().mean().sqrt()) for t in floats), default=1.0)
    return sign * scale * (0.5 + 1.5 * ((2 * draw) % 1.0))
