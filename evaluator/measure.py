"""The trusted side of an evaluation: every number that counts is measured here, out of the design's reach.

This module never imports design code. It runs two kinds of sandboxed jobs:

1. one training job (``harness.train_in_child``), which runs the design's checks, trains one
   model per task and sends the weights back;
2. query jobs (``harness.answer_in_child``), each a fresh process that loads trained weights into
   a freshly built model and answers the input batches it is given.

The held-out inputs and their labels are drawn here from a seed derived from a secret key the
design's processes never see (``heldout_seed``), and every metric that counts (accuracies, bits
per byte) is computed here from the answers. Probes are mixed among the evaluation batches at the
evaluation's own shapes: each probe is a copy of an evaluation batch in which some rows keep their
prefix and take another row's suffix, answered by a different process than the original. Outputs
before the cut must be identical (causality) and unchanged rows identical everywhere (consistency);
a design cannot tell a probe from work, and a process cannot remember another's queries. Where the
design has a recurrent form, rows of an evaluation batch are answered token by token through
``step`` and compared with the forward answers. Throughput and memory come from the OS's accounting
of the design's processes; FLOPs per token at long context from torch's flop counter in a query
process whose counted answers must equal its plain ones (``measure_flops``); what the design's process
reports (its training losses, its own checks' figures) is information, never scored.

Everything a job sends back is untrusted data: checked against a schema, with tensors decoded by
``evaluator.wire``; anything malformed or unexpected is the named status ``protocol``.
"""

from __future__ import annotations

import ast
import hashlib
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import sandbox
from evaluator import cost, wire
from evaluator.harness import check_model_shape, task_model_shape
from evaluator.metrics import METRICS, threshold
from evaluator.status import STATUSES
from evaluator.tiers import Tier, get_tier
from evaluator.train import IGNORE

RunJob = Callable[[sandbox.Job], sandbox.ProcessResult]

QUERY_ROWS = 128  # rows per evaluation batch, fewer when a batch's answers would pass BATCH_BYTES
BATCH_BYTES = 16 << 20
JOB_BYTES = 24 << 20  # answers per query job, kept well under the sandbox's cap on a result
PROBED_BATCHES = 2  # per held-out set
STEP_ROWS = 8
CHECK_LENGTHS = (75, 130)  # the check tier's probe lengths: odd, across one and two 64-token chunks
_WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
                  torch.uint8, torch.bool)
# Statuses a design's process may name for itself; any other is a protocol failure.
_KERNEL_FIGURE = re.compile(r"^kernel_[A-Za-z0-9_]{1,60}$")
_DESIGN_STATUSES = frozenset(STATUSES) - {"ok", "harness", "timeout", "crash", "protocol", "lm-gate",
                                          "leak-suspect", "inconsistent"}


class Refused(Exception):
    """An evaluation ends here with a named status."""

    def __init__(self, status: str, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


def new_key() -> bytes:
    """A fresh secret for held-out draws: an evaluation without a workspace key gets one of its own."""
    return os.urandom(32)


def heldout_seed(key: bytes, seed: int, tier: Tier, part: str) -> int:
    """The seed of one held-out draw: a function of the secret ``key``, so the design cannot derive it."""
    digest = hashlib.sha256(key + f"/{tier.key}/{seed}/{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class Query:
    tokens: torch.Tensor
    mode: str  # "forward", "step", "resume" (step from ``state``, sending back the state it ends in), or
    # "flops" (forward, counted by torch's flop counter, sending back the count)
    answers: str  # "argmax" or "logprobs"
    original: int | None = None  # for a probe or a step query: the index of the evaluation batch it shadows
    rows: torch.Tensor | None = None  # a probe's spliced rows, or a step query's rows of the original
    cuts: torch.Tensor | None = None  # a probe's cut per spliced row
    state: object = None  # a resume query's state to start from (None: the start of the sequence)
    answer: dict = field(default_factory=dict)


@dataclass
class Held:
    """One held-out set of a task, split into evaluation batches."""

    name: str
    metric: str
    kind: str  # "accuracy", "bpb" or "probe" (the check tier's random tokens: nothing to score)
    labels: list[torch.Tensor]
    batches: list[int]  # indices into the query list


def _answer_bytes(rows: int, length: int, vocab: int, answers: str) -> int:
    """The size of the answers to ``rows`` sequences: every log-probability, or an argmax and its value."""
    return rows * length * (vocab * 4 if answers == "logprobs" else 8)


def _rows_per_batch(vocab: int, length: int, answers: str) -> int:
    return max(1, min(QUERY_ROWS, BATCH_BYTES // _answer_bytes(1, length, vocab, answers)))


def _probe(batch: torch.Tensor, index: int, generator: torch.Generator, answers: str) -> Query:
    """A copy of ``batch`` in which half the rows keep a prefix and take another row's suffix."""
    rows, length = batch.shape
    tokens = batch.clone()
    if rows < 2 or length < 2:
        return Query(tokens, "forward", answers, index, torch.empty(0, dtype=torch.long),
                     torch.empty(0, dtype=torch.long))
    spliced = torch.randperm(rows, generator=generator)[: max(1, rows // 2)]
    donors = (spliced + 1 + torch.randint(0, rows - 1, spliced.shape, generator=generator)) % rows
    cuts = torch.randint(1, length, spliced.shape, generator=generator)
    for row, donor, cut in zip(spliced.tolist(), donors.tolist(), cuts.tolist()):
        tokens[row, cut:] = batch[donor, cut:]
    return Query(tokens, "forward", answers, index, spliced, cuts)


def plan_task(sets: dict[str, tuple[torch.Tensor, torch.Tensor]], measures: dict, vocab: int, answers: str,
              has_step: bool, generator: torch.Generator) -> tuple[list[Query], list[Held]]:
    """The queries for one task's held-out sets: evaluation batches, probes, and a step query."""
    queries: list[Query] = []
    held: list[Held] = []
    for name, (inputs, labels) in sets.items():
        metric, kind = measures.get(name, (name, "probe"))
        size = _rows_per_batch(vocab, inputs.shape[1], answers)
        entry = Held(name, metric, kind, [], [])
        for lo in range(0, inputs.shape[0], size):
            entry.batches.append(len(queries))
            entry.labels.append(labels[lo: lo + size])
            queries.append(Query(inputs[lo: lo + size], "forward", answers))
        held.append(entry)
        chosen = torch.randperm(len(entry.batches), generator=generator)[:PROBED_BATCHES].tolist()
        for i in chosen:
            original = entry.batches[i]
            queries.append(_probe(queries[original].tokens, original, generator, answers))
    if has_step and held:
        first = held[0].batches
        original = first[int(torch.randint(0, len(first), (1,), generator=generator))]
        batch = queries[original].tokens
        rows = torch.randperm(batch.shape[0], generator=generator)[:STEP_ROWS].sort().values
        queries.append(Query(batch[rows], "step", answers, original, rows))
    return queries, held


def assign(queries: list[Query], vocab: int, generator: torch.Generator) -> list[list[int]]:
    """Query indices per job: a probe or step query never shares a process with the batch it shadows;
    each job's share of answers stays under ``JOB_BYTES``; the order within a job is random."""
    jobs: list[list[int]] = []
    loads: list[int] = []
    sides: dict[int, int] = {}
    for index in torch.randperm(len(queries), generator=generator).tolist():
        query = queries[index]
        partners = {query.original} | {i for i, q in enumerate(queries) if q.original == index}
        size = _answer_bytes(*query.tokens.shape, vocab, query.answers)
        for job in range(len(jobs)):
            if loads[job] + size <= JOB_BYTES and not any(sides.get(p) == job for p in partners):
                break
        else:
            jobs.append([])
            loads.append(0)
            job = len(jobs) - 1
        jobs[job].append(index)
        loads[job] += size
        sides[index] = job
    while len(jobs) < 2 and len(jobs[0]) > 1:  # at least two processes, so every probe has its counterpart
        jobs.append([jobs[0].pop()])
    return jobs


def _decode_answer(raw: object, query: Query, vocab: int) -> dict:
    rows, length = query.tokens.shape
    if not isinstance(raw, dict):
        raise wire.WireError("an answer is not a dict")
    if query.mode == "flops":
        flops = raw.get("flops")
        if type(flops) is not int or not 0 <= flops < 1 << 62:
            raise wire.WireError(f"a flops answer's count is {str(flops)[:40]!r}, not a non-negative integer")
        rest = {k: v for k, v in raw.items() if k != "flops"}
        return {**_decode_answer(rest, replace(query, mode="forward"), vocab), "flops": flops}
    if query.mode == "resume":
        if "state" not in raw:
            raise wire.WireError("a resume query's answer has no state")
        rest = {k: v for k, v in raw.items() if k != "state"}
        return {**_decode_answer(rest, replace(query, mode="forward"), vocab),
                "state": wire.decode_tree(raw["state"], "the recurrent state")}
    if query.answers == "logprobs":
        if set(raw) != {"logprobs"}:
            raise wire.WireError(f"an answer has keys {sorted(raw)}, expected ['logprobs']")
        return {"logprobs": wire.decode(raw["logprobs"], "logprobs", (rows, length, vocab), (torch.float32,))}
    if set(raw) != {"argmax", "top"}:
        raise wire.WireError(f"an answer has keys {sorted(raw)}, expected ['argmax', 'top']")
    return {"argmax": wire.decode(raw["argmax"], "argmax", (rows, length), (torch.int32,)),
            "top": wire.decode(raw["top"], "top", (rows, length), (torch.float32,))}


def _values(answer: dict) -> list[torch.Tensor]:
    return [answer["logprobs"]] if "logprobs" in answer else [answer["argmax"], answer["top"]]


def check_probes(queries: list[Query]) -> None:
    """Every probe against its original, unchanged rows first (the same sequence must get the same
    outputs), then the spliced rows' prefixes; a step query against the forward answers of its rows."""
    for query in queries:
        if query.original is None or query.mode == "step":
            continue
        original = queries[query.original].answer
        cut_of = dict(zip(query.rows.tolist(), query.cuts.tolist()))
        length = query.tokens.shape[1]
        for row in sorted(range(query.tokens.shape[0]), key=lambda r: r in cut_of):
            cut = cut_of.get(row, length)
            for mine, theirs in zip(_values(query.answer), _values(original)):
                if torch.equal(mine[row, :cut], theirs[row, :cut]):
                    continue
                if row not in cut_of:
                    raise Refused("inconsistent", "the same sequence, asked twice, got different outputs "
                                                  f"(a {length}-token sequence of the evaluation)")
                differs = (mine[row, :cut] != theirs[row, :cut]).reshape(cut, -1).any(dim=1).nonzero()
                raise Refused("causality", f"changing tokens from position {cut} on changed the output at "
                                           f"position {int(differs[0])} (a {length}-token sequence of the "
                                           "evaluation)")
    for query in queries:
        if query.mode == "step":
            _check_step(query, queries[query.original].answer)


def _check_step(query: Query, original: dict) -> None:
    rows = query.rows
    _compare_step(query.answer, {k: v[rows] for k, v in original.items()}, "on an evaluation batch")


def _compare_step(mine: dict, theirs: dict, where: str, tolerance: float = 1e-3) -> None:
    """Step answers against forward answers of the same rows: the same predictions, and log-probabilities
    within a relative RMS error of ``tolerance``."""
    if "logprobs" in theirs:
        mine_values, their_values = mine["logprobs"], theirs["logprobs"]
    else:
        mine_values, their_values = mine["top"], theirs["top"]
        agree = (mine["argmax"] == theirs["argmax"]).float().mean().item()
        if agree < 0.99:
            raise Refused("recurrent-mismatch", f"step() and forward() predict different tokens at "
                                                f"{1 - agree:.1%} of positions {where}")
    error = ((mine_values.double() - their_values.double()).pow(2).mean().sqrt() /
             their_values.double().pow(2).mean().sqrt().clamp_min(1.0)).item()
    if not error <= tolerance:
        raise Refused("recurrent-mismatch", f"step() vs forward() {where}: relative RMS error "
                                            f"{error:.2e} of the log-probabilities exceeds {tolerance:.0e}")


def score_sets(queries: list[Query], held: list[Held]) -> dict:
    """The metric of every held-out set, from the answers and the labels only this side has."""
    metrics = {}
    for entry in held:
        if entry.kind == "probe":
            continue
        correct = total = 0
        nats = 0.0
        for index, labels in zip(entry.batches, entry.labels):
            answer = queries[index].answer
            if entry.kind == "accuracy":
                mask = labels != IGNORE
                correct += (answer["argmax"].long()[mask] == labels[mask]).sum().item()
                total += int(mask.sum())
            else:
                # Normalised here: a design returning anything but log-probabilities gains nothing.
                logprobs = answer["logprobs"].double()
                logprobs = logprobs - torch.logsumexp(logprobs, dim=-1, keepdim=True)
                nats -= logprobs.gather(-1, labels.unsqueeze(-1)).sum().item()
                total += labels.numel()
        value = correct / max(total, 1) if entry.kind == "accuracy" else nats / max(total, 1) / math.log(2)
        metrics[entry.metric] = round(value, 4)
    return metrics


def _finite(queries: list[Query]) -> None:
    for query in queries:
        for value in _values(query.answer):
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise Refused("nan", f"non-finite outputs for a {query.tokens.shape[1]}-token evaluation batch")


@dataclass
class Trained:
    """What the training job sent, checked."""

    value: dict
    models: dict[str, tuple[dict[str, torch.Tensor], list[str]]]
    process: sandbox.ProcessResult


def read_training(process: sandbox.ProcessResult, tier: Tier) -> Trained:
    """The training job's reply, validated; raises ``Refused`` for a failure it names or a malformed reply."""
    value = process.value or {}
    status = value.get("status")
    if status != "ok":
        if status in _DESIGN_STATUSES and isinstance(value.get("reason"), str):
            raise Refused(status, value["reason"][:500])
        raise Refused("protocol", f"the design's process ended training with status {str(status)[:60]!r}")
    for key, kind in (("metrics", dict), ("models", dict), ("log", str)):
        if not isinstance(value.get(key), kind):
            raise Refused("protocol", f"the training reply's {key!r} is not a {kind.__name__}")
    wanted = {"check", *(task.name for task in tier.tasks)}
    if set(value["models"]) != wanted:
        raise Refused("protocol", f"the training reply holds models {sorted(value['models'])}, "
                                  f"expected {sorted(wanted)}")
    models = {}
    try:
        for name, exported in value["models"].items():
            if not isinstance(exported, dict) or not isinstance(exported.get("weights"), dict) \
                    or not isinstance(exported.get("params"), list):
                raise wire.WireError(f"model {name!r} is not {{weights, params}}")
            weights = {str(k): wire.decode(v, f"weight {k!r}", dtypes=_WEIGHT_DTYPES)
                       for k, v in exported["weights"].items()}
            params = [p for p in exported["params"] if isinstance(p, str) and p in weights]
            models[name] = (weights, params)
    except wire.WireError as exc:
        raise Refused("protocol", f"the trained weights are malformed: {exc}") from None
    return Trained(value, models, process)


def reported_metrics(value: dict) -> dict:
    """What the design's process says about itself, as information: only the figures it is expected to
    report (registered as ``reported``, or a declared kernel's), and only plain finite numbers."""
    out = {}
    for name, figure in value.get("metrics", {}).items():
        if not isinstance(name, str) or len(name) > 80:
            continue
        registered = METRICS.get(name)
        expected = registered.source == "reported" if registered else bool(_KERNEL_FIGURE.match(name))
        if expected and isinstance(figure, (int, float, bool)) and (not isinstance(figure, float)
                                                                   or math.isfinite(figure)):
            out[name] = figure
    return out


def defines_step(code: str) -> bool:
    """Whether the design's Mixer declares a recurrent form, read from its source, not its word."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Mixer":
            return any(isinstance(f, ast.FunctionDef) and f.name == "step" for f in node.body)
    return False


def gpu_toolchain() -> tuple[str, ...]:
    """What Triton runs to compile a kernel for a GPU, the only programs a job on one may execute: its
    bundled CUDA tools, the C compiler with its helpers and the binutils it calls, and ldconfig (which
    it asks where libcuda is). Untested where no GPU was at hand; a CPU job runs no program at all."""
    import shutil

    import triton

    found = [str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin"), "/usr/lib/gcc", "/usr/libexec/gcc"]
    for name in (os.environ.get("CC", "gcc"), "cc", "as", "ld", "ldconfig"):
        where = shutil.which(name) or shutil.which(name, path="/sbin:/usr/sbin")
        if where:
            found.append(os.path.realpath(where))
    return tuple(found)


def _limits(tier: Tier, wall_s: float) -> sandbox.Limits:
    """A job's limits: the tier's memory, held-out files hidden, and on a GPU the compiler's programs."""
    gpu = tier.device == "cuda" and torch.cuda.is_available()
    return sandbox.Limits(wall_s=wall_s, memory_bytes=tier.memory_bytes, hidden=hidden(tier),
                          programs=gpu_toolchain() if gpu else ())


def hidden(tier: Tier) -> tuple[str, ...]:
    """Files holding held-out data that the design's processes may not read (the LM corpus)."""
    return tuple(path for task in tier.tasks if hasattr(task, "hidden") for path in task.hidden())


def ask(run_job: RunJob, code: str, tier: Tier, shape: dict, weights: dict, queries: list[Query],
        jobs: list[list[int]]) -> list[sandbox.ProcessResult]:
    """Run the query jobs; fills each query's answer or raises ``Refused``."""
    limits = _limits(tier, max(60.0, tier.wall_s / 4))
    device = "cuda" if tier.device == "cuda" and torch.cuda.is_available() else "cpu"
    processes = []
    for members in jobs:
        payload = {"code": code, "model": shape, "weights": weights, "device": device,
                   "queries": [{"tokens": queries[i].tokens, "mode": queries[i].mode, "answers": queries[i].answers,
                                **({"state": queries[i].state} if queries[i].state is not None else {})}
                               for i in members]}
        process = run_job(sandbox.Job("evaluator.harness:answer_in_child", payload, limits))
        processes.append(process)
        if not process.ok:
            raise Refused(*_process_failure(process, "answering queries"))
        reply = process.value
        failed = reply.get("failed")
        if failed is not None:
            if isinstance(failed, dict) and failed.get("status") in _DESIGN_STATUSES \
                    and isinstance(failed.get("reason"), str):
                raise Refused(failed["status"], f"answering queries: {failed['reason'][:500]}")
            raise Refused("protocol", "a query job's failure report is malformed")
        answers = reply.get("answers")
        if not isinstance(answers, list) or len(answers) != len(members):
            raise Refused("protocol", f"a query job answered {len(answers) if isinstance(answers, list) else 'no'} "
                                      f"of {len(members)} queries")
        try:
            for index, raw in zip(members, answers):
                queries[index].answer = _decode_answer(raw, queries[index], shape["vocab"])
        except wire.WireError as exc:
            raise Refused("protocol", f"a query job's answer is malformed: {exc}") from None
    return processes


def _process_failure(process: sandbox.ProcessResult, doing: str) -> tuple[str, str]:
    status = {"timeout": "timeout", "cpu-limit": "timeout", "memory": "oom", "raised": "harness",
              "invalid-value": "protocol", "sandbox-error": "harness"}.get(process.outcome, "crash")
    reason = process.error or process.outcome
    if status == "timeout":
        reason = f"no answer within {process.wall_s:.0f}s ({reason})"
    return status, f"{doing}: {reason}"


def measure_task(run_job: RunJob, code: str, tier: Tier, task, trained: Trained, key: bytes, seed: int,
                 has_step: bool) -> dict:
    generator = torch.Generator().manual_seed(heldout_seed(key, seed, tier, f"{task.name}/plan"))
    sets = task.heldout(heldout_seed(key, seed, tier, task.name))
    queries, held = plan_task(sets, task.measures, task.vocab, task.answers, has_step, generator)
    weights, _ = trained.models[task.name]
    ask(run_job, code, tier, task_model_shape(task), weights, queries, assign(queries, task.vocab, generator))
    _finite(queries)
    check_probes(queries)
    return score_sets(queries, held)


def measure_check_model(run_job: RunJob, code: str, tier: Tier, trained: Trained, key: bytes, seed: int) -> None:
    """Causality and consistency of the check model on random tokens at lengths across chunk borders."""
    spec = tier.checks
    generator = torch.Generator().manual_seed(heldout_seed(key, seed, tier, "check"))
    sets = {f"random-{length}": (torch.randint(0, spec.vocab, (4, length), generator=generator),
                                 torch.full((4, length), IGNORE)) for length in CHECK_LENGTHS}
    queries, _ = plan_task(sets, {}, spec.vocab, "argmax", False, generator)
    weights, _ = trained.models["check"]
    ask(run_job, code, tier, check_model_shape(spec), weights, queries, assign(queries, spec.vocab, generator))
    _finite(queries)
    check_probes(queries)


def training_length(tier: Tier) -> int:
    """The sequence length the tier trains at (its first task's), or the check's length for the check tier."""
    return tier.tasks[0].seq_len if tier.tasks else tier.checks.seq_len


COST_BASE = 16  # the length of the query job that measures a query job's fixed cost
SUPERLINEAR_TIME, SUPERLINEAR_MEMORY = threshold("superlinear_time"), threshold("superlinear_memory")


def _slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(v) for v in xs], [math.log(max(v, 1e-12)) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def measure_scaling(run_job: RunJob, code: str, tier: Tier, trained: Trained, key: bytes, seed: int) -> dict:
    """How time and memory grow with the sequence, and whether the last output still sees the first
    token, all measured from outside the design's processes.

    Each length is a query job on the check model: two sequences that differ only in their first
    token. The OS's accounting of the job (wall time, peak resident memory), less that of the same job
    at ``COST_BASE`` tokens, is the cost of the forward passes at that length; the slopes over the
    lengths on log-log axes are the exponents (1 linear, 2 quadratic). The design cannot tell these
    queries from any other and cannot time them.
    """
    spec = tier.checks
    generator = torch.Generator().manual_seed(heldout_seed(key, seed, tier, "scaling"))
    weights, _ = trained.models["check"]
    shape = check_model_shape(spec)
    train_len = training_length(tier)
    lengths = tuple(dict.fromkeys((COST_BASE, *spec.scaling_lengths, train_len)))
    wall: dict[int, float] = {}
    rss: dict[int, float] = {}
    reaches: dict[int, bool] = {}
    for length in lengths:
        pair = torch.randint(0, spec.vocab, (1, length), generator=generator).repeat(2, 1)
        pair[1, 0] = (pair[0, 0] + 1) % spec.vocab
        query = Query(pair, "forward", "argmax")
        [process] = ask(run_job, code, tier, shape, weights, [query], [[0]])
        _finite([query])
        top = query.answer["top"]
        reaches[length] = not torch.equal(top[0, -1], top[1, -1])
        wall[length], rss[length] = process.wall_s, process.max_rss_bytes
    probed = spec.scaling_lengths
    times = [max(wall[n] - wall[COST_BASE], 1e-3) for n in probed]
    memory = [max(rss[n] - rss[COST_BASE], 1 << 16) for n in probed]
    time_exp, mem_exp = _slope(probed, times), _slope(probed, memory)
    return {"time_exponent": round(time_exp, 3), "memory_exponent": round(mem_exp, 3),
            "superlinear": bool(time_exp > SUPERLINEAR_TIME or mem_exp > SUPERLINEAR_MEMORY),
            "forward_s_longest": round(times[-1] / 2, 4), "forward_mb_longest": round(memory[-1] / (1 << 20), 1),
            "sees_whole_sequence": reaches[probed[-1]], "sees_whole_training_sequence": reaches[train_len]}


FLOPS_LENGTHS = (256, 512, 1024)  # the lengths FLOPs are counted at: cheap on a CPU, long enough to fit
FLOPS_AT = {"flops_4k": 4096, "flops_16k": cost.LONG_CONTEXT}  # the lengths they are stated at
FLOPS_FIT = threshold("flops_fit")  # relative deviation from a + b*T past which the reason says so


def fit_flops(lengths: tuple[int, ...], per_token: list[float]) -> tuple[float, float, float]:
    """(a, b, deviation): the least-squares line a + b*T through the FLOPs per token at ``lengths``
    (a total of a*T + b*T^2), neither part negative, and the largest relative deviation from it."""
    n = len(lengths)
    mean_t, mean_f = sum(lengths) / n, sum(per_token) / n
    b = sum((t - mean_t) * (f - mean_f) for t, f in zip(lengths, per_token)) / sum((t - mean_t) ** 2 for t in lengths)
    a = mean_f - b * mean_t
    if b < 0:  # fewer FLOPs per token for longer sequences: a constant at their mean
        a, b = mean_f, 0.0
    if a < 0:  # a line through the origin
        a, b = 0.0, sum(t * f for t, f in zip(lengths, per_token)) / sum(t * t for t in lengths)
    deviation = max((abs(a + b * t - f) / f for t, f in zip(lengths, per_token) if f > 0), default=0.0)
    return a, b, deviation


def measure_flops(run_job: RunJob, code: str, tier: Tier, trained: Trained, key: bytes, seed: int) -> dict:
    """Forward FLOPs per token of the check model at 4k and 16k tokens, counted in a query process.

    One process answers one random sequence at each of ``FLOPS_LENGTHS`` twice, in a random order: once
    plainly and once under torch's flop counter (``torch.utils.flop_counter.FlopCounterMode``), which
    sends back its count; the two answers must be identical, so the pass that was counted is the one
    that computes the outputs. The counts per token are fitted as a + b*T (a total of a*T + b*T^2) and
    stated at 4096 and 16384 tokens; ``flops_reason`` gives the fit, and says so when the counts are not
    of that form (the figures then extend the closest such line).

    What is counted: matrix products, convolutions and attention that the design's process dispatches
    through torch (torch's formulas; attention as the full T x T scores, causal or not, as torch counts
    it). Element-wise work (activations, norms, cumulative sums, gates) is not counted, nor is work done
    outside torch's dispatcher: a Triton kernel, numpy, Python arithmetic. The count is taken in the
    design's process, which could detect the counter or step outside it (patching it is ``tamper``):
    the answers are checked, the count cannot be, so it is information about cost, never scored.
    """
    spec = tier.checks
    generator = torch.Generator().manual_seed(heldout_seed(key, seed, tier, "flops"))
    queries: list[Query] = []
    for length in FLOPS_LENGTHS:
        tokens = torch.randint(0, spec.vocab, (1, length), generator=generator)
        queries += [Query(tokens, "flops", "argmax"), Query(tokens, "forward", "argmax")]
    weights, _ = trained.models["check"]
    order = torch.randperm(len(queries), generator=generator).tolist()
    ask(run_job, code, tier, check_model_shape(spec), weights, queries, [order])
    _finite(queries)
    for counted, plain in zip(queries[::2], queries[1::2]):
        if not all(torch.equal(counted.answer[k], plain.answer[k]) for k in ("argmax", "top")):
            raise Refused("inconsistent", f"the same {counted.tokens.shape[1]}-token sequence got different "
                                          "outputs when its FLOPs were counted")
    per_token = [q.answer["flops"] / q.tokens.shape[1] for q in queries[::2]]
    a, b, deviation = fit_flops(FLOPS_LENGTHS, per_token)
    at = ", ".join(str(n) for n in FLOPS_LENGTHS)
    if deviation > FLOPS_FIT:
        counts = ", ".join(f"{f:.4g}" for f in per_token)
        why = (f"counted {counts} per token at {at} tokens: not a + b*T (off by {deviation:.0%}); "
               f"extended along the closest such line, {a:.4g} + {b:.4g}*T")
    else:
        line = f"{a:.4g} + {b:.4g}*T per token" if b else f"{a:.4g} per token at any length"
        why = f"{line}, counted at {at} tokens (within {deviation:.1%})"
    return {**{name: round(a + b * length) for name, length in FLOPS_AT.items()}, "flops_reason": why}


STATE_ROWS, STATE_TAIL = 4, 8  # sequences the state is measured on; tokens stepped past the training length


def _state_size(state: object) -> tuple[int, int, int]:
    """(numbers, non-zero numbers, bytes) per sequence of a decoded state of ``STATE_ROWS`` sequences."""
    tensors = wire.tree_tensors(state)
    return (sum(t.numel() for t in tensors) // STATE_ROWS, sum(int(t.count_nonzero()) for t in tensors) // STATE_ROWS,
            sum(t.numel() * t.element_size() for t in tensors) // STATE_ROWS)


def measure_state(run_job: RunJob, code: str, tier: Tier, trained: Trained, key: bytes, seed: int,
                  has_step: bool) -> dict:
    """The recurrent state the check model carries, measured by resuming from it in new processes, and
    the cost class it implies (``evaluator.cost``).

    One process answers the whole sequence forward and steps its first half (and, apart, its first
    token); a second continues from the half's state to the training length, a third a few tokens past
    it. Stepped answers must equal the forward ones, so a state that leaves anything out (a cache kept
    in the process) is ``recurrent-mismatch``. Without a recurrent form the class is ``unproven``.
    """
    if not has_step:
        return {"cost_class": "unproven"}
    spec = tier.checks
    shape = check_model_shape(spec)
    weights, _ = trained.models["check"]
    train_len = training_length(tier)
    half = train_len // 2
    generator = torch.Generator().manual_seed(heldout_seed(key, seed, tier, "state"))
    tokens = torch.randint(0, spec.vocab, (STATE_ROWS, train_len + STATE_TAIL), generator=generator)
    forward = Query(tokens, "forward", "argmax")
    first = Query(tokens[:, :1], "resume", "argmax")
    head = Query(tokens[:, :half], "resume", "argmax")
    ask(run_job, code, tier, shape, weights, [forward, first, head], [[0, 1, 2]])
    middle = Query(tokens[:, half:train_len], "resume", "argmax", state=head.answer["state"])
    ask(run_job, code, tier, shape, weights, [middle], [[0]])
    tail = Query(tokens[:, train_len:], "resume", "argmax", state=middle.answer["state"])
    ask(run_job, code, tier, shape, weights, [tail], [[0]])
    stepped = [head, middle, tail]
    _finite([forward, *stepped])
    _compare_step({k: torch.cat([q.answer[k] for q in stepped], dim=1) for k in ("argmax", "top")},
                  forward.answer, "when each part of a sequence is stepped in a new process from the state "
                                  "the last one ended in")
    numbers_first = _state_size(first.answer["state"])[0]
    numbers_mid, nonzero_mid, bytes_mid = _state_size(middle.state)
    numbers_end, nonzero_end, bytes_end = _state_size(tail.state)
    cache = 2 * spec.n_layers * train_len * spec.d_model
    cost_class, why = cost.classify(numbers_first, numbers_mid, numbers_end, nonzero_mid, nonzero_end, cache)
    at_long = cost.state_bytes_at(cost.LONG_CONTEXT, train_len, bytes_mid, bytes_end, cost_class)
    return {"cost_class": cost_class, "cost_reason": why, "state_numbers": numbers_end,
            "state_kb": round(bytes_end / 1024, 2), "state_mb_16k": round(at_long / (1 << 20), 3)}


def measured_metrics(tier: Tier, trained: Trained) -> dict:
    """Figures from the OS's accounting and the weights, none of them from the design's word."""
    metrics = {"peak_rss_mb": round(trained.process.max_rss_bytes / (1 << 20), 1)}
    first = tier.tasks[0].name if tier.tasks else "check"
    weights, params = trained.models[first]
    metrics["params"] = sum(weights[name].numel() for name in params)
    tokens = sum(task.train_tokens for task in tier.tasks)
    if tokens and trained.process.cpu_s > 0:
        metrics["tokens_per_s"] = round(tokens / trained.process.cpu_s, 1)
    return metrics


def measure(run_job: RunJob, code: str, tier_name: str, seed: int, key: bytes,
            declares_step: bool | None = None) -> tuple[str, str, dict, dict, list]:
    """(status, reason, metrics, the training reply, every process) of one evaluation.

    ``run_job`` runs a sandbox job and says how it ended (``Sandbox.run``); ``key`` is the secret the
    held-out draws derive from; ``declares_step``: ``defines_step(code)``, when the caller parsed it
    already (on a thread of its own, as ``evaluator.run.submit`` must). Every process ``run_job`` ran
    is returned, the training first, those of a step that was refused included."""
    tier = get_tier(tier_name)
    started = time.perf_counter()
    processes: list[sandbox.ProcessResult] = []

    def recorded(job: sandbox.Job) -> sandbox.ProcessResult:
        processes.append(run_job(job))
        return processes[-1]

    sources = {task.name: task.source() for task in tier.tasks if hasattr(task, "source")}
    limits = _limits(tier, tier.wall_s)
    process = recorded(sandbox.Job("evaluator.harness:train_in_child",
                                   {"code": code, "tier": tier.name, "seed": seed, "sources": sources}, limits))
    value = process.value if process.ok and isinstance(process.value, dict) else {}
    if not process.ok:
        return (*_process_failure(process, "training"), {}, value, processes)
    metrics = reported_metrics(value)
    try:
        trained = read_training(process, tier)
        if declares_step is None:
            declares_step = defines_step(code)
        has_step = value.get("has_step") is True or declares_step
        measure_check_model(recorded, code, tier, trained, key, seed)
        metrics.update(measure_state(recorded, code, tier, trained, key, seed, has_step))
        metrics.update(measure_flops(recorded, code, tier, trained, key, seed))
        if tier.scaling_probe:
            metrics.update(measure_scaling(recorded, code, tier, trained, key, seed))
        for task in tier.tasks:
            metrics.update(measure_task(recorded, code, tier, task, trained, key, seed, has_step))
        metrics.update(measured_metrics(tier, trained))
    except Refused as refused:
        return refused.status, refused.reason, metrics, value, processes
    metrics["measure_s"] = round(time.perf_counter() - started - process.wall_s, 2)
    return "ok", "", metrics, value, processes
