"""A synthetic workspace: thousands of plausible designs recorded in seconds, without evaluating any.

The UI's benchmark, its screenshots and its tests need a database the size of a long search
(10,000 designs) or one with every kind of record (failures, crossovers, LLM transcripts, a run in
progress). Real evaluations take seconds each, so this writes records through the database's
ordinary stores with made-up but well-formed code, metrics, logs and events.

    python -m discover.ui.demo DIR [--designs N]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from discover.workspace import Workspace
from memory import ExperienceDB
from memory.baselines import BASELINES
from memory.protocols import Journal, Records

TIER, TIER_VERSION = "quick", 2
FAILURES = ("nan", "causality", "timeout", "syntax", "recurrent-mismatch", "lm-gate", "oom")
FEATURE_MAPS = ("elu_p1", "relu", "silu", "identity", "softmax")
UPDATES = ("additive", "decay", "gated", "delta", "gated-delta")
CODE = '''"""{name}

A {update} memory over {feature} features with a short convolution of width {conv}; variant {index}.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gate = nn.Linear(d_model, n_heads, bias=True)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.conv_width = {conv}
        self.decay_scale = {scale}

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k = F.{activation}(q) + {offset}, F.{activation}(k) + {offset}
        g = torch.sigmoid(self.gate(x)) * self.decay_scale  # (B, T, H)
        kv = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=1)  # (B, T, D, D)
        y = torch.einsum("btd,btde->bte", q, kv) / T
        return self.out(y * (1 - g.mean(-1, keepdim=True)))
'''


def _code(rng: random.Random, name: str, feature: str, update: str, conv: int, index: int) -> str:
    return CODE.format(name=name, update=update, feature=feature, conv=conv, index=index,
                       scale=round(rng.uniform(0.5, 1.0), 3), activation=rng.choice(("elu", "relu", "silu")),
                       offset=rng.choice((0, 1)))


def _metrics(rng: random.Random, quality: float) -> dict:
    return {"mqar_acc": round(min(1.0, max(0.0, rng.gauss(quality, 0.1))), 4),
            "parity_acc": round(min(1.0, max(0.4, rng.gauss(0.5 + quality / 3, 0.05))), 4),
            "parity_long_acc": round(min(1.0, max(0.4, rng.gauss(0.5 + quality / 4, 0.05))), 4),
            "lm_bpb": round(rng.gauss(2.6 - quality, 0.1), 4), "tokens_per_s": round(rng.uniform(4e3, 2e4), 1),
            "state_size": rng.choice((1024, 2048, 4096, 8192)), "params": rng.randrange(60_000, 90_000),
            "time_exponent": round(rng.uniform(0.9, 1.2), 3), "peak_rss_mb": round(rng.uniform(250, 400), 1),
            **rng.choice(({"cost_class": "constant", "state_mb_16k": round(rng.uniform(0.01, 0.1), 3)},
                          {"cost_class": "windowed", "state_mb_16k": round(rng.uniform(0.05, 0.5), 3)},
                          {"cost_class": "quadratic", "state_mb_16k": round(rng.uniform(8, 32), 2)},
                          {"cost_class": "unproven"}))}


def _score(metrics: dict) -> float:
    return round((2 * metrics["mqar_acc"] / 0.6 + (metrics["parity_acc"] - 0.5) / 0.2) / 3, 4)


def _log(status: str, seconds: float) -> str:
    lines = ["prepared data for mqar, parity, lm in 0.1s", "checks passed at 6.2s"]
    if status == "ok":
        lines += ["mqar done in 41.0s", "parity done in 22.3s", f"lm done in {seconds - 70:.1f}s"]
    else:
        lines.append(f"{status}: stopped after {seconds:.1f}s")
    return "\n".join(lines)


def build_demo_workspace(root: str | Path, designs: int = 200, seed: int = 0, live: bool = True) -> Path:
    """Write a workspace at `root` with the baselines and `designs` searched designs in two runs (the second
    has a tenth of them); with `live` the second run is still running, its last evaluation in flight.
    Returns the database path."""
    rng = random.Random(seed)
    ws = Workspace.open(root)
    second = max(1, designs // 10)
    with ExperienceDB(ws.db_path) as db, db.transaction():
        records = db.records
        ids, quality, index = [], {}, 0
        for count, running in ((designs - second, False), (second, live)):
            budget = count + 2 if running else count
            run_id = records.start_run(budget, TIER, {"tier": TIER}, str(root))
            records.log_event(run_id, "run-start", {"budget": budget, "tier": f"{TIER}@v{TIER_VERSION}", "spent": 0,
                                                    "resume": False})
            if not ids:
                # a stream of their own, so the searched designs do not change when a baseline is added
                ids += _baselines(records, random.Random(seed + 1), run_id)
            for n in range(count):
                ids.append(_searched(records, db.journal, rng, run_id, index, ids, quality,
                                     in_flight=running and n == count - 1))
                index += 1
            if not running:
                records.finish_run(run_id, "finished")
                records.log_event(run_id, "run-end", {"status": "finished", "spent": records.spent(run_id)})
    return ws.db_path


def _baselines(records: Records, rng: random.Random, run_id: int) -> list[int]:
    """The baselines, each evaluated once as a reference."""
    ids = []
    for name, path in BASELINES.items():
        design_id = records.add_design(name, f"the {name.replace('_', ' ')} baseline",
                                       path.read_text(encoding="utf-8"), origin="baseline")
        metrics = _metrics(rng, rng.uniform(0.1, 0.5))
        eval_id = records.begin_evaluation(design_id, run_id, "seed", TIER, TIER_VERSION, 0)
        records.finish_evaluation(eval_id, "ok", metrics=metrics, score=_score(metrics), log=_log("ok", 120.0),
                                  duration_s=120.0)
        records.log_event(run_id, "reference", {"name": name, "seed": 0, "status": "ok", "metrics": metrics})
        ids.append(design_id)
    return ids


def _searched(records: Records, journal: Journal, rng: random.Random, run_id: int, index: int, ids: list[int],
              quality: dict[int, float], in_flight: bool) -> int:
    """One searched design: proposal, evaluation, analysis and their events."""
    parents = [rng.choice(ids[-50:] if rng.random() < 0.7 else ids)]
    if rng.random() < 0.1:
        parents.append(rng.choice(ids))
    parents = list(dict.fromkeys(parents))
    origin = "llm" if index % 5 == 0 else "offline"
    feature, update, conv = rng.choice(FEATURE_MAPS), rng.choice(UPDATES), rng.choice((2, 3, 4))
    name = f"{feature}-{update}-c{conv}-{index}"
    design_id = records.add_design(name, f"Mutate #{parents[0]}: the {update} state update over {feature} features.",
                                   _code(rng, name, feature, update, conv, index), origin=origin, parents=parents,
                                   run_id=run_id, spec={"feature_map": feature, "update": update, "conv": conv})
    records.log_event(run_id, "design", {"design_id": design_id, "name": name, "parents": parents})
    if origin == "llm":
        journal.add_llm_call(run_id, "researcher", "openai/gpt-4o-mini", prompt_tokens=1800, completion_tokens=240,
                             cost=0.0004, latency_s=2.1, design_id=design_id,
                             request=[{"role": "system", "content": "You propose sequence-mixer designs."},
                                      {"role": "user", "content": f"Improve design #{parents[0]}."}],
                             reply=f'{{"name": "{name}", "motivation": "the {update} update"}}')
    eval_id = records.begin_evaluation(design_id, run_id, "search", TIER, TIER_VERSION, 0)
    records.log_event(run_id, "evaluate-start", {"design_id": design_id, "name": name, "attempt": 1})
    if in_flight:
        return design_id
    base = max((quality.get(p, 0.3) for p in parents), default=0.3)
    quality[design_id] = min(0.95, max(0.0, base + rng.gauss(0.01, 0.05)))
    status = "ok" if rng.random() < 0.85 else rng.choice(FAILURES)
    metrics = _metrics(rng, quality[design_id]) if status in ("ok", "lm-gate") else None
    score = _score(metrics) if status == "ok" else None
    reason = None if status == "ok" else f"{status} detected by the harness"
    seconds = round(rng.uniform(80, 140), 1)
    records.finish_evaluation(eval_id, status, reason=reason, metrics=metrics, score=score,
                              log=_log(status, seconds), duration_s=seconds)
    records.log_event(run_id, "evaluate-done", {"design_id": design_id, "name": name, "status": status,
                                                "reason": reason, "score": score, "metrics": metrics,
                                                "duration_s": seconds})
    text = (f"{name} scored {score:.3f} against parent #{parents[0]}." if score is not None
            else f"{name} failed with {status}; the parent #{parents[0]} did not.")
    records.add_analysis(design_id, f"{origin}-analyst", text, {"status": status}, eval_id)
    records.log_event(run_id, "analysis", {"design_id": design_id, "text": text})
    return design_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="workspace folder to create")
    parser.add_argument("--designs", type=int, default=200, help="searched designs (default: 200)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_demo_workspace(args.dir, args.designs, args.seed))


if __name__ == "__main__":
    main()
