"""Run configuration: one frozen, validated object, merged once from defaults, an optional
TOML file and command-line flags; unknown keys fail loudly. The effective configuration is
written into the workspace with every run."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from evaluator.tiers import DEFAULT_TIER, TIERS


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class RunConfig:
    workspace: str = "runs"          # folder holding experience.db, the archive and logs
    tier: str = DEFAULT_TIER         # evaluation tier for proposals and references
    budget: int = 8                  # evaluations to spend (duplicates are free; failures count)
    seed: int = 0                    # evaluation seed and agents' random seed
    workers: int = 0                 # parallel evaluations; 0 = one per CPU core
    model: str = "offline"           # agent backend: "offline", or a litellm model string (later issue)
    executor: str = "local"          # where evaluations run: "local" (process pool)
    reference_seeds: int = 1         # seeds per baseline when references are seeded
    max_attempts: int = 3            # coder attempts per proposal when a check fails (self-debugging)
    references: tuple[str, ...] = ()  # baselines seeded as references; empty = all of them

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ConfigError(f"tier must be one of {', '.join(TIERS)}, got {self.tier!r}")
        if self.budget < 0:
            raise ConfigError(f"budget must be >= 0, got {self.budget}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if isinstance(self.references, list):
            object.__setattr__(self, "references", tuple(self.references))
        if self.reference_seeds < 1:
            raise ConfigError(f"reference_seeds must be >= 1, got {self.reference_seeds}")

    @property
    def effective_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def merge(base: RunConfig, overrides: dict) -> RunConfig:
    """``base`` with ``overrides`` applied; None values are ignored, unknown keys are errors."""
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def load(path: str | Path | None = None, **flags) -> RunConfig:
    """Defaults, then the TOML file (if any), then flags."""
    config = RunConfig()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from None
        config = merge(config, data.get("discover", data))
    return merge(config, flags)
