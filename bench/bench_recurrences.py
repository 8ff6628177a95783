"""Time the chunked recurrences against causal softmax attention on one CPU thread.

For each op and shape: the median fwd+bwd time of the chunked form, of
torch.nn.functional.scaled_dot_product_attention(is_causal=True) on the same q, k, v, and their
ratio. SDPA and the op are timed alternately so that load from other processes hits both alike.
The backward is driven by a dense random output gradient, as in training (`o.sum().backward()`
would pass a stride-0 gradient that sends some matmuls down slow paths). Every op must first
match its naive token loop; no time is printed for one that does not.

Run: PYTHONPATH=. python bench/bench_recurrences.py [--reps 15] [--ops delta_rule,gla]
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from kernels.delta_rule import chunk_delta_rule, naive_recurrent_delta_rule
from kernels.gated_delta_rule import chunk_gated_delta_rule, naive_recurrent_gated_delta_rule
from kernels.gla import chunk_gla, naive_recurrent_gla
from kernels.linear_attn import chunk_linear_attn, naive_recurrent_linear_attn
from kernels.simple_gla import chunk_simple_gla, naive_recurrent_simple_gla
from kernels.utils import rel_rms_error

SHAPES = [(64, 128), (32, 256)]  # (B, T)
H, K, V = 2, 32, 32
GATE_TOLERANCE = 1e-4


def make_inputs(B: int, T: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs as the baseline designs produce them: L2-normalized keys for the delta rules,
    sigmoid betas, log-sigmoid gates (GLA's divided by 16, as in the GLA paper)."""
    gen = torch.Generator().manual_seed(seed)
    raw = {
        "q": torch.randn(B, H, T, K, generator=gen),
        "k": torch.randn(B, H, T, K, generator=gen),
        "v": torch.randn(B, H, T, V, generator=gen),
        "g": F.logsigmoid(torch.randn(B, H, T, generator=gen) + 3),
        "gk": F.logsigmoid(torch.randn(B, H, T, K, generator=gen)) / 16,
        "beta": torch.sigmoid(torch.randn(B, H, T, generator=gen)),
        "do": torch.randn(B, H, T, V, generator=gen),
    }
    raw["k_unit"] = F.normalize(raw["k"], dim=-1)
    return {name: t.requires_grad_(name != "do") for name, t in raw.items()}


def op_calls(x: dict[str, torch.Tensor], **kw) -> dict[str, tuple[Callable, Callable]]:
    """name -> (chunked call, naive call), each returning the output o; kw go to the chunked op."""
    q, k, ku, v, g, gk, beta = x["q"], x["k"], x["k_unit"], x["v"], x["g"], x["gk"], x["beta"]
    return {
        "linear_attn": (lambda: chunk_linear_attn(q, k, v, **kw)[0],
                        lambda: naive_recurrent_linear_attn(q, k, v)[0]),
        "simple_gla": (lambda: chunk_simple_gla(q, k, v, g, **kw)[0],
                       lambda: naive_recurrent_simple_gla(q, k, v, g)[0]),
        "gla": (lambda: chunk_gla(q, k, v, gk, **kw)[0],
                lambda: naive_recurrent_gla(q, k, v, gk)[0]),
        "delta_rule": (lambda: chunk_delta_rule(q, ku, v, beta, **kw)[0],
                       lambda: naive_recurrent_delta_rule(q, ku, v, beta)[0]),
        "gated_delta_rule": (lambda: chunk_gated_delta_rule(q, ku, v, g, beta, **kw)[0],
                             lambda: naive_recurrent_gated_delta_rule(q, ku, v, g, beta)[0]),
    }


def sdpa_call(x: dict[str, torch.Tensor]) -> Callable:
    return lambda: F.scaled_dot_product_attention(x["q"], x["k"], x["v"], is_causal=True)


def fwd_bwd(forward: Callable, do: torch.Tensor) -> Callable[[], None]:
    return lambda: forward().backward(do)


def time_pair(a: Callable[[], None], b: Callable[[], None], reps: int) -> tuple[float, float]:
    """Median milliseconds of a and b, run alternately after a few warm-up calls each."""
    for _ in range(3):
        a(), b()
    times_a, times_b = [], []
    for _ in range(reps):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a) * 1e3, statistics.median(times_b) * 1e3


def gate_errors() -> dict[str, float]:
    """rel_rms_error of each chunked op against its naive loop on a small input (T odd)."""
    x = make_inputs(2, 77, seed=1)
    with torch.no_grad():
        return {name: rel_rms_error(chunk(), naive()) for name, (chunk, naive) in op_calls(x).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--ops", default="", help="comma-separated subset of ops (default: all)")
    parser.add_argument("--chunk-size", type=int, default=None, help="override every op's default")
    args = parser.parse_args()
    torch.set_num_threads(1)

    errors = gate_errors()
    wanted = [name for name in errors if not args.ops or name in args.ops.split(",")]
    print(f"torch {torch.__version__}, 1 thread, H={H} K={K} V={V}, fwd+bwd median of {args.reps}")
    print(f"{'op':18s} {'B x T':>9s} {'chunk ms':>9s} {'sdpa ms':>8s} {'ratio':>6s}  {'gate err':>8s}")
    for B, T in SHAPES:
        x = make_inputs(B, T)
        calls = op_calls(x, **({} if args.chunk_size is None else {"chunk_size": args.chunk_size}))
        sdpa = fwd_bwd(sdpa_call(x), x["do"])
        for name in wanted:
            if errors[name] > GATE_TOLERANCE:
                print(f"{name:18s} {B:>4d} x {T:<4d} FAILED its gate: rel err {errors[name]:.1e}, not timed")
                continue
            chunk_ms, sdpa_ms = time_pair(fwd_bwd(calls[name][0], x["do"]), sdpa, args.reps)
            print(f"{name:18s} {B:>4d} x {T:<4d} {chunk_ms:9.1f} {sdpa_ms:8.1f} {chunk_ms / sdpa_ms:6.2f}"
                  f"  {errors[name]:8.1e}")
        if "delta_rule" not in wanted:
            continue
        naive_ms, sdpa_ms = time_pair(fwd_bwd(calls["delta_rule"][1], x["do"]), sdpa, reps=3)
        print(f"{'delta_rule naive':18s} {B:>4d} x {T:<4d} {naive_ms:9.1f} {sdpa_ms:8.1f} {naive_ms / sdpa_ms:6.2f}"
              "  (token loop, reference point)")


if __name__ == "__main__":
    main()
