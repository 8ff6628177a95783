"""The offline coder: renders a proposal's design-space point; after a failed check, simplifies it.

A rendered point passes the check tier by construction, so feedback means the point met a setting
the space does not model (a larger tier, a tighter budget). The coder then drops the option most
likely to blame for the named failure and renders again, counting attempts per proposal.
"""

from __future__ import annotations

import json
from dataclasses import replace

from agents.base import Context, Draft, Proposal
from agents.offline.render import render
from agents.offline.space import canonical, describe, is_valid, point_name, repair, validate

# (choice, simpler value), most suspect first, per failure status; DEFAULT_ORDER for any other status.
DEFAULT_ORDER: tuple[tuple[str, object], ...] = (
    ("memories", 1), ("delta_steps", 1), ("levels", "single"), ("rotary", "none"), ("feature_map", "identity"),
    ("key_dim", "head"), ("beta", "sigmoid"), ("out_norm", "rmsnorm"), ("gate", "logsigmoid16"), ("hybrid", "none"),
)
SIMPLIFICATIONS: dict[str, tuple[tuple[str, object], ...]] = {
    "params": (("memories", 2), ("memories", 1), ("delta_steps", 1), ("key_dim", "half"),
               ("out_gate", "none")),
    "recurrent-mismatch": (("rotary", "none"), ("delta_steps", 1), ("memories", 1),
                           ("feature_map", "identity"), ("out_norm", "rmsnorm")),
    "nan": (("out_norm", "rmsnorm"), ("beta", "sigmoid"), ("feature_map", "identity"),
            ("gate", "logsigmoid16"), ("delta_steps", 1)),
    "init-loss": (("out_norm", "rmsnorm"), ("feature_map", "identity"), ("beta", "sigmoid"), ("memories", 1)),
    # Log-linear states take more time and grow with the sequence.
    "timeout": (("memories", 1), ("delta_steps", 1), ("levels", "single"), ("attention", "swa64"), ("key_dim", "half")),
    "oom": (("memories", 1), ("delta_steps", 1), ("levels", "single"), ("attention", "swa64"), ("key_dim", "half")),
}


def failure_status(feedback: str) -> str:
    """The status a feedback line starts with ("nan: loss at ..." -> "nan")."""
    return feedback.split(":", 1)[0].strip()


def simplify(point: dict, status: str) -> tuple[dict, tuple[str, object, object] | None]:
    """(simpler valid point, (choice, old, new)) for the first applicable simplification, or (point, None)."""
    current = canonical(point)
    for choice, value in SIMPLIFICATIONS.get(status, ()) + DEFAULT_ORDER:
        if choice not in current or current[choice] == value:
            continue
        candidate = repair({**current, choice: value})
        if is_valid(candidate) and candidate != current:
            return candidate, (choice, current[choice], value)
    return current, None


class OfflineCoder:
    """Renders ``proposal.spec``; the Draft's attempt counts rewrites of the same proposal."""

    def __init__(self, kernels: bool = True) -> None:
        self.kernels = kernels  # write and declare a Triton kernel for recurrent designs (render.render)
        self.attempts: dict[str, int] = {}  # proposal key -> attempt of the last draft written for it

    @staticmethod
    def _key(proposal: Proposal) -> str:
        return json.dumps([proposal.name, list(proposal.parents), proposal.spec], sort_keys=True, default=str)

    def write(self, proposal: Proposal, context: Context, feedback: str | None = None,
              previous: Draft | None = None) -> Draft:
        if proposal.spec is None:
            raise ValueError(f"the offline coder renders design-space points; proposal {proposal.name!r} "
                             "has no spec")
        point = repair(proposal.spec) if validate(proposal.spec) else canonical(proposal.spec)
        problems = validate(point)
        if problems:
            raise ValueError(f"proposal {proposal.name!r} is not a valid point: {'; '.join(problems)}")
        attempt = 1
        if feedback is not None:
            attempt = (previous.attempt if previous is not None else self.attempts.get(self._key(proposal), 1)) + 1
            status = failure_status(feedback)
            simpler, change = simplify(point, status)
            if change is not None:
                choice, old, new = change
                named = proposal.name == point_name(point)
                note = f"attempt {attempt} after {status}: {choice} {old} -> {new}"
                proposal = replace(proposal, name=point_name(simpler) if named else proposal.name,
                                   spec=simpler, plan=f"{proposal.plan}; {note}" if proposal.plan else note)
                point = simpler
        elif proposal.spec != point:
            proposal = replace(proposal, spec=point)
        self.attempts[self._key(proposal)] = attempt
        return Draft(render(point, proposal.name, describe(point), self.kernels), proposal, attempt)
