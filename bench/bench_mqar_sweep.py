"""MQAR read as Zoology reads it: each baseline trained at several learning rates, the best kept per run.

    python bench/bench_mqar_sweep.py [--tier quick] [--seeds 51 52 53] [--lrs 1e-3 3.2e-3 1e-2 3.2e-2]
                                     [--only deltanet linear_attention ...] [--jobs 2] [--device cpu]
                                     [--out sweep.json]

Zoology sweeps the learning rate of every model and plots, per model, the run with the best validation
accuracy. A tier trains at one learning rate, so a design whose recall sets in late, or at another rate,
is read lower there than in the paper. This trains the tier's MQAR task (its data, model shape, steps,
batch and schedule; only the learning rate changes) for each baseline, seed and rate in its own process
with one compute thread, ``--jobs`` at a time, and measures accuracy on a test set drawn from a seed the
training never sees. It prints the mean ± std over seeds at each rate, the best rate per seed (Zoology's
reading) with its mean ± std, and the tier's MQAR ordering claims (``bench_orderings``) on that reading.

This trains trusted baselines in-process: it is a benchmark of the protocol, not an evaluation (a design
under search is measured from outside its process, ``evaluator.measure``). Results are kept in ``--out``;
an entry already there is not run again.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_orderings import claims, spread  # noqa: E402

from evaluator.tiers import get_tier  # noqa: E402
from memory.baselines import BASELINES  # noqa: E402

TEST_EXAMPLES = 512


def mqar_task(tier_name: str):
    tier = get_tier(tier_name)
    found = [t for t in tier.tasks if t.name == "mqar"]
    if not found:
        raise SystemExit(f"tier {tier_name} has no MQAR task")
    return tier, found[0]


def run_one(tier_name: str, name: str, seed: int, lr: float, device: str = "cpu") -> dict:
    """Train ``name`` on the tier's MQAR at ``lr`` from ``seed``; accuracy on a test set of its own seed."""
    import importlib.util
    import time

    import torch

    from evaluator.tasks.common import build_model, seed_for
    from evaluator.tasks.mqar import generate
    from evaluator.train import IGNORE, train

    torch.set_num_threads(1)
    _, task = mqar_task(tier_name)
    spec = importlib.util.spec_from_file_location(f"baseline_{name}", BASELINES[name])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = time.process_time()
    model = build_model(module.Mixer, task.spec.vocab, task.model, seed, device)
    log = train(model, *(t.to(device) for t in task.train_data(seed)), replace(task.optim, lr=lr), task.name)
    x, y = generate(task.spec, TEST_EXAMPLES, torch.Generator().manual_seed(seed_for(seed, task.name, "sweep-test")))
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(x[i:i + 64].to(device)).argmax(-1).cpu() for i in range(0, len(x), 64)])
    asked = y != IGNORE
    accuracy = (predicted[asked] == y[asked]).float().mean().item()
    return {"mqar_acc": round(accuracy, 4), "final_loss": round(log.final_loss, 4),
            "cpu_s": round(time.process_time() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[51, 52, 53])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3.2e-3, 1e-2, 3.2e-2])
    parser.add_argument("--only", nargs="+", default=["deltanet", "gated_deltanet", "linear_attention"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cuda: train on the GPU (use --jobs 1)")
    parser.add_argument("--out", type=Path, default=Path("mqar_sweep.json"))
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(BASELINES))
    if unknown:
        raise SystemExit(f"unknown baselines: {', '.join(unknown)}")
    tier, task = mqar_task(args.tier)
    done: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = done.setdefault(tier.key, {})

    def key(name: str, seed: int, lr: float) -> str:
        return f"{name} {seed} {lr:g}"

    todo = [(n, s, lr) for n in args.only for s in args.seeds for lr in args.lrs if key(n, s, lr) not in results]
    print(f"{tier.key} MQAR ({task.spec.n_pairs} pairs, T {task.spec.seq_len}, {task.optim.steps} steps): "
          f"{len(todo)} trainings to run, {args.jobs} at a time", flush=True)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, args.tier, *item, args.device): item for item in todo}
        for future, (name, seed, lr) in futures.items():
            results[key(name, seed, lr)] = found = future.result()
            args.out.write_text(json.dumps(done, indent=1))
            print(f"  {name} seed {seed} lr {lr:g}: mqar {found['mqar_acc']} ({found['cpu_s']} s CPU)", flush=True)

    def acc(name: str, seed: int, lr: float) -> float:
        return results[key(name, seed, lr)]["mqar_acc"]

    print(f"\n{tier.key}, MQAR accuracy, mean ± std over seeds {' '.join(map(str, args.seeds))}")
    print(f"{'design':18s}" + "".join(f"{f'lr {lr:g}':>16s}" for lr in args.lrs) + f"{'best lr per seed':>26s}")
    best: dict[str, dict[int, dict]] = {}
    for name in args.only:
        best[name] = {s: {"mqar_acc": max(acc(name, s, lr) for lr in args.lrs)} for s in args.seeds}
        each = ", ".join(f"{best[name][s]['mqar_acc']:.2f}" for s in args.seeds)
        print(f"{name:18s}" + "".join(f"{spread([acc(name, s, lr) for s in args.seeds]):>16s}" for lr in args.lrs)
              + f"{spread([b['mqar_acc'] for b in best[name].values()]):>16s} ({each})")
    print("\nthe tier's MQAR claims on the best rate per seed (Zoology's reading):")
    for text, held in claims(best, tier.chance.get("mqar_acc", 0.0)):
        if "parity" not in text:
            print(f"  [{'held' if held else 'not held' if held is False else 'no data'}] {text}")


if __name__ == "__main__":
    main()
