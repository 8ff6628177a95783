"""Every kind of broken design gets its own named status and reason, in a sandboxed child;
the calling process is unaffected."""

import os
from pathlib import Path

import pytest

from evaluator import evaluate

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()

HEADER = '"""Broken design\n\nA design written to fail one check.\n"""\n\nimport torch\nimport torch.nn as nn\n\n\n'
BODY = """class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
{init}
    def forward(self, x):
{forward}
"""


def design(forward: str = "        return self.proj(x)", init: str = "", header: str = HEADER) -> str:
    return header + BODY.format(init=init, forward=forward)


CASES = {
    "syntax": ("def broken(:\n    pass\n", "syntax"),
    "future": (design("        return self.proj(torch.flip(torch.cumsum(torch.flip(x, [1]), 1), [1]))"), "causality"),
    "nan": (design("        return self.proj(x) * float('nan')"), "nan"),
    "alloc-50gb": (design(init="        self.buffer = torch.empty(50 * 2**30 // 4 * 4, dtype=torch.float32)\n"), "oom"),
    "socket": (design(header=HEADER + "import socket\n\n\n"), "unsafe"),
    "subprocess": (design(header=HEADER + "import subprocess\n\n\n"), "unsafe"),
    "os-system": (design("        __import__('os').system('true')\n        return self.proj(x)"), "unsafe"),
    "no-mixer": (HEADER + "class Layer(nn.Module):\n    pass\n", "contract"),
    "wrong-shape": (design("        return self.proj(x)[:, :-1]"), "shape"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_design_gets_named_status(case):
    code, expected = CASES[case]
    result = evaluate(code, tier="check", wall_s=60)
    assert result.status == expected, (result.status, result.reason, result.log[-2000:])
    assert result.reason


def test_endless_loop_times_out_and_caller_survives():
    code = design("        while True:\n            pass")
    result = evaluate(code, tier="check", wall_s=8)
    assert result.status == "timeout", (result.status, result.reason)
    assert result.duration_s < 30
    assert os.getpid() > 0  # still here


def test_valid_design_passes_check_tier_with_recurrent_form():
    result = evaluate(GOOD, tier="check")
    assert result.status == "ok", (result.reason, result.log[-2000:])
    assert result.name == "Tiny linear attention"
    assert result.metrics["state_size"] == 2 * (64 * 64 + 64)
    assert result.environment["isolation"]["network"]
