"""Training-step time of every baseline relative to softmax attention, on one CPU thread.

    python bench/bench_steps.py [--batch 32] [--seq-len 128] [--rounds 6] [--only NAME ...]

One AdamW step (forward, backward, update) of the tiers' backbone (d 64, 2 layers, 2 heads,
vocabulary 256) around each baseline's Mixer. The models are timed round-robin, two steps a turn,
and each keeps its fastest turn, so load from other processes hits all of them alike; the figure
that matters is the ratio to softmax attention (target: every baseline within 3x at the quick
tier's MQAR shapes, B 32 x T 128, the defaults). Smoke's shapes are --batch 64 --seq-len 64.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluator.design import load  # noqa: E402
from evaluator.tasks.common import ModelShape, build_model  # noqa: E402
from memory.baselines import BASELINES  # noqa: E402

VOCAB = 256


def trainer(name: str, batch: int, seq_len: int):
    module, _ = load(BASELINES[name].read_text())
    model = build_model(module.Mixer, VOCAB, ModelShape(64, 2, 2), seed=0, device="cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, VOCAB, (batch, seq_len)), torch.randint(0, VOCAB, (batch, seq_len))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--only", nargs="+", default=list(BASELINES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = list(dict.fromkeys(["softmax_attention", *args.only]))
    steps = {name: trainer(name, args.batch, args.seq_len) for name in names}
    best = dict.fromkeys(names, float("inf"))
    for _ in range(args.rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            step()
            best[name] = min(best[name], (time.perf_counter() - started) / 2)
    print(f"training step, B {args.batch} x T {args.seq_len}, one thread, fastest of {args.rounds} turns")
    print(f"{'baseline':<20} {'ms/step':>8} {'x softmax':>10}")
    for name in names:
        print(f"{name:<20} {best[name] * 1e3:8.1f} {best[name] / best['softmax_attention']:10.2f}")
    print(f"slowest: {max(best[n] / best['softmax_attention'] for n in names):.2f}x softmax attention")


if __name__ == "__main__":
    main()
