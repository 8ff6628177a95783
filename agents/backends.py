"""The backends by name: ``make_roles`` builds the roles the configuration names.

A backend is imported only when it is chosen, so the offline roles never load the LLM client.
"""

from __future__ import annotations

from agents.base import Roles

BACKENDS = ("offline", "llm")


def make_roles(backend: str = "offline", *, seed: int = 0, **options) -> Roles:
    """The three roles of ``backend``, seeded.

    offline options: ``researcher`` ("search", the default, or "random"), ``explore`` (see
    ``OfflineResearcher``). llm options: ``settings``, ``journal`` and ``static_check`` (see
    ``agents.llm.llm_roles``). An unknown backend or option is an error.
    """
    if backend == "offline":
        from agents.offline import offline_roles

        return offline_roles(seed=seed, **options)
    if backend == "llm":
        from agents.llm import llm_roles

        return llm_roles(seed=seed, **options)
    raise ValueError(f"unknown agent backend {backend!r}; expected one of {', '.join(BACKENDS)}")
