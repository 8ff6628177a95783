"""Compiling Triton kernels for a GPU on a machine without one, for tests.

The interpreter runs what a GPU compiler rejects (tl.dot operands under 16 wide, float64, dtype
mismatches); triton.compile with an explicit target goes through ptxas and needs no GPU. It runs in
a child process, since this one has Triton in interpreter mode.
"""

import os
import subprocess
import sys
from pathlib import Path

from triton.backends import backends

ROOT = Path(__file__).parents[1]
HAS_CUDA_BACKEND = "nvidia" in backends


def compile_in_child(script: str, cache_dir: Path) -> str:
    """Run ``script`` with compiled (not interpreted) Triton; returns its stdout, raises on failure."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(cache_dir),
           "TRITON_DEFAULT_FP_FUSION": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    if run.returncode != 0:
        raise AssertionError(f"compiling failed:\n{run.stderr[-3000:]}")
    return run.stdout
