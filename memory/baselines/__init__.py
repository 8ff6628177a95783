"""The baseline designs: one self-contained design file per published mixer, seeded into every workspace.

Each file follows the design contract (a ``Mixer`` class, a module docstring with name and
motivation) and is read as source, never imported as part of this package, exactly like a
candidate design. ``points.json`` places each baseline that the offline researcher's design space
can express in that space (canonical form: the choices that matter, in the space's order); such a
baseline is recorded with its point, so the researcher can mutate and cross it like any searched
design (Kimi Delta Attention, RWKV-7 and Gated Slot Attention as the ``channel_delta``,
``generalized_delta`` and ``slots`` updates, log-linear Mamba2 as Mamba2's point with log-linear
``levels``, PaTH attention as the pure-attention point of the ``path`` attention kind, whose rendered
layer computes exactly what ``path_attention.py`` computes). Mamba2 and log-linear Mamba2 sit at the
nearest point rather than at one that computes what they compute: the space's scalar-decay layer
projects q, k and v per head where Mamba2 shares B and C across heads and writes x * dt, and it has
no D skip and gates after a per-head norm instead of norm(y * silu(z)) over the whole width. Every
baseline has a point today; one the space cannot express would be recorded without one. A workspace
that recorded PaTH attention before it had a point keeps that record without one (a baseline is
recorded once, by its code).
"""

import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent

BASELINES: dict[str, Path] = {
    path.stem: path for path in sorted(_HERE.glob("*.py")) if not path.name.startswith("_")
}

BASELINE_POINTS: dict[str, dict] = json.loads((_HERE / "points.json").read_text(encoding="utf-8"))

DEFAULT_REFERENCE = "softmax_attention"


def baseline_path(name: str) -> Path:
    """The design file of baseline ``name`` (a file stem in this folder)."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    return BASELINES[name]
