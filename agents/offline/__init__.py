"""The offline backend: the roles without any LLM.

The researcher searches the compositional design space of ``space`` by mutation and crossover of
recorded designs, guided by the per-choice statistics in the context; the coder renders a point as
a standalone design file (``render``); the analyst attributes an outcome to the choices that changed.
"""

from agents.base import Roles
from agents.offline.analyst import OfflineAnalyst
from agents.offline.coder import OfflineCoder
from agents.offline.researcher import OfflineResearcher, RandomResearcher

RESEARCHERS = ("search", "random")


def offline_roles(seed: int = 0, researcher: str = "search", explore: float | None = None) -> Roles:
    """The offline roles; ``researcher`` is "search" (OfflineResearcher) or "random" (RandomResearcher)."""
    if researcher == "search":
        chosen = OfflineResearcher(seed=seed, **({} if explore is None else {"explore": explore}))
    elif researcher == "random":
        if explore is not None:
            raise ValueError("explore applies to the 'search' researcher only")
        chosen = RandomResearcher(seed=seed)
    else:
        raise ValueError(f"unknown offline researcher {researcher!r}; expected one of "
                         f"{', '.join(RESEARCHERS)}")
    return Roles(researcher=chosen, coder=OfflineCoder(), analyst=OfflineAnalyst(), name="offline")


__all__ = ["OfflineAnalyst", "OfflineCoder", "OfflineResearcher", "RandomResearcher", "offline_roles"]
