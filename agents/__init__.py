"""The agent roles (researcher, coder, analyst) behind one interface, and their backends.

``make_roles("offline", seed=...)`` gives the embedded roles that need no LLM.
"""

from agents.backends import make_roles
from agents.base import (
    Analysis,
    Analyst,
    Coder,
    Context,
    DesignSummary,
    Draft,
    Outcome,
    Proposal,
    Researcher,
    Roles,
)

__all__ = ["Analysis", "Analyst", "Coder", "Context", "DesignSummary", "Draft", "Outcome", "Proposal",
           "Researcher", "Roles", "make_roles"]
