"""The compositional design space the offline researcher searches, as data.

A point is a flat dict ``{choice: value}``. Only the choices that matter for the point appear in its
canonical form (``canonical``): the gate parametrization only for the updates whose decay it sets,
beta and delta steps only for the delta rules, and nothing but the attention kind for a
pure-attention design. That keeps the experience database's per-choice statistics free of values
that had no effect. A choice added after the statistics were keyed on canonical forms (``levels``)
shows only at a value other than its default, so every earlier point keeps its canonical form;
``applicable`` lists it where it could change the design. ``validate`` names every broken rule;
``render.render`` turns a valid point into a design file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    name: str
    description: str
    values: dict  # value -> what it means


CHOICES: tuple[Choice, ...] = (
    Choice("feature_map", "feature map phi applied to queries and keys", {
        "identity": "q and k as projected",
        "elu_p1": "elu(x) + 1, positive (Katharopoulos et al. 2020)",
        "relu": "relu(x), positive and sparse",
        "silu": "silu(x)",
        "softmax": "softmax over the key dimension, positive and summing to 1",
        "taylor2": "BASED's second-order Taylor map of exp(q.k), on 16-dim keys",
    }),
    Choice("update", "how each token changes the key-value memory S", {
        "additive": "S_t = S_{t-1} + k_t v_t^T (linear attention)",
        "decay_fixed": "S_t = gamma_h S_{t-1} + k_t v_t^T, fixed multi-scale decay per head (RetNet)",
        "decay": "S_t = exp(g_t) S_{t-1} + k_t v_t^T, scalar data-dependent decay per head (Mamba2)",
        "gated": "S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, data-dependent decay per key channel (GLA)",
        "delta": "S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T (DeltaNet)",
        "gated_delta": "S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T (Gated DeltaNet)",
        "channel_delta": "S_t = (I - beta_t k_t k_t^T) diag(exp(g_t)) S_{t-1} + beta_t k_t v_t^T, the gated delta "
                         "rule with a decay per key channel (Kimi Delta Attention, Kimi Linear, Moonshot AI 2025)",
        "generalized_delta": "S_t = (diag(w_t) - (a_t * kappa_t) kappa_t^T) S_{t-1} + k~_t v_t^T, a decay w_t and "
                             "learning rate a_t per key channel and separate removal and replacement keys (RWKV-7 "
                             "\"Goose\", Peng et al. 2025)",
        "slots": "Ks_t = diag(alpha_t) Ks_{t-1} + (1 - alpha_t) k_t^T and Vs_t likewise with v_t, read as Vs_t^T "
                 "softmax(Ks_t q_t): M gated key and value slots per head, as many as the head width, read through a "
                 "softmax over the slots (Gated Slot Attention, Zhang, Yang et al. 2024)",
    }),
    Choice("delta_steps", "delta-rule steps per token, each with its own key, value and beta", {
        1: "one step (DeltaNet)",
        2: "two Householder steps per token over an interleaved 2T sequence (DeltaProduct)",
    }),
    Choice("gate", "parametrization of the data-dependent log-decay g_t", {
        "logsigmoid16": "logsigmoid(W x_t) / 16 (GLA), decays start near 1",
        "mamba": "-exp(A) softplus(W x_t + dt_bias) (Mamba2)",
        # GSA's normalizer (fla's gate_logit_normalizer 8), which neither value above is: a value of its own, open
        # to every gated update, rather than logsigmoid16 read as / 8 for the slots, so a name says what it computes.
        "logsigmoid8": "logsigmoid(W x_t) / 8 (GSA), decays start near 0.92",
    }),
    Choice("beta", "range of the delta rule's writing strength beta_t", {
        "sigmoid": "sigmoid(W x_t) in (0, 1)",
        "2sigmoid": "2 sigmoid(W x_t) in (0, 2): negative eigenvalues (Grazzi et al. 2024)",
    }),
    Choice("qk_norm", "normalization of queries and keys after the feature map", {
        "none": "none",
        "l2": "L2 normalization over the key dimension",
    }),
    Choice("key_dim", "query/key width per head", {
        "head": "the head width d_model / n_heads",
        "half": "half the head width (GLA)",
        "16": "16, small enough for the Taylor feature map",
    }),
    Choice("rotary", "position information on queries and keys", {
        "none": "none (the short convolution and decay carry order)",
        "rope": "rotary position embeddings (RetNet)",
    }),
    Choice("conv", "width of the short causal convolution with silu on q, k and v (0 = none)", {
        0: "no convolution",
        2: "width 2",
        4: "width 4",
    }),
    Choice("out_gate", "gate on the read-out", {
        "none": "none",
        "swish": "multiplied by swish(W_g x_t)",
    }),
    Choice("out_norm", "normalization of the read-out", {
        "none": "none; the additive and decaying updates divide by their normalizing denominator instead",
        "rmsnorm": "per-head RMSNorm",
    }),
    Choice("memories", "memories per head, mixed by a per-token softmax router (Mixture-of-Memories)", {
        1: "one memory",
        2: "two memories",
        4: "four memories",
    }),
    Choice("levels", "states per head over the prefix (for the updates with at most a scalar decay per head)", {
        "single": "one state for the whole prefix",
        "loglinear": "O(log T) states over Fenwick buckets of power-of-two sizes, finest next to the token, read "
                     "with data-dependent per-level weights (Log-Linear Attention, Guo et al. 2025)",
    }),
    Choice("hybrid", "which layers are softmax attention, counting back from the last layer", {
        "none": "no attention layer",
        "every4": "the last layer and every 4th before it",
        "every2": "every 2nd layer, the last included",
        "all": "every layer: a pure attention design",
    }),
    Choice("attention", "kind of the attention layers", {
        "full": "causal softmax attention over the whole prefix",
        "swa16": "sliding-window attention over 16 tokens",
        "swa32": "sliding-window attention over 32 tokens",
        "swa64": "sliding-window attention over 64 tokens",
        "path": "causal softmax attention over the whole prefix positioned by PaTH's accumulated data-dependent "
                "Householder transforms instead of rotary embeddings (PaTH attention, Yang et al. 2025)",
    }),
    Choice("attn_gate", "gate on the attention layers' output", {
        "none": "none",
        "sigmoid": "each head's output multiplied element-wise by sigmoid(W_g x_t) (gated attention, Qiu et al. "
                   "2025)",
    }),
)
CHOICE_BY_NAME: dict[str, Choice] = {c.name: c for c in CHOICES}

DELTA_UPDATES = frozenset({"delta", "gated_delta", "channel_delta"})  # beta, delta steps and L2-normalized keys
# Updates that remove what the memory holds along a key.
ERASING_UPDATES = DELTA_UPDATES | {"generalized_delta"}
# Updates that need no normalizing denominator without an output norm: the erasing ones keep the memory bounded,
# and GSA's softmax reads convex mixtures of the values written into its slots.
BOUNDED_UPDATES = ERASING_UPDATES | {"slots"}
# Updates whose data-dependent log-decay the gate choice parametrizes (RWKV-7's decay is its own; GSA's gate is
# the forget gate of each slot).
GATED_UPDATES = frozenset({"decay", "gated", "gated_delta", "channel_delta", "slots"})
# Updates with at most one decay per head and token, which kernels.loglinear runs over Fenwick buckets.
LOGLINEAR_UPDATES = frozenset({"additive", "decay_fixed", "decay"})
# Choices added after the experience database keyed its statistics on canonical forms, with their defaults: such
# a choice shows in a canonical point only at another value, so every earlier point keeps its canonical form.
LATE_CHOICES = {"levels": "single"}
POSITIVE_MAPS = frozenset({"elu_p1", "relu", "softmax", "taylor2"})  # phi(q).phi(k) >= 0 always
TAYLOR_UPDATES = frozenset({"additive", "decay_fixed", "decay"})  # 1 + K + K^2 channels: no per-channel gate
# Recurrence cost relative to one memory with one delta step: memories x delta steps, doubled for the Taylor
# map's 1 + 16 + 256 channels, for RWKV-7's chunked form (two rows and two columns of decayed products, about
# twice the gated delta rule's time) and for GSA's two passes over its key and value slots (1.5-1.7x DeltaNet's
# layer time at the CPU tiers' shapes, where RWKV-7's took 1.6-2.2x). Above 4 a design is too slow for the CPU
# tiers (and memories x steps > 4 key/value projections exceed the parameter budget).
# Log-linear states count once: at the CPU tiers' 64 and 128 tokens (one or two Fenwick levels above the chunks of
# 32) a layer's forward and backward took 1.05x and 1.25x the time of its single state (Mamba2's point, one thread;
# 1.5x at 512 tokens), and the scalar-decay layers it applies to take 0.7-0.8x DeltaNet's time, the unit.
MAX_COST = 4
WINDOWS = {"swa16": 16, "swa32": 32, "swa64": 64}

# Values that fill a choice a point leaves out (DeltaNet's, the strongest plain recurrence).
DEFAULT_POINT: dict = {
    "feature_map": "identity", "update": "delta", "delta_steps": 1, "gate": "mamba", "beta": "sigmoid",
    "qk_norm": "l2", "key_dim": "head", "rotary": "none", "conv": 4, "out_gate": "none",
    "out_norm": "rmsnorm", "memories": 1, "levels": "single", "hybrid": "none", "attention": "full",
    "attn_gate": "none",
}


def applicable(point: Mapping) -> tuple[str, ...]:
    """The choices whose value could change the design ``point`` describes (``point`` is completed first):
    ``relevant``'s, and a late choice at its default where it applies (``levels`` for the scalar-decay updates)."""
    p = complete(point)
    if p["hybrid"] == "all":
        return ("hybrid", "attention", "attn_gate")
    names = []
    for choice in CHOICES:
        if choice.name in ("delta_steps", "beta") and p["update"] not in DELTA_UPDATES:
            continue
        if choice.name == "gate" and p["update"] not in GATED_UPDATES:
            continue
        if choice.name == "levels" and p["update"] not in LOGLINEAR_UPDATES:
            continue
        if choice.name in ("attention", "attn_gate") and p["hybrid"] == "none":
            continue
        names.append(choice.name)
    return tuple(names)


def relevant(point: Mapping) -> tuple[str, ...]:
    """The choices that affect the design ``point`` describes (``point`` is completed first); a late choice at
    its default is left out (``LATE_CHOICES``)."""
    p = complete(point)
    return tuple(name for name in applicable(p) if name not in LATE_CHOICES or p[name] != LATE_CHOICES[name])


def _coerce(name: str, value):
    """``value`` as the choice's own type: "4" -> 4 for integer choices (statistics key values by str)."""
    allowed = CHOICE_BY_NAME[name].values
    if value in allowed:
        return value
    for candidate in allowed:
        if str(candidate) == str(value):
            return candidate
    raise ValueError(f"{name}={value!r} is not a value of the space; expected one of {list(allowed)}")


def complete(point: Mapping, fill: Mapping | None = None) -> dict:
    """Every choice, in ``CHOICES`` order; those ``point`` lacks come from ``fill`` (DEFAULT_POINT)."""
    unknown = sorted(set(point) - set(CHOICE_BY_NAME))
    if unknown:
        raise ValueError(f"unknown choice(s) {', '.join(unknown)}; the space has {', '.join(CHOICE_BY_NAME)}")
    fill = DEFAULT_POINT if fill is None else fill
    return {c.name: _coerce(c.name, point[c.name] if c.name in point else fill[c.name]) for c in CHOICES}


def canonical(point: Mapping) -> dict:
    """The point's relevant choices only, in ``CHOICES`` order, with values of the choices' own types.

    Two points that describe the same design have equal canonical forms. Missing choices take
    ``DEFAULT_POINT``'s values; an unknown choice or value raises ``ValueError``.
    """
    p = complete(point)
    return {name: p[name] for name in relevant(p)}


def validate(point: Mapping) -> list[str]:
    """Every reason ``point`` is not a valid design, as sentences; empty when it is valid."""
    problems = [f"unknown choice {name!r}" for name in point if name not in CHOICE_BY_NAME]
    for name, value in point.items():
        if name in CHOICE_BY_NAME:
            try:
                _coerce(name, value)
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        return problems
    p = complete(point)
    if p["hybrid"] == "all":
        return []
    update, fm = p["update"], p["feature_map"]
    if update in DELTA_UPDATES and p["qk_norm"] != "l2":
        problems.append(f"the {update} rule needs L2-normalized keys (qk_norm='l2') to stay stable")
    if fm == "taylor2" and p["key_dim"] != "16":
        problems.append("the taylor2 feature map has 1 + K + K^2 channels; it needs key_dim='16'")
    if fm == "taylor2" and update not in TAYLOR_UPDATES:
        allowed = ", ".join(sorted(TAYLOR_UPDATES))
        problems.append(f"the taylor2 feature map works only with {allowed} updates")
    if p["out_norm"] == "none" and update not in BOUNDED_UPDATES and fm not in POSITIVE_MAPS:
        positive = ", ".join(sorted(POSITIVE_MAPS))
        problems.append(f"without an output norm the {update} update divides by its denominator, which "
                        f"needs a positive feature map ({positive}), not {fm}")
    if cost(p) > MAX_COST:
        problems.append(f"memories x delta steps (x 2 for taylor2, generalized_delta and slots) = {cost(p)} "
                        f"exceeds the cost limit {MAX_COST}")
    return problems


def cost(point: Mapping) -> int:
    """The recurrence's cost relative to one memory with one step (see ``MAX_COST``); 0 for attention."""
    p = complete(point)
    if p["hybrid"] == "all":
        return 0
    steps = p["delta_steps"] if p["update"] in DELTA_UPDATES else 1
    double = p["feature_map"] == "taylor2" or p["update"] in ("generalized_delta", "slots")
    return p["memories"] * steps * (2 if double else 1)


def is_valid(point: Mapping) -> bool:
    return not validate(point)


def repair(point: Mapping) -> dict:
    """``point`` (canonical) with the rules that have an obvious fix fixed; may still be invalid.

    A delta rule gets L2-normalized keys, the Taylor map its 16-dim keys, a missing output norm on a
    signed feature map becomes an RMSNorm (unless the update keeps its read-out bounded), and a design
    over the cost limit loses memories.
    """
    p = complete(point)
    if p["hybrid"] != "all":
        if p["update"] in DELTA_UPDATES:
            p["qk_norm"] = "l2"
        if p["feature_map"] == "taylor2":
            p["key_dim"] = "16"
        bounded = p["update"] in BOUNDED_UPDATES
        if p["out_norm"] == "none" and not bounded and p["feature_map"] not in POSITIVE_MAPS:
            p["out_norm"] = "rmsnorm"
        while cost(p) > MAX_COST and p["memories"] > 1:
            p["memories"] //= 2
    return canonical(p)


def random_point(rng: random.Random) -> dict:
    """A valid canonical point, every choice drawn uniformly (invalid draws are redrawn)."""
    while True:
        point = {c.name: rng.choice(list(c.values)) for c in CHOICES}
        if is_valid(point):
            return canonical(point)


def diff(old: Mapping | None, new: Mapping) -> dict[str, list]:
    """{choice: [old value, new value]} for every choice whose canonical value differs (None = absent)."""
    a = canonical(old) if old is not None else {}
    b = canonical(new)
    return {c.name: [a.get(c.name), b.get(c.name)] for c in CHOICES if a.get(c.name) != b.get(c.name)}


_UPDATE_TOKENS = {"additive": "linear", "decay_fixed": "retention", "decay": "decay", "gated": "gla",
                  "delta": "delta", "gated_delta": "gated-delta", "channel_delta": "kda",
                  "generalized_delta": "rwkv7", "slots": "gsa"}
_MAP_TOKENS = {"identity": "", "elu_p1": "elu", "relu": "relu", "silu": "silu", "softmax": "softmax",
               "taylor2": "taylor"}
_GATE_TOKENS = {"logsigmoid16": "lsig", "mamba": "mamba", "logsigmoid8": "lsig8"}


def family(point: Mapping | None) -> str:
    """The kind of design a point is, for the niches of the search's archive: its update rule (prefixed
    ``loglinear_`` for log-linear states), attention, or the update with attention layers mixed in;
    ``unplaced`` for a design without a point."""
    if point is None or not is_valid(point):
        return "unplaced"
    p = canonical(point)
    if p["hybrid"] == "all":
        return "attention"
    update = f"loglinear_{p['update']}" if p.get("levels") == "loglinear" else p["update"]
    return update if p["hybrid"] == "none" else f"{update}+attention"


def point_name(point: Mapping) -> str:
    """A short readable name, different for different canonical points: 'gated-delta-mamba-c4-swish'."""
    p = canonical(point)
    gated = "gated-" if p.get("attn_gate") == "sigmoid" else ""
    if p["hybrid"] == "all":
        return gated + ("softmax-attention" if p["attention"] == "full" else f"{p['attention']}-attention")
    delta = p["update"] in DELTA_UPDATES
    tokens = [_MAP_TOKENS[p["feature_map"]], _UPDATE_TOKENS[p["update"]]]
    if p.get("levels") == "loglinear":
        tokens.append("loglinear")
    if delta and p["delta_steps"] > 1:
        tokens.append(f"product{p['delta_steps']}")
    if "gate" in p:
        tokens.append(_GATE_TOKENS[p["gate"]])
    if p.get("beta") == "2sigmoid":
        tokens.append("negeig")
    if p["qk_norm"] == "l2" and not delta:
        tokens.append("l2")
    if p["key_dim"] != "head" and p["feature_map"] != "taylor2":
        tokens.append({"half": "khalf", "16": "k16"}[p["key_dim"]])
    if p["rotary"] == "rope":
        tokens.append("rope")
    if p["conv"]:
        tokens.append(f"c{p['conv']}")
    if p["out_gate"] == "swish":
        tokens.append("swish")
    if p["out_norm"] == "none":
        tokens.append("nonorm" if p["update"] in BOUNDED_UPDATES else "denom")
    if p["memories"] > 1:
        tokens.append(f"m{p['memories']}")
    if p["hybrid"] != "none":
        kind = "attn" if p["attention"] == "full" else p["attention"]
        tokens.append(f"{'g' if gated else ''}{kind}-{p['hybrid']}")
    return "-".join(t for t in tokens if t)


_MEMORY_SENTENCES = {
    "additive": (
        "Each head keeps a key-value memory that every token adds to, S_t = S_{t-1} + k_t v_t^T (linear "
        "attention, Katharopoulos et al. 2020), read by the token's query."
    ),
    "decay_fixed": (
        "Each head keeps a key-value memory that decays by a fixed factor, S_t = gamma_h S_{t-1} + k_t "
        "v_t^T with gamma_h = 1 - 2^(-5 - h) (RetNet's multi-scale retention, Sun et al. 2023), so heads "
        "see windows of different lengths."
    ),
    "decay": (
        "Each head keeps a key-value memory with a scalar, data-dependent forget gate, S_t = exp(g_t) "
        "S_{t-1} + k_t v_t^T (the selective decay of Mamba2's SSD, Dao & Gu 2024), so a token can clear the "
        "memory when the context changes."
    ),
    "gated": (
        "Each head keeps a key-value memory with a data-dependent forget gate per key channel, S_t = "
        "diag(exp(g_t)) S_{t-1} + k_t v_t^T (GLA, Yang et al. 2023), so each token chooses what to forget."
    ),
    "delta": (
        "Each head keeps a fast-weight memory edited by the delta rule, S_t = (I - beta_t k_t k_t^T) "
        "S_{t-1} + beta_t k_t v_t^T (DeltaNet, Schlag et al. 2021; Yang et al. 2024), which replaces the "
        "value stored under a key instead of adding to it."
    ),
    "gated_delta": (
        "Each head keeps a fast-weight memory edited by the gated delta rule, S_t = exp(g_t) (I - beta_t "
        "k_t k_t^T) S_{t-1} + beta_t k_t v_t^T (Gated DeltaNet, Yang et al. 2024), which joins precise "
        "overwriting with fast forgetting."
    ),
    "channel_delta": (
        "Each head keeps a fast-weight memory edited by Kimi Delta Attention, S_t = (I - beta_t k_t k_t^T) "
        "diag(exp(g_t)) S_{t-1} + beta_t k_t v_t^T (KDA, the recurrent layer of Kimi Linear, Moonshot AI 2025): "
        "the gated delta rule with a forget gate per key channel, so a head can keep some key dimensions for "
        "hundreds of tokens while clearing others at once, and still overwrite single associations."
    ),
    "generalized_delta": (
        "Each head keeps a memory edited by RWKV-7's generalized delta rule, S_t = (diag(w_t) - (a_t * kappa_t) "
        "kappa_t^T) S_{t-1} + k~_t v_t^T (RWKV-7 \"Goose\", Peng et al. 2025): each token decays the memory by "
        "w_t per key channel, removes what it holds along the unit removal key kappa_t = normalize(k_t * k_k) "
        "at the in-context learning rate a_t = sigmoid(low-rank(x_t)), a vector over the channels, and writes "
        "v_t under the replacement key k~_t = k_t * (1 + (a_t - 1) * k_a). The decay is w_t = exp(-e^-0.5 "
        "sigmoid(d_t)) in (0.545, 1) with d_t from a tanh low-rank projection, starting slow to fast across the "
        "channels as in flash-linear-attention but 2 units slower; a bonus (q_t . (k~_t * r_k)) v_t passes the "
        "current token on directly, and the recurrence runs with scale 1, as in RWKV-7."
    ),
    "slots": (
        "Each head keeps M slots, as many as its width, each a key row and a value row written as moving averages "
        "under a data-dependent forget gate alpha_t per slot, Ks_t = diag(alpha_t) Ks_{t-1} + (1 - alpha_t) k_t^T "
        "and Vs_t likewise with v_t, and reads them as o_t = Vs_t^T softmax(Ks_t q_t) (Gated Slot Attention, Zhang, "
        "Yang et al. 2024): softmax attention over the slots as summary tokens, so one slot can win the read where "
        "a linear read blurs every stored association, in a state of 2 M d numbers per head that cannot grow. As "
        "in GSA, the values pass a silu, the scores are not scaled, the read-out passes a silu, and training runs "
        "two passes of gated linear attention joined by the softmax."
    ),
}
_GATE_SENTENCES = {
    "logsigmoid16": (
        "The log-decay is logsigmoid(W_a x_t) / 16, GLA's parametrization, which keeps early decays near 1 "
        "so memories last long at the start of training."
    ),
    "mamba": (
        "The log-decay is -exp(A) softplus(W_a x_t + dt_bias), Mamba2's parametrization, with A in [1, 16] "
        "and dt in [0.001, 0.1] at initialization."
    ),
    "logsigmoid8": (
        "The log-decay is logsigmoid(W_a x_t) / 8, the normalizer of Gated Slot Attention, so decays start near "
        "0.92 and memories begin about half as long as with GLA's 16."
    ),
}
_KDA_GATE_SENTENCES = {
    "logsigmoid16": _GATE_SENTENCES["logsigmoid16"],
    "logsigmoid8": _GATE_SENTENCES["logsigmoid8"],
    "mamba": (
        "The log-decay per key channel is -exp(A_h) softplus(W_f2 W_f1 x_t + dt_bias), Kimi Delta Attention's "
        "form of Mamba2's parametrization: a low-rank projection of rank the head width, A in [1, 16] per head "
        "and dt log-uniform in [0.0001, 0.01] per channel at initialization."
    ),
}
_SLOT_GATE_SENTENCES = {
    "logsigmoid8": (
        "Each slot's log forget gate is logsigmoid(W_f x_t) / 8 from a full-rank projection, GSA's, so the gates "
        "start near 0.92 and the write strength 1 - alpha_t near 0.08."
    ),
    "logsigmoid16": (
        "Each slot's log forget gate is logsigmoid(W_f x_t) / 16 from a full-rank projection, GLA's normalizer, so "
        "the gates start near 0.96 and the slots remember about twice as long as GSA's."
    ),
    "mamba": (
        "Each slot's log forget gate is -exp(A) softplus(W_a x_t + dt_bias), Mamba2's parametrization per slot, "
        "with A in [1, 16] and dt log-uniform in [0.001, 0.1] at initialization, so the slots start with "
        "different memory lengths instead of as near-copies of each other."
    ),
}
_GATE_SENTENCES_BY_UPDATE = {"channel_delta": _KDA_GATE_SENTENCES, "slots": _SLOT_GATE_SENTENCES}
_LOGLINEAR = (
    "The memory is log-linear (Log-Linear Attention, Guo et al. 2025): each token's prefix is split Fenwick-style "
    "into O(log T) buckets of power-of-two sizes, finest next to the token, each bucket keeps a state of its own, "
    "and the read-out weighs the buckets with lambda_t^(l) = softplus(L_l w_l . x_t) per head and level (L "
    "starting at 1), so a head reads recent and distant context separately; with every weight 1 it is the single "
    "memory again. Stepping keeps one state per set bit of the position, merged like a binary counter's carry, "
    "and training runs the chunked O(T log T) form."
)
_BETA_SENTENCES = {
    "sigmoid": "The writing strength is beta_t = sigmoid(W_b x_t) in (0, 1).",
    "2sigmoid": (
        "The writing strength is beta_t = 2 sigmoid(W_b x_t) in (0, 2), so the transition has eigenvalues "
        "in (-1, 1) and can reflect the memory (Grazzi et al. 2024), which state tracking such as parity "
        "needs."
    ),
}
_MAP_PHRASES = {
    "elu_p1": "the elu + 1 feature map",
    "relu": "a relu feature map",
    "silu": "a silu feature map",
    "softmax": "a softmax over the key dimension",
    "taylor2": (
        "the second-order Taylor feature map of BASED (Arora et al. 2024), whose inner products approximate "
        "exp(q.k / sqrt(d))"
    ),
}
_ATTENTION_GATE = (
    "Each attention head's output is multiplied element-wise by sigmoid(W_g x_t) before the output projection "
    "(gated attention, Qiu et al. 2025), a query-dependent gate that lets a head return nothing, removes the "
    "attention sink on the first token and adds a non-linearity between the value and output projections."
)
_KEY_PHRASES = {"head": "the head width", "half": "half the head width", "16": "16 channels"}
_PATH_ENCODING = (
    "PaTH attention (Yang et al. 2025): causal softmax attention whose position encoding, in place of rotary "
    "embeddings, is a product of data-dependent Householder-like transforms H_s = I - beta_s w_s w_s^T, one per "
    "token, so query i scores key j as q_i^T H_i ... H_{j+1} k_j / sqrt(d) and what lies between two tokens, not "
    "only how far apart they are, decides how they match, which lets attention track state (parity, "
    "permutations) that RoPE cannot"
)
_PATH_TRANSFORMS = (
    "As in flash-linear-attention's PaTHAttention, w_s comes from a low-rank projection (rank 32), a short "
    "convolution of width 3 with silu and an L2 norm per head, and beta_s = 2 sigmoid(W_b x_s + b) per head in "
    "(0, 2), starting near 1 (a reflection at 2); training runs the exact blockwise form of kernels.path."
)


def describe(point: Mapping) -> str:
    """The motivation paragraph of the point's design file: what each choice does and why, with sources."""
    p = canonical(point)
    if p["hybrid"] == "all":
        if p["attention"] == "full":
            text = ("Every layer is causal softmax attention with rotary position embeddings (Vaswani et "
                    "al. 2017; Su et al. 2021): exact retrieval of any earlier token, at a cost quadratic in "
                    "the sequence length and with a cache that grows with it.")
        elif p["attention"] == "path":
            text = (f"Every layer is {_PATH_ENCODING}. {_PATH_TRANSFORMS} Its step keeps attention's key-value "
                    "cache, which grows with the sequence (a cost quadratic in its length), and moves every cached "
                    "key through the new token's H_t.")
        else:
            text = (f"Every layer is softmax attention over a sliding window of the last "
                    f"{WINDOWS[p['attention']]} tokens with rotary position embeddings: exact local modelling "
                    "at a cost linear in the sequence length, with nothing remembered beyond the window.")
        return text + (f" {_ATTENTION_GATE}" if p["attn_gate"] == "sigmoid" else "")
    delta = p["update"] in DELTA_UPDATES
    sentences = [_MEMORY_SENTENCES[p["update"]]]
    if delta and p["delta_steps"] > 1:
        sentences.append(f"Each token takes {p['delta_steps']} such steps with keys, values and betas of its "
                         "own (DeltaProduct, Siems et al. 2025), a product of generalized Householder "
                         "transitions that is more expressive than one; the chunked delta rule runs them "
                         "over the interleaved sequence of (k, v) pairs and keeps every token's last output.")
    if p.get("levels") == "loglinear":
        sentences.append(_LOGLINEAR)
    if "gate" in p:
        sentences.append(_GATE_SENTENCES_BY_UPDATE.get(p["update"], _GATE_SENTENCES)[p["gate"]])
    if delta:
        sentences.append(_BETA_SENTENCES[p["beta"]])
    qk = [f"have {_KEY_PHRASES[p['key_dim']]} per head"]
    if p["feature_map"] != "identity":
        qk.append(f"pass {_MAP_PHRASES[p['feature_map']]}")
    if p["qk_norm"] == "l2":
        qk.append("are L2-normalized" + (" so each update is a stable projection" if delta else ""))
    if p["rotary"] == "rope":
        qk.append("carry rotary position embeddings")
    listed = ", ".join(qk[:-1]) + " and " + qk[-1] if len(qk) > 1 else qk[0]
    queries = "Queries (RWKV-7's receptance)" if p["update"] == "generalized_delta" else "Queries"
    sentences.append(f"{queries} and keys {listed}.")
    if p["conv"]:
        sentences.append(f"Short causal convolutions of width {p['conv']} with silu on q, k and v give each "
                         "token its neighbours before it is written.")
    if p["memories"] > 1:
        sentences.append(f"Each head has {p['memories']} memories with key and value projections of their "
                         "own, read with the same query and mixed by a per-token softmax router (after "
                         "Mixture-of-Memories, Du et al. 2025), so more associations fit without "
                         "interfering.")
    if p["update"] == "generalized_delta":
        first = ("The read-out passes a per-head RMSNorm" if p["out_norm"] == "rmsnorm"
                 else "The read-out is not normalized")
        sentences.append(first + (", the bonus is added, and the sum is gated by swish(W_g x_t)."
                                  if p["out_gate"] == "swish" else ", and the bonus is added."))
    elif p["update"] == "slots":
        first = ("The read-out passes its silu, then an RMSNorm over all heads together, as in GSA"
                 if p["out_norm"] == "rmsnorm"
                 else "The read-out passes its silu and is not normalized: the softmax weighs slot values that are "
                      "moving averages of what was written, so it stays bounded")
        sentences.append(first + ("; it is gated by swish(W_g x_t)." if p["out_gate"] == "swish" else "."))
    elif p["out_norm"] == "rmsnorm":
        sentences.append("The read-out passes a per-head RMSNorm" + (
            " gated by swish(W_g x_t)." if p["out_gate"] == "swish" else "."))
    else:
        if delta:
            first = "The read-out is not normalized, the delta rule keeps the memory bounded"
        elif p.get("levels") == "loglinear":
            first = ("The read-out is divided by the normalizing denominator phi(q_t) . sum_s phi(k_s), "
                     "decayed and weighted by level like the memory, which the positive feature map keeps positive")
        else:
            first = ("The read-out is divided by the normalizing denominator phi(q_t) . sum_s phi(k_s), "
                     "decayed like the memory, which the positive feature map keeps positive")
        sentences.append(first + ("; it is gated by swish(W_g x_t)." if p["out_gate"] == "swish" else "."))
    if p["hybrid"] != "none":
        where = {"every2": "Every second layer", "every4": "Every fourth layer"}[p["hybrid"]]
        if p["attention"] == "path":
            sentences.append(f"{where}, counting back from the last, is {_PATH_ENCODING}; it supplies the exact "
                             f"retrieval a fixed-size memory loses. {_PATH_TRANSFORMS} Its step keeps a key-value "
                             "cache, which grows with the sequence, and moves every cached key through the new "
                             "token's H_t.")
        else:
            kind = ("full softmax attention" if p["attention"] == "full"
                    else f"softmax attention over a sliding window of {WINDOWS[p['attention']]} tokens")
            sentences.append(f"{where}, counting back from the last, is {kind} with rotary embeddings, supplying "
                             "the exact retrieval a fixed-size memory loses; its step keeps a key-value cache, "
                             "which grows with the sequence"
                             + ("." if p["attention"] == "full" else " up to the window."))
        if p["attn_gate"] == "sigmoid":
            sentences.append(_ATTENTION_GATE)
    return " ".join(sentences)
