"""The chunked per-channel-decay recurrences of this checkout against those of another revision, on one CPU thread.

    PYTHONPATH=. python bench/bench_delta_kernels.py [--baseline HEAD] [--reps 21] [--batch 32] [--seq-len 128]
                                                     [--steps]

chunk_rwkv7, chunk_kda, chunk_gla, chunk_gsa (32 slots) and, as a control, chunk_gated_delta_rule
(fwd+bwd, driven by a dense random output gradient) at the quick tier's MQAR shape by default (B 32, H 2,
T 128, K = V 32), with the inputs the baselines give them (GLA's and GSA's gates log-sigmoid, GSA's slot
writes standard normal). The revision's kernels/ is extracted into a temporary package and
imported beside this checkout's, and the two run alternately in one process: each repetition times
both (CPU time), and the figure that counts is the median of the per-repetition ratios this / baseline,
since load from other processes moves both alike. Each form's error in float32 against its naive token
loop in float64 (the largest rel_rms_error over the output and every input gradient) is printed beside it.
--steps also times one AdamW step of the RWKV-7, KDA, GLA and GSA baseline models (the tiers' backbone, d 64,
2 layers, 2 heads, vocabulary 256) with either revision's kernel in place.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import math
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernels.utils import rel_rms_error  # noqa: E402

H, K = 2, 32
BASE_PACKAGE = "baseline_kernels"
OPS = {  # name -> (module, chunked form, naive loop, inputs after q, k, v)
    "rwkv7": ("rwkv7", "chunk_rwkv7", "naive_recurrent_rwkv7", ("g_rwkv7", "kappa", "a")),
    "kda": ("kda", "chunk_kda", "naive_recurrent_kda", ("g", "beta")),
    "gla": ("gla", "chunk_gla", "naive_recurrent_gla", ("g",)),
    "gsa": ("gsa", "chunk_gsa", "naive_recurrent_gsa", ("s", "g")),
    "gated_delta_rule": ("gated_delta_rule", "chunk_gated_delta_rule", "naive_recurrent_gated_delta_rule",
                         ("g_head", "beta")),
}
# as the baselines call them; a revision whose form lacks a keyword runs without it (as that revision's baseline did)
KWARGS = {"rwkv7": {"scale": 1.0, "log_decay_floor": -math.exp(-0.5)}}


def baseline_kernels(rev: str, into: Path) -> str:
    """Extract kernels/ at rev as the package BASE_PACKAGE under into; its modules import each other relatively."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "kernels"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "kernels").rename(into / BASE_PACKAGE)
    sys.path.insert(0, str(into))
    return BASE_PACKAGE


def make_inputs(B: int, T: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """As the baselines produce them: RWKV-7's log-decay -e^-0.5 sigmoid(.), unit removal keys and sigmoid
    rates; KDA's and Gated DeltaNet's log-sigmoid gates, unit keys and sigmoid betas."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    raw = {
        "q": randn(B, H, T, K), "k": F.normalize(randn(B, H, T, K), dim=-1), "v": randn(B, H, T, K),
        "g": F.logsigmoid(randn(B, H, T, K) + 3), "g_head": F.logsigmoid(randn(B, H, T) + 3),
        "g_rwkv7": -math.exp(-0.5) * torch.sigmoid(randn(B, H, T, K)),
        "kappa": F.normalize(randn(B, H, T, K), dim=-1), "a": torch.sigmoid(randn(B, H, T, K)),
        "beta": torch.sigmoid(randn(B, H, T)), "s": randn(B, H, T, K), "do": randn(B, H, T, K),
    }
    return {name: x.requires_grad_(name != "do") for name, x in raw.items()}


def accepted(fn: Callable) -> Callable[[dict], dict]:
    """A filter keeping the keywords fn takes (its signature read once, not on every call)."""
    names = inspect.signature(fn).parameters
    return lambda kw: {k: v for k, v in kw.items() if k in names}


def call(fn: Callable, name: str, x: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    args = [x[n] for n in ("q", "k", "v", *OPS[name][3])]
    kw = accepted(fn)(KWARGS.get(name, {}))
    return lambda: fn(*args, **kw)[0]


def fwd_bwd(forward: Callable[[], torch.Tensor], do: torch.Tensor) -> Callable[[], None]:
    return lambda: forward().backward(do)


def max_error(fn: Callable, reference: Callable, name: str) -> float:
    """Largest rel_rms_error of fn in float32 against reference in float64, over the output and the
    input gradients, on a short batch with T odd."""
    x = {n: t.detach() for n, t in make_inputs(2, 77, seed=1).items()}
    results = []
    for f, dtype in ((fn, torch.float32), (reference, torch.float64)):
        xd = {n: t.to(dtype).requires_grad_(n != "do") for n, t in x.items()}
        o = call(f, name, xd)()
        leaves = [xd[n] for n in ("q", "k", "v", *OPS[name][3])]
        results.append([o, *torch.autograd.grad(o, leaves, xd["do"])])
    return max(rel_rms_error(a, e) for a, e in zip(*results))


def alternate(a: Callable[[], None], b: Callable[[], None], reps: int) -> tuple[list[float], list[float]]:
    """CPU seconds of a and of b, run alternately after two warm-up calls each."""
    for _ in range(2):
        a(), b()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(reps):
        for fn, out in zip((a, b), times):
            start = time.process_time()
            fn()
            out.append(time.process_time() - start)
    return times


def row(name: str, times: tuple[list[float], list[float]], *extra: str) -> str:
    base, this = times
    ratio = statistics.median(t / b for b, t in zip(base, this))
    return (f"{name:18s} {statistics.median(base) * 1e3:8.1f} {statistics.median(this) * 1e3:8.1f} {ratio:9.3f}"
            f"  {min(base) * 1e3:8.1f} {min(this) * 1e3:8.1f}" + "".join(f" {e:>8s}" for e in extra))


def kernel_table(base: str, B: int, T: int, reps: int) -> None:
    x = make_inputs(B, T)
    print(f"fwd+bwd, B {B} x H {H} x T {T}, K = V = {K}, {reps} alternate runs (CPU time, ms; ratio: median of")
    print("per-run this / base; err: float32 against the naive loop in float64)")
    print(f"{'op':18s} {'base':>8s} {'this':>8s} {'this/base':>9s}  {'base min':>8s} {'this min':>8s}"
          f" {'base err':>8s} {'this err':>8s}")
    for name, (module, chunk, naive, _) in OPS.items():
        forms = [getattr(importlib.import_module(f"{pkg}.{module}"), chunk) for pkg in (base, "kernels")]
        reference = getattr(importlib.import_module(f"kernels.{module}"), naive)
        errors = [f"{max_error(fn, reference, name):.1e}" for fn in forms]
        print(row(name, alternate(*(fwd_bwd(call(fn, name, x), x["do"]) for fn in forms), reps), *errors))


def training_step(name: str, op: str, fn: Callable, T: int) -> Callable[[], None]:
    """One AdamW step of a baseline model at the quick tier's MQAR shape, with fn as its recurrence."""
    from evaluator.design import load
    from evaluator.tasks.common import ModelShape, build_model
    from memory.baselines import BASELINES

    module, _ = load(BASELINES[name].read_text(), module_name=f"design_{name}_{id(fn)}")
    # the design's own global, read when its forward runs, given only the keywords this revision's form takes
    keep = accepted(fn)
    setattr(module, op, lambda *args, **kw: fn(*args, **keep(kw)))
    model = build_model(module.Mixer, 256, ModelShape(64, 2, 2), seed=0, device="cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randint(0, 256, (32, T), generator=gen) for _ in range(2))

    def step() -> None:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def step_table(base: str, T: int, reps: int) -> None:
    print(f"\nAdamW step of the baseline model, B 32 x T {T}, d 64, 2 layers, 2 heads (CPU time, ms)")
    print(f"{'baseline':18s} {'base':>8s} {'this':>8s} {'this/base':>9s}  {'base min':>8s} {'this min':>8s}")
    for name in ("rwkv7", "kda", "gla", "gsa"):
        module, chunk = OPS[name][:2]
        steps = [training_step(name, chunk, getattr(importlib.import_module(f"{pkg}.{module}"), chunk), T)
                 for pkg in (base, "kernels")]
        print(row(name, alternate(*steps, reps)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision whose kernels/ to compare against")
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", action="store_true", help="also time a training step of the baselines")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_kernels(args.baseline, Path(tmp))
        kernel_table(base, args.batch, args.seq_len, args.reps)
        if args.steps:
            step_table(base, args.seq_len, args.reps)


if __name__ == "__main__":
    main()
