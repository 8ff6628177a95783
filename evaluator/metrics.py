"""The metrics an evaluation reports, named once: what each one is, which way is better, how tables show it.

An ``EvalResult``'s ``metrics`` use these names: the checks (``evaluator.checks``), the tasks
(``evaluator.tasks``) and the profile the harness takes. Reports, prompts and comparisons take
their names, labels, order and direction from here. A name not listed (a kernel's figures,
``kernel_<name>_<figure>``, or a metric a later evaluator adds) still has an entry: ``metric``
builds one from the name by the rules ``kind`` states, so nothing is ever dropped for being new.

Kinds say how a result can be reproduced (``evaluator.reproduce`` compares replays by them):

- structural: a function of the code and the tier's shapes (parameter counts, state size, FLOPs);
- accuracy: from seeded training, higher is better;
- loss: from seeded training, lower is better;
- machine: a property of the machine and its load (throughput, wall times, memory, the scaling probe);
- drawn: depends on a draw made afresh in every evaluation, so no two evaluations share it (the kernel
  check's hidden shapes, and the errors measured on them).

Sources say who measured it: ``measured``, the trusted side, from the design's answers on held-out
data, the OS's accounting of its processes or the weights it sent (``evaluator.measure``); or
``reported``, the design's own process, which could say anything: shown as information, never scored.

This module imports nothing heavy: the command line and the terminal UI read it before torch loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("structural", "accuracy", "loss", "machine", "drawn")
# Kernel figures measured on the check's hidden shapes, drawn from a fresh seed per evaluation.
_DRAWN = re.compile(r"^kernel_.+_(hidden_seed|err_.+|maxerr_.+)$")


def format_value(value, spec: str = ".4g") -> str:
    """A value as tables show it: a float through the format ``spec``, None as a dash, anything else as text."""
    if isinstance(value, float):
        return format(value, spec)
    return "—" if value is None else str(value)


@dataclass(frozen=True)
class Metric:
    """One metric.

    label: a column header narrow enough for an 80-column table. chance: what guessing reaches, when
    that is a constant (MQAR's depends on the tier's vocabulary, so ``Tier.chance`` holds it).
    format: the format spec tables apply to a float value. scored: some tier's score weighs it
    (``Tier.score_weights``); the others are reported, and ``GATE`` ones can fail a design.
    """

    name: str
    label: str
    kind: str
    higher_is_better: bool
    description: str = ""
    chance: float | None = None
    format: str = ".4g"
    scored: bool = False
    source: str = "reported"

    def display(self, value) -> str:
        return format_value(value, self.format)


_REGISTERED = (
    # the checks
    Metric("init_loss", "init loss", "loss", False, "loss at initialization; the check expects about ln V"),
    Metric("mixer_params_per_d2", "mixer/d²", "structural", False, "parameters of the largest mixer layer / d_model²"),
    Metric("state_size", "state", "structural", False, "numbers the recurrent state holds per sequence, all layers"),
    Metric("time_exponent", "time exp", "machine", False, "slope of forward time over length, log-log (2: quadratic), "
           "timed by the OS from outside", source="measured"),
    Metric("memory_exponent", "mem exp", "machine", False, "slope of a forward pass's peak memory over length, "
           "log-log, by the OS", source="measured"),
    Metric("superlinear", "superlinear", "machine", False, "the scaling probe found time or memory superlinear",
           source="measured"),
    Metric("forward_s_longest", "fwd s", "machine", False, "seconds of one forward pass at the longest probed length",
           source="measured"),
    Metric("forward_mb_longest", "fwd MB", "machine", False, "peak memory of a forward pass at the longest probed "
           "length, MB", source="measured"),
    Metric("sees_whole_sequence", "sees all", "structural", True, "the last output at the longest probed length "
           "changes with the first token", source="measured"),
    Metric("sees_whole_training_sequence", "sees train", "structural", True, "the last output at the training "
           "length changes with the first token", source="measured"),
    Metric("cost_class", "cost", "structural", False, "what the design costs at inference: constant, windowed, "
           "quadratic, or unproven (no recurrent form), from its state measured by resuming in new processes "
           "(evaluator.cost)", source="measured"),
    Metric("cost_reason", "cost why", "structural", False, "the state sizes the cost class rests on",
           source="measured"),
    Metric("state_numbers", "state n", "structural", False, "numbers the check model's recurrent state holds at the "
           "training length, measured by resuming from it in a new process", source="measured"),
    Metric("state_kb", "state KB", "structural", False, "bytes of that state, KB", source="measured"),
    Metric("state_mb_16k", "state MB@16k", "structural", False, "the state's memory at 16k tokens, MB: as measured "
           "for a bounded state, extended along its growth for a growing one", source="measured"),
    Metric("flops_4k", "FLOPs@4k", "structural", False, "forward FLOPs per token at 4096 tokens: torch's flop "
           "counter in a query process at 256, 512 and 1024 tokens, fitted as a + b*T; matrix products, "
           "convolutions and attention only (evaluator.measure.measure_flops)", source="measured"),
    Metric("flops_16k", "FLOPs@16k", "structural", False, "forward FLOPs per token at 16384 tokens, as flops_4k",
           source="measured"),
    Metric("flops_reason", "FLOPs why", "structural", False, "the fit the FLOPs at 4k and 16k rest on",
           source="measured"),
    Metric("unused_params", "unused", "structural", False, "parameters no gradient reaches at initialization "
           "(a module some layers declare and do not use)"),
    Metric("kernels_declared", "kernels", "structural", True, "custom kernels the design declares"),
    # the tasks
    Metric("mqar_acc", "mqar", "accuracy", True, "multi-query associative recall: share of values recalled",
           scored=True, source="measured"),
    Metric("mqar_final_loss", "mqar loss", "loss", False, "MQAR training loss at the last step"),
    Metric("mqar_train_s", "mqar train s", "machine", False, "seconds of MQAR training"),
    Metric("tokens_per_s", "tok/s", "machine", True, "training tokens per CPU second of the design's process, "
           "by the OS's count", format=".0f", source="measured"),
    Metric("parity_acc", "parity", "accuracy", True, "parity of a bit string at the trained lengths", chance=0.5,
           scored=True, source="measured"),
    Metric("parity_long_acc", "parity long", "accuracy", True, "parity at lengths longer than any trained",
           chance=0.5, source="measured"),
    Metric("parity_final_loss", "parity loss", "loss", False, "parity training loss at the last step"),
    Metric("parity_train_s", "parity train s", "machine", False, "seconds of parity training"),
    Metric("lm_bpb", "bits/B", "loss", False, "byte-level LM: validation bits per byte (the LM gate)",
           source="measured"),
    Metric("lm_train_s", "lm train s", "machine", False, "seconds of LM training"),
    # the profile
    Metric("params", "params", "structural", False, "parameters of the first task's model, from its weights",
           source="measured"),
    Metric("flops_per_token", "FLOPs/tok", "structural", False, "forward and backward FLOPs of a step per token"),
    Metric("peak_rss_mb", "rss MB", "machine", False, "peak resident memory of the training process by the OS, MB",
           source="measured"),
    Metric("measure_s", "measure s", "machine", False, "seconds the trusted side spent measuring after training",
           source="measured"),
)

# Selections, each in the order its view shows them.
SUMMARY = ("mqar_acc", "parity_acc", "parity_long_acc", "lm_bpb", "cost_class", "state_kb", "state_mb_16k",
           "tokens_per_s", "state_size", "params", "flops_per_token", "time_exponent", "memory_exponent",
           "peak_rss_mb")  # first in every metric listing
LEADERBOARD = ("cost_class", "mqar_acc", "parity_acc", "lm_bpb", "state_kb", "tokens_per_s")  # `discover top`
REFERENCES = ("cost_class", "mqar_acc", "parity_acc", "lm_bpb", "state_kb")  # the table `discover seed` prints
LIVE = ("mqar_acc", "parity_acc")  # the best-so-far table of a running loop
BROWSER = ("cost_class", "mqar_acc", "parity_acc", "lm_bpb", "state_kb", "tokens_per_s", "params", "parity_long_acc",
           "time_exponent", "peak_rss_mb")  # the terminal UI's leaderboard, where a page's rows have them
GATE = ("lm_bpb",)  # not scored, but a design can fail on it (``evaluator.score.gate``), so verification compares it


@dataclass(frozen=True)
class Threshold:
    """A named line some metric is judged against: where a design fails, is flagged, or changes class."""

    name: str
    metric: str
    value: float
    description: str


THRESHOLDS: dict[str, Threshold] = {t.name: t for t in (
    Threshold("lm_gate_margin", "lm_bpb", 0.5, "bits per byte above the linear-attention reference's past which "
              "a design fails the LM gate (status lm-gate)"),
    Threshold("leak_suspect", "lm_bpb", 0.5, "fraction of the best reference's bits per byte under which a "
              "design is flagged leak-suspect"),
    Threshold("superlinear_time", "time_exponent", 1.5, "forward-time exponent past which the scaling probe "
              "flags growth as superlinear"),
    Threshold("superlinear_memory", "memory_exponent", 1.3, "forward-memory exponent past which the scaling "
              "probe flags growth as superlinear"),
    Threshold("state_growth", "state_numbers", 1.25, "ratio of the state's non-zero numbers at the end of the "
              "training sequence to those at its middle past which the state grows (cost class quadratic)"),
    Threshold("flops_fit", "flops_16k", 0.01, "relative deviation of the counted FLOPs per token from a + b*T "
              "past which flops_reason says the fit does not hold"),
)}


def threshold(name: str) -> float:
    return THRESHOLDS[name].value


def display_order(names: Iterable[str]) -> list[str]:
    """The distinct ``names`` as listings show them: those in ``SUMMARY`` in its order, then the rest by name."""
    names = set(names)
    return [m for m in SUMMARY if m in names] + sorted(names - set(SUMMARY))


_BY_NAME = {m.name: m for m in _REGISTERED}
# Every metric the evaluator reports, in display order.
METRICS: dict[str, Metric] = {name: _BY_NAME[name] for name in display_order(_BY_NAME)}


def _kind_by_name(name: str) -> str:
    if _DRAWN.match(name):
        return "drawn"
    if name.endswith("_s"):
        return "machine"
    if name.endswith("_acc"):
        return "accuracy"
    if "loss" in name or "bpb" in name:
        return "loss"
    return "structural"


def metric(name: str) -> Metric:
    """The registered metric, or one built from the name: kind by ``kind``'s rules, higher is better
    unless it is a loss, no chance level, shown with 4 significant digits, not scored."""
    if name in METRICS:
        return METRICS[name]
    inferred = _kind_by_name(name)
    return Metric(name, name, inferred, inferred != "loss")


def kind(name: str) -> str:
    """One of ``KINDS``. A name not registered: a kernel's figure from its hidden shapes is drawn, ``*_s``
    (a time or a rate) machine, ``*_acc`` accuracy, a name with ``loss`` or ``bpb`` in it loss, anything
    else structural (so a replay compares it exactly)."""
    return metric(name).kind
