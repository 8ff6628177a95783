"""What the baseline tests share: a baseline file loaded as a module, and a mixer run token by token."""

import importlib.util
from types import ModuleType

import torch

from memory.baselines import baseline_path


def load_design(name: str) -> ModuleType:
    """memory/baselines/<name>.py as a module of its own (``baseline_<name>``)."""
    spec = importlib.util.spec_from_file_location(f"baseline_{name}", baseline_path(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_all(mixer, x: torch.Tensor) -> tuple[torch.Tensor, object]:
    """The mixer's ``step`` over every token of x (B, T, D) from its initial state: (outputs, final state)."""
    state = mixer.init_state(x.shape[0])
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state)
        outputs.append(y_t)
    return torch.stack(outputs, dim=1), state
