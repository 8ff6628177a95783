"""The evaluator: the shared backbone, tasks, checks, tiers, profiling and scoring.

``evaluate(code, tier, seed)`` runs one design through a tier in a sandboxed child process and
returns an ``EvalResult`` whose ``status`` is ``ok`` or a named failure (see ``STATUSES``);
``make_executor`` makes the sandbox executor that many evaluations share.

The names below load on first use: most of them need torch, and commands that only read the
experience database (``discover --help``, ``ui``, ``show``) should not pay for it.
"""

from __future__ import annotations

import importlib

from evaluator.tier_names import DEFAULT_TIER, TIER_NAMES

_LAZY = {
    "EvalResult": "evaluator.run", "evaluate": "evaluator.run", "evaluate_file": "evaluator.run",
    "make_executor": "evaluator.run",
    "STATUSES": "evaluator.status", "EvalFailure": "evaluator.status",
    "TIERS": "evaluator.tiers", "Tier": "evaluator.tiers", "get_tier": "evaluator.tiers",
}

__all__ = ["DEFAULT_TIER", "STATUSES", "TIERS", "TIER_NAMES", "EvalFailure", "EvalResult", "Tier", "evaluate",
           "evaluate_file", "get_tier", "make_executor"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'evaluator' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # cached, so later lookups bypass this function
    return value
