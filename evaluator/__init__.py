"""The evaluator: the shared backbone, tasks, checks, tiers, profiling and scoring.

``evaluate(code, tier, seed)`` runs one design through a tier in a sandboxed child process and
returns an ``EvalResult`` whose ``status`` is ``ok`` or a named failure (see ``STATUSES``).
"""

from evaluator.evaluate import EvalResult, evaluate, evaluate_file
from evaluator.status import STATUSES, EvalFailure
from evaluator.tiers import DEFAULT_TIER, TIERS, Tier, get_tier

__all__ = ["DEFAULT_TIER", "STATUSES", "TIERS", "EvalFailure", "EvalResult", "Tier", "evaluate", "evaluate_file",
           "get_tier"]
