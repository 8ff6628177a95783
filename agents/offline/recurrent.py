"""One recurrent layer of a rendered design: its projections, gates, feature maps, state update and
output, as the lines of a class for a canonical point of the design space (no attention)."""

from __future__ import annotations

import textwrap

from agents.offline.lines import (
    CONTRACT_ARGS,
    DIVISIBLE,
    INDENT,
    LINE_LENGTH,
    SMALL_INIT,
    indent,
    join_methods,
    signature,
)
from agents.offline.space import BOUNDED_UPDATES, DELTA_UPDATES
from kernels.emit import FAMILIES, wrapper_name

_KERNEL_OPS = {  # update -> (module, chunked op, step op)
    "additive": ("kernels.linear_attn", "chunk_linear_attn", "linear_attn_step"),
    "decay_fixed": ("kernels.simple_gla", "chunk_simple_gla", "simple_gla_step"),
    "decay": ("kernels.simple_gla", "chunk_simple_gla", "simple_gla_step"),
    "gated": ("kernels.gla", "chunk_gla", "gla_step"),
    "delta": ("kernels.delta_rule", "chunk_delta_rule", "delta_rule_step"),
    "gated_delta": ("kernels.gated_delta_rule", "chunk_gated_delta_rule", "gated_delta_rule_step"),
    "channel_delta": ("kernels.kda", "chunk_kda", "kda_step"),
    "generalized_delta": ("kernels.rwkv7", "chunk_rwkv7", "rwkv7_step"),
    "slots": ("kernels.gsa", "chunk_gsa", "gsa_step"),
}
_LOGLINEAR_OPS = ("kernels.loglinear", "chunk_loglinear_attn", "loglinear_step")
_LAYER_DOCS = {
    "additive": "Linear attention, S_t = S_{t-1} + k_t v_t^T, read by q_t.",
    "decay_fixed": "Retention, S_t = gamma_h S_{t-1} + k_t v_t^T with a fixed decay per head, read by q_t.",
    "decay": "Linear attention with a scalar forget gate, S_t = exp(g_t) S_{t-1} + k_t v_t^T, read by q_t.",
    "gated": "Gated linear attention, S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, read by q_t.",
    "delta": "The delta rule S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, read by q_t.",
    "gated_delta": "The gated delta rule S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T.",
    "channel_delta": "Kimi Delta Attention, S_t = (I - beta_t k_t k_t^T) diag(exp(g_t)) S_{t-1} + beta_t k_t v_t^T.",
    "generalized_delta": "RWKV-7, S_t = (diag(w_t) - (a_t * kappa_t) kappa_t^T) S_{t-1} + k~_t v_t^T, read by q_t.",
    "slots": "Gated Slot Attention: key and value slots, each under a forget gate, read by softmax(Ks_t q_t).",
}
_LOGLINEAR_DOCS = {
    "additive": "Log-linear linear attention: one memory per Fenwick bucket of the prefix, weighed per level.",
    "decay_fixed": "Log-linear retention: one decaying memory per Fenwick bucket of the prefix, weighed per level.",
    "decay": "Log-linear attention with a scalar forget gate: a memory per Fenwick bucket, weighed per level.",
}
_NORMALIZERS = {"logsigmoid16": 16, "logsigmoid8": 8}  # logsigmoid gates: log-decay logsigmoid(W x) / normalizer
_KEY_DIMS = {"head": "d_model // n_heads", "half": "max(1, d_model // n_heads // 2)", "16": "16"}


class RecurrentLayer:
    """The lines of one recurrent layer class for a canonical point (no attention).

    ``kernel``: run the design's own Triton kernel (``kernels.emit``) in ``forward`` on a GPU, where the
    update has one; KDA's, RWKV-7's, GSA's and log-linear attention's have none and always run the
    chunked forms of ``kernels``.
    """

    def __init__(self, p: dict, class_name: str, contract: bool, imports: set, kernel: bool = False):
        self.p, self.class_name, self.contract, self.imports = p, class_name, contract, imports
        self.update = p["update"]
        self.delta = self.update in DELTA_UPDATES
        self.rwkv = self.update == "generalized_delta"
        self.slots = self.update == "slots"
        self.loglinear = p.get("levels") == "loglinear"
        self.steps = p["delta_steps"] if self.delta else 1
        self.memories = p["memories"]
        self.conv = p["conv"]
        self.taylor = p["feature_map"] == "taylor2"
        self.denominator = p["out_norm"] == "none" and self.update not in BOUNDED_UPDATES
        self.gate = p.get("gate")
        self.normalizer = _NORMALIZERS.get(self.gate)
        self.per_channel = self.update in ("gated", "channel_delta", "generalized_delta")
        self.depth = self.rwkv  # the initial decays depend on the layer's depth: __init__ takes layer_idx
        factors = [f for f, n in (("self.n_memories", self.memories), ("self.n_steps", self.steps)) if n > 1]
        self.kv_factor = "".join(f"{f} * " for f in factors)  # key/value heads per query head, as code
        self.kv_heads = " * ".join(["H", *("M" if f.endswith("memories") else "S" for f in factors)])
        module, self.chunk_op, self.step_op = _LOGLINEAR_OPS if self.loglinear else _KERNEL_OPS[self.update]
        self.kernel_module = module
        self.op = module.removeprefix("kernels.")
        has_kernel = kernel and self.op in FAMILIES
        self.kernel = wrapper_name(self.op) if has_kernel else None  # the design's own Triton kernel

    def lines(self) -> list[str]:
        head = [f"class {self.class_name}(nn.Module):"]
        if not self.contract:
            doc = (_LOGLINEAR_DOCS if self.loglinear else _LAYER_DOCS)[self.update]
            head += [f'{INDENT}"""{doc}"""', ""]
        attributes = []
        if self.memories > 1:
            attributes.append(f"n_memories = {self.memories}  # per head, read by one query and mixed "
                              "by a router")
        if self.steps > 1:
            attributes.append(f"n_steps = {self.steps}  # delta-rule steps per token, each with its own "
                              "k, v and beta")
        if self.update == "decay_fixed":
            attributes.append("log_decay: Tensor")
        if attributes:
            head += [*indent(attributes), ""]
        methods = [self.init(), self.reset(), *self.helpers(), self.forward(), self.init_state(), self.step()]
        return head + join_methods(methods)

    def _use(self, module: str, name: str) -> str:
        self.imports.add((module, name))
        return name

    def init(self) -> list[str]:
        p = self.p
        args = f"self, {CONTRACT_ARGS}" if self.contract or self.depth else "self, d_model: int, n_heads: int"
        if self.conv:
            args += f", conv_size: int = {self.conv}"
        if self.contract:
            args += ", **kw"
        key = _KEY_DIMS[p["key_dim"]]
        body = ["super().__init__()", *(DIVISIBLE if self.contract else []), "self.n_heads = n_heads",
                f"self.head_k_dim = {key}", "self.head_v_dim = d_model // n_heads",
                "key_dim = n_heads * self.head_k_dim"]
        if self.slots:
            body.append("self.n_slots = self.head_v_dim  # key and value slots per head: the head width, as in fla")
        kv = self.kv_factor
        if self.memories > 1 and self.steps > 1:
            body.append("kv_heads = self.n_memories * self.n_steps  # key/value heads per query head")
            kv = "kv_heads * "
        body += ["self.q_proj = nn.Linear(d_model, key_dim, bias=False)",
                 f"self.k_proj = nn.Linear(d_model, {kv}key_dim, bias=False)",
                 f"self.v_proj = nn.Linear(d_model, {kv}d_model, bias=False)"]
        if self.delta:
            body.append(f"self.b_proj = nn.Linear(d_model, {kv}n_heads, bias=False)")
        gate_dim = "key_dim" if self.per_channel else "n_heads * self.n_slots" if self.slots else "n_heads"
        if self.normalizer and self.slots:
            body += ["# GSA's forget gates: one per slot, from a full-rank projection.",
                     "self.f_proj = nn.Linear(d_model, n_heads * self.n_slots, bias=False)"]
        elif self.normalizer and self.per_channel:
            low_rank = "nn.Linear(d_model, 16, bias=False), nn.Linear(16, key_dim, bias=True)"
            body += ["# GLA's low-rank gate projection.", f"self.gk_proj = nn.Sequential({low_rank})"]
        elif self.normalizer:
            body.append("self.a_proj = nn.Linear(d_model, n_heads, bias=True)")
        elif self.gate == "mamba" and self.update == "channel_delta":
            body += ["# Kimi Delta Attention's low-rank gate projection (rank the head width).",
                     "self.f_proj = nn.Sequential(nn.Linear(d_model, self.head_v_dim, bias=False),",
                     "                            nn.Linear(self.head_v_dim, key_dim, bias=False))",
                     "self.A_log = nn.Parameter(torch.empty(n_heads))",
                     "self.dt_bias = nn.Parameter(torch.empty(key_dim))  # one per key channel"]
        elif self.gate == "mamba":
            body += [f"self.a_proj = nn.Linear(d_model, {gate_dim}, bias=False)",
                     f"self.A_log = nn.Parameter(torch.empty({gate_dim}))",
                     f"self.dt_bias = nn.Parameter(torch.empty({gate_dim}))"]
        if self.update == "decay_fixed":
            repeat = ".repeat_interleave(self.n_memories)" if self.memories > 1 else ""
            shape = "(H * M,)" if self.memories > 1 else "(H,)"
            body += ["# RetNet's multi-scale decays gamma_h = 1 - 2^(-5 - h).",
                     "gamma = 1.0 - 2.0 ** (-5.0 - torch.arange(n_heads, dtype=torch.float32))",
                     f"log_decay = gamma.log(){repeat}  # {shape}",
                     'self.register_buffer("log_decay", log_decay, persistent=False)']
        if self.rwkv:
            body += self._rwkv_init()
        if self.loglinear:
            levels = self._use("kernels.loglinear", "num_levels")
            body += ["# Log-linear attention's level weights: 17 levels cover 2^16 tokens (coarser buckets share "
                     "the last).",
                     f"self.n_levels = {levels}(1 << 16)",
                     "self.lambda_proj = nn.Linear(d_model, n_heads * self.n_levels, bias=False)",
                     "self.L = nn.Parameter(torch.ones(n_heads, self.n_levels))  # scales each level's projection"]
        if self.memories > 1:
            body.append("self.r_proj = nn.Linear(d_model, n_heads * self.n_memories, bias=False)")
        if self.conv:
            conv = self._use("kernels.conv", "ShortConvolution")
            body += [f'self.{t}_conv = {conv}({dim}, kernel_size=conv_size, activation="silu")'
                     for t, dim in (("q", "key_dim"), ("k", f"{kv}key_dim"), ("v", f"{kv}d_model"))]
        if p["rotary"] == "rope":
            body.append(f"self.rotary = {self._use('kernels.attention', 'RotaryEmbedding')}(self.head_k_dim)")
        if p["feature_map"] != "identity":
            phi = self._use("kernels.feature_maps", "feature_map")
            body.append(f'self.feature_map = {phi}("{p["feature_map"]}")')
        if p["out_gate"] == "swish":
            body.append("self.g_proj = nn.Linear(d_model, d_model, bias=False)")
        if p["out_norm"] == "rmsnorm":
            gated = p["out_gate"] == "swish" and not self.rwkv  # RWKV-7 adds its bonus before the gate
            norm = self._use("kernels.norm", "GatedRMSNorm" if gated else "RMSNorm")
            if self.slots:
                body.append(f"self.o_norm = {norm}(d_model, eps=1e-5)  # over all heads together, as in GSA")
            else:
                body.append(f"self.o_norm = {norm}(self.head_v_dim)")
        body += ["self.o_proj = nn.Linear(d_model, d_model, bias=False)", "self.reset_parameters()"]
        return [*signature("__init__", args), *indent(body)]

    def _rwkv_init(self) -> list[str]:
        heads = "n_heads * self.n_memories" if self.memories > 1 else "n_heads"
        return [
            "# fla's low-rank width for the decay and the learning rate (32 at these widths), at most d_model / 2.",
            "rank = max(32, round(2.5 * d_model**0.5 * (self.head_v_dim / 64) / 32) * 32)",
            "rank = max(1, min(rank, d_model // 2))",
            "self.w_lora = nn.Sequential(nn.Linear(d_model, rank, bias=False), nn.Tanh(),",
            "                            nn.Linear(rank, key_dim, bias=True))",
            "self.a_lora = nn.Sequential(nn.Linear(d_model, rank, bias=False), nn.Linear(rank, key_dim, bias=True))",
            "# Per key channel of each key head: the removal key is normalize(k * k_k), the replacement key",
            "# k * (1 + (a - 1) * k_a), and r_k weighs the bonus.",
            *(f"self.{name} = nn.Parameter(torch.empty({heads}, self.head_k_dim))" for name in ("k_k", "k_a", "r_k")),
            "self.layer_ratio = layer_idx / (n_layers - 1) if n_layers > 1 else 0.0  # sets the initial decays",
        ]

    def reset(self) -> list[str]:
        lines = list(SMALL_INIT)
        if self.normalizer and not self.slots:  # GSA's gate projection has no bias
            lines += [3 * INDENT + "if module.bias is not None:", 4 * INDENT + "nn.init.zeros_(module.bias)"]
        if self.gate == "mamba":
            if self.update == "channel_delta":
                low, high = "0.0001", "0.01"
                why = [INDENT + "# A uniform in [1, 16] per head and dt log-uniform in [0.0001, 0.01] per channel, "
                                "as in",
                       INDENT + "# the KDA baseline: initial memories 1 / (A dt) of about 6 to 10^4 tokens. "
                                "softplus(dt_bias) = dt."]
            else:
                low, high = "0.001", "0.1"
                why = [INDENT + "# A uniform in [1, 16] and dt log-uniform in [0.001, 0.1] as in Mamba2; "
                                "softplus(dt_bias) = dt."]
            lines += indent([
                "with torch.no_grad():",
                *why,
                INDENT + "self.A_log.copy_(torch.empty_like(self.A_log).uniform_(1.0, 16.0).log())",
                INDENT + f"dt = torch.empty_like(self.dt_bias).uniform_(math.log({low}), math.log({high})).exp()",
                INDENT + "dt = dt.clamp(min=1e-4)",
                INDENT + "self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))",
            ])
        if self.rwkv:
            if self.memories > 1:
                k_k = 'repeat(0.71 - 0.1 * linear, "(h k) -> (h m) k", k=K, m=self.n_memories)'
            else:
                k_k = "(0.71 - 0.1 * linear).view_as(self.k_k)"
            lines += indent([
                "# RWKV-7's initial layout (fla): decays slow to fast across the layer, bent towards slow in later",
                "# layers, with a zigzag within each head, all shifted 2 units slower (memories of hundreds of",
                "# tokens at the start, which a few hundred steps of Adam could not reach from fla's faster decays).",
                "d, K = self.w_lora[2].bias.numel(), self.head_k_dim",
                "n = torch.arange(d, dtype=torch.float32)",
                "linear = n / max(d - 1, 1) - 0.5  # -0.5 .. 0.5 across the layer",
                "zigzag = ((n % K) - (K - 1) / 2) / max((K - 1) / 2, 1)  # -1 .. 1 within each head",
                "zigzag = zigzag * zigzag.abs()",
                "slow_to_fast = -6 + 6 * (n / max(d - 1, 1)) ** (1 + self.layer_ratio**0.3)",
                "with torch.no_grad():",
                INDENT + "self.w_lora[2].bias.copy_(slow_to_fast + 0.5 + 2.5 * zigzag - 2.0)",
                INDENT + "self.a_lora[1].bias.copy_(-0.19 + 0.3 * zigzag + 0.4 * linear)",
                INDENT + f"self.k_k.copy_({k_k})",
                INDENT + "self.k_a.fill_(1.02)",
                INDENT + "self.r_k.fill_(-0.04)",
            ])
        if self.loglinear:
            lines += indent(["nn.init.ones_(self.L)  # every level weighted alike at first"])
        return lines

    def helpers(self) -> list[list[str]]:
        methods = []
        if self.gate is not None or self.rwkv:
            if self.rwkv:
                doc = "Log-decay g in (-e^-0.5, 0) per key channel, (..., H * K): RWKV-7's bounded decay."
            elif self.slots:
                doc = "Log forget gate g = log alpha <= 0 per slot, (..., H * N)."
            elif self.per_channel:
                doc = "Log-decay g <= 0 per key channel, (..., H * K)."
            else:
                doc = "Log-decay g <= 0 per head, (..., H)."
            if self.rwkv:
                value = ["return -math.exp(-0.5) * self.w_lora(x).sigmoid()"]
            elif self.gate == "mamba" and self.update == "channel_delta":
                value = ["A = self.A_log.exp().repeat_interleave(self.head_k_dim)  # one per head, (H * K,)",
                         "return -A * F.softplus(self.f_proj(x) + self.dt_bias)"]
            elif self.gate == "mamba":
                value = ["return -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)"]
            else:
                proj = "f" if self.slots else "gk" if self.per_channel else "a"
                value = [f"return F.logsigmoid(self.{proj}_proj(x)) / {self.normalizer}.0"]
            methods.append(["def _log_decay(self, x: Tensor) -> Tensor:", f'{INDENT}"""{doc}"""', *indent(value)])
        if self.loglinear:
            methods.append([
                "def _level_weights(self, x: Tensor) -> Tensor:",
                f'{INDENT}"""lambda >= 0 per head and Fenwick level, (..., H, levels): softplus(L * W_l x)."""',
                f'{INDENT}lam = rearrange(self.lambda_proj(x), "... (h l) -> ... h l", h=self.n_heads)',
                f"{INDENT}return F.softplus(self.L * lam)",
            ])
        if self.rwkv:
            methods.append(["def _rate(self, x: Tensor) -> Tensor:",
                            f'{INDENT}"""In-context learning rate a in (0, 1) per key channel, (..., H * K)."""',
                            f"{INDENT}return self.a_lora(x).sigmoid()"])
        if self.delta:
            negeig = self.p["beta"] == "2sigmoid"
            doc = (f"Writing strength in (0, {2 if negeig else 1}) per key/value head, "
                   f"(..., {self.kv_heads}).")
            value = "2.0 * self.b_proj(x).sigmoid()" if negeig else "self.b_proj(x).sigmoid()"
            methods.append(["def _beta(self, x: Tensor) -> Tensor:", f'{INDENT}"""{doc}"""',
                            f"{INDENT}return {value}"])
        if self.memories > 1:
            methods.append([
                "def _router(self, x: Tensor) -> Tensor:",
                f'{INDENT}"""Each head\'s weights over its memories, (..., H, M), summing to 1."""',
                f'{INDENT}weights = rearrange(self.r_proj(x), "... (h m) -> ... h m", m=self.n_memories)',
                f"{INDENT}return weights.softmax(dim=-1)",
            ])
        return methods

    def _qk_features(self) -> list[str]:
        fm, l2 = self.p["feature_map"] != "identity", self.p["qk_norm"] == "l2"
        if l2:
            self._use("kernels.norm", "l2_normalize")
        if fm and l2:
            return ["q, k = (l2_normalize(self.feature_map(t)) for t in (q, k))"]
        if fm:
            return ["q, k = self.feature_map(q), self.feature_map(k)"]
        if l2:
            return ["q, k = l2_normalize(q), l2_normalize(k)"]
        return []

    def _kernel_args(self, g: str, beta: str, state: str) -> str:
        args = ["q", "k", "v"]
        if self.slots:
            args.append("s")
        if self.update not in ("additive", "delta") or self.loglinear:  # log-linear takes a zero decay too
            args.append(g)
        if self.loglinear:
            args.append("lam")
        if self.delta:
            args.append(beta)
        if self.rwkv:
            args += ["kappa", "a"]
        if state:
            args.append(state)
        if self.taylor or self.rwkv or self.slots:
            # The Taylor map holds the 1/sqrt(d) temperature itself; RWKV-7 and GSA have none.
            args.append("scale=1.0")
        if self.rwkv and not state:  # the chunked form, told _log_decay's bound: float32 products
            args.append("log_decay_floor=-math.exp(-0.5)")
        return ", ".join(args)

    def forward(self) -> list[str]:
        heads = "H * M" if self.memories > 1 else "H"
        time = "S * T" if self.steps > 1 else "T"
        body = ["B, T, _ = x.shape"] if self.update == "decay_fixed" else []
        if self.kv_factor:
            body.append("# Each query head's key/value heads sit in a row: k, v are "
                        f"(B, {self.kv_heads}, T, .).")
        for t, pattern, size in (("q", "b t (h k) -> b h t k", "h=self.n_heads"),
                                 ("k", "b t (h k) -> b h t k", "k=self.head_k_dim"),
                                 ("v", "b t (h v) -> b h t v", "v=self.head_v_dim")):
            source = f"self.{t}_conv(self.{t}_proj(x))" if self.conv else f"self.{t}_proj(x)"
            if not self.kv_factor:
                size = "h=self.n_heads"
            body.append(f'{t} = rearrange({source}, "{pattern}", {size})')
        if self.p["rotary"] == "rope":
            body.append("q, k = self.rotary(q, k)")
        body += self._qk_features()
        if self.slots:
            body.append("v = F.silu(v)  # GSA's value map")
        if self.memories > 1 and self.steps > 1:
            body.append('q = repeat(q, "b h t k -> b (h m) (t s) k", m=self.n_memories, s=self.n_steps)')
        elif self.memories > 1:
            body.append('q = repeat(q, "b h t k -> b (h m) t k", m=self.n_memories)')
        elif self.steps > 1:
            body.append('q = repeat(q, "b h t k -> b h (t s) k", s=self.n_steps)')
        if self.steps > 1:
            body += ["# Token t's steps sit at positions S t .. S t + S - 1 of the interleaved sequence.",
                     'k = rearrange(k, "b (h s) t k -> b h (t s) k", s=self.n_steps)'
                     f"  # (B, {heads}, S * T, K)",
                     'v = rearrange(v, "b (h s) t v -> b h (t s) v", s=self.n_steps)']
        body += self._forward_gates(heads)
        if self.denominator:
            body += ["# A ones channel in v makes the memory also sum the denominator "
                     "phi(q_t) . sum phi(k_s).",
                     f"v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # (B, {heads}, T, V + 1)"]
        chunk = self._use(self.kernel_module, self.chunk_op)
        if self.kernel:
            body += [f"recurrence = {self.kernel} if q.is_cuda else {chunk}  # the Triton kernel on a GPU",
                     f"o, _ = recurrence({self._kernel_args('g', 'beta', '')})  # (B, {heads}, {time}, V)"]
        else:
            o = "o" if self.loglinear else "o, _"  # the log-linear chunked form returns no state
            body.append(f"{o} = {chunk}({self._kernel_args('g', 'beta', '')})  # (B, {heads}, {time}, V)")
        if self.steps > 1:
            body.append("o = o[:, :, self.n_steps - 1 :: self.n_steps]  # each token's output after its "
                        "last step")
        if self.denominator:
            body.append("o = o[..., :-1] / (o[..., -1:] + 1e-6)")
        if self.rwkv and self.memories > 1:
            body += ['o, bonus = (rearrange(y, "b (h m) t v -> b t h m v", m=self.n_memories) for y in (o, bonus))',
                     "weights = self._router(x)  # (B, T, H, M)",
                     'o, bonus = (torch.einsum("bthmv,bthm->bthv", y, weights) for y in (o, bonus))  # (B, T, H, V)']
        elif self.rwkv:
            body.append('o, bonus = (rearrange(y, "b h t v -> b t h v") for y in (o, bonus))')
        elif self.memories > 1:
            body += ['o = rearrange(o, "b (h m) t v -> b t h m v", m=self.n_memories)',
                     'o = torch.einsum("bthmv,bthm->bthv", o, self._router(x))  # (B, T, H, V)']
        else:
            body.append('o = rearrange(o, "b h t v -> b t h v")')
        if self.slots:
            body += self._slot_output("self.g_proj(x)", 'rearrange(o, "b t h v -> b t (h v)")')
            body.append("return self.o_proj(o)")
        else:
            body += self._output('rearrange(self.g_proj(x), "b t (h v) -> b t h v", h=self.n_heads)')
            body.append('return self.o_proj(rearrange(o, "b t h v -> b t (h v)"))')
        return ["def forward(self, x: Tensor) -> Tensor:", *indent(body)]

    def _forward_gates(self, heads: str) -> list[str]:
        lines = []
        if self.update == "decay_fixed":
            lines.append(f"g = self.log_decay[None, :, None].expand(B, -1, T)  # (B, {heads}, T)")
        elif self.slots:
            lines += self._per_channel("x", " t")
            lines.append(f"s = -torch.expm1(g)  # the write strength 1 - alpha per slot: (B, {heads}, T, N)")
        elif self.update == "additive" and self.loglinear:
            lines.append(f"g = q.new_zeros(q.shape[:3])  # no decay: (B, {heads}, T)")
        elif self.per_channel:
            lines += self._per_channel("x", " t")
            if self.steps > 1:
                lines += ["# A token's decay applies once, at its first step.",
                          "g = F.pad(g[..., None, :], (0, 0, 0, self.n_steps - 1)).flatten(2, 3)"
                          f"  # (B, {heads}, S * T, K)"]
            if self.rwkv:
                lines += self._rwkv_keys("[:, None]", f"(B, {heads}, T, V)")
        elif self.gate is not None:
            if self.memories > 1:
                lines.append('g = repeat(self._log_decay(x), "b t h -> b (h m) t", m=self.n_memories)')
            else:
                lines.append('g = rearrange(self._log_decay(x), "b t h -> b h t")')
            if self.steps > 1:
                lines += ["# A token's decay applies once, at its first step.",
                          "g = F.pad(g[..., None], (0, self.n_steps - 1)).flatten(-2)"
                          f"  # (B, {heads}, S * T)"]
        if self.loglinear:
            lines.append(self._lambdas("x", " t"))
        if self.delta:
            if self.steps > 1:
                lines.append('beta = rearrange(self._beta(x), "b t (h s) -> b h (t s)", s=self.n_steps)')
            else:
                lines.append('beta = rearrange(self._beta(x), "b t h -> b h t")')
        return lines

    def _per_channel(self, x: str, time: str) -> list[str]:
        """The per-key-channel log-decay g (and RWKV-7's learning rate a) of input ``x`` split into heads, or
        GSA's per-slot log forget gate; ``time``: " t" for a sequence, "" for one token."""
        names = [("g", "_log_decay"), ("a", "_rate")] if self.rwkv else [("g", "_log_decay")]
        axis = "slot" if self.slots else "k"
        lines = []
        for name, method in names:
            if self.memories > 1:
                lines.append(f'{name} = repeat(self.{method}({x}), "b{time} (h {axis}) -> b (h m){time} {axis}", '
                             "h=self.n_heads, m=self.n_memories)")
            else:
                lines.append(f'{name} = rearrange(self.{method}({x}), "b{time} (h {axis}) -> b h{time} {axis}", '
                             "h=self.n_heads)")
        return lines

    def _lambdas(self, x: str, time: str) -> str:
        """Log-linear attention's level weights lam of input ``x``, one set per memory head; ``time`` as above."""
        if self.memories > 1:
            return f'lam = repeat(self._level_weights({x}), "b{time} h l -> b (h m){time} l", m=self.n_memories)'
        if time:
            return f'lam = rearrange(self._level_weights({x}), "b{time} h l -> b h{time} l")'
        return f"lam = self._level_weights({x})  # (B, H, levels)"

    def _rwkv_keys(self, over_time: str, shape: str) -> list[str]:
        """RWKV-7's removal and replacement keys and its bonus; ``over_time`` broadcasts (heads, K) weights."""
        l2 = self._use("kernels.norm", "l2_normalize")
        return [f"kappa = {l2}(k * self.k_k{over_time})  # the unit removal key",
                f"k = k * (1 + (a - 1) * self.k_a{over_time})  # the replacement key",
                f"bonus = (q * k * self.r_k{over_time}).sum(-1, keepdim=True) * v  # passes v_t on: {shape}"]

    def _output(self, gate_expr: str) -> list[str]:
        p = self.p
        lines = [f"gate = {gate_expr}"] if p["out_gate"] == "swish" else []
        if self.rwkv:
            lines.append("o = self.o_norm(o) + bonus" if p["out_norm"] == "rmsnorm" else "o = o + bonus")
            if p["out_gate"] == "swish":
                lines.append("o = o * F.silu(gate)")
            return lines
        if p["out_norm"] == "rmsnorm":
            lines.append("o = self.o_norm(o, gate)" if p["out_gate"] == "swish" else "o = self.o_norm(o)")
        elif p["out_gate"] == "swish":
            lines.append("o = o * F.silu(gate)")
        return lines

    def _slot_output(self, gate_expr: str, flat: str) -> list[str]:
        """GSA's read-out: silu, then (by the point) an RMSNorm over all heads together and the swish gate;
        ``flat``: the read-out as (..., H * V)."""
        p = self.p
        lines = [f"gate = {gate_expr}"] if p["out_gate"] == "swish" else []
        lines.append(f"o = F.silu({flat})  # GSA's read-out map; the whole width from here")
        if p["out_norm"] == "rmsnorm":
            lines.append("o = self.o_norm(o, gate)" if p["out_gate"] == "swish" else "o = self.o_norm(o)")
        elif p["out_gate"] == "swish":
            lines.append("o = o * F.silu(gate)")
        return lines

    def _state_parts(self) -> list[str]:
        parts = [f"{t}_conv" for t in "qkv"] if self.conv else []
        if self.p["rotary"] == "rope":
            parts.append("position")
        if self.slots:
            return parts + ["key_slots", "value_slots"]
        if self.loglinear:
            return parts + ["levels", "tokens"]
        return parts + ["S"]

    def init_state(self) -> list[str]:
        heads = "heads" if self.memories > 1 else "self.n_heads"
        key = "features" if self.taylor else "self.head_k_dim"
        value = "self.head_v_dim + 1" if self.denominator else "self.head_v_dim"
        H = "H * M" if self.memories > 1 else "H"
        K, V = "1 + K + K^2" if self.taylor else "K", "V + 1" if self.denominator else "V"
        what = []
        if self.conv:
            what.append("the conv windows")
        if self.p["rotary"] == "rope":
            what.append("the tokens seen (for rotary)")
        if self.slots:
            what.append(f"the key and value slots: (B, {H}, N, K) and (B, {H}, N, V)")
        elif self.loglinear:
            what += [f"the Fenwick states: (B, {H}, bit_length(n), {K}, {V})", "the tokens seen n, per row"]
        else:
            what.append(f"the memory S: (B, {H}, {K}, {V})")
        doc = (", ".join(what[:-1]) + " and " + what[-1]) if len(what) > 1 else what[0]
        entries = [f'"{t}_conv": self.{t}_conv.init_state(batch),' for t in "qkv"] if self.conv else []
        if self.p["rotary"] == "rope":
            entries.append('"position": torch.zeros((), dtype=torch.long, device=weight.device),')
        if self.slots:
            entries += [f'"key_slots": weight.new_zeros(batch, {heads}, self.n_slots, self.head_k_dim),',
                        f'"value_slots": weight.new_zeros(batch, {heads}, self.n_slots, self.head_v_dim),']
        elif self.loglinear:
            entries += ['"levels": levels,', '"tokens": tokens,']
        else:
            entries.append(f'"S": weight.new_zeros(batch, {heads}, {key}, {value}),')
        doc = f"{doc[0].upper()}{doc[1:]}."
        if len(2 * INDENT + f'"""{doc}"""') > LINE_LENGTH:
            lines = textwrap.wrap(doc, LINE_LENGTH - len(2 * INDENT) - 3)
            body = [f'"""{lines[0]}', *lines[1:-1], f'{lines[-1]}"""']
        else:
            body = [f'"""{doc}"""']
        body.append("weight = self.q_proj.weight")
        if self.memories > 1:
            body.append("heads = self.n_heads * self.n_memories")
        if self.taylor:
            feature_dim = self._use("kernels.feature_maps", "feature_dim")
            body.append(f'features = {feature_dim}("taylor2", self.head_k_dim)  # 1 + K + K^2')
        if self.loglinear:
            empty = self._use("kernels.loglinear", "empty_fenwick_state")
            body += [f"levels, tokens = {empty}(batch, {heads}, {key}, {value}, weight,",
                     f"{' ' * len(f'levels, tokens = {empty}(')}dtype=weight.dtype)  # no bucket yet"]
        body += ["return {",
                *indent(entries), "}"]
        return ["def init_state(self, batch: int) -> dict[str, Tensor]:", *indent(body)]

    def step(self) -> list[str]:
        heads = "H * M" if self.memories > 1 else "H"
        body = []
        sizes = {"q": "h=self.n_heads", "k": "k=self.head_k_dim", "v": "v=self.head_v_dim"}
        if not self.kv_factor:
            sizes = dict.fromkeys("qkv", "h=self.n_heads")
        patterns = {"q": "b (h k) -> b h k", "k": "b (h k) -> b h k", "v": "b (h v) -> b h v"}
        if self.conv:
            body += [f'{t}, {t}_conv = self.{t}_conv.step(self.{t}_proj(x_t), state["{t}_conv"])'
                     for t in "qkv"]
            body += [f'{t} = rearrange({t}, "{patterns[t]}", {sizes[t]})' for t in "qkv"]
        else:
            body += [f'{t} = rearrange(self.{t}_proj(x_t), "{patterns[t]}", {sizes[t]})' for t in "qkv"]
        if self.p["rotary"] == "rope":
            body += ['q, k = self.rotary(q[:, :, None], k[:, :, None], offset=state["position"])',
                     "q, k = q[:, :, 0], k[:, :, 0]"]
        body += self._qk_features()
        if self.slots:
            body.append("v = F.silu(v)")
        if self.memories > 1:
            body.append('q = repeat(q, "b h k -> b (h m) k", m=self.n_memories)')
        if self.update == "decay_fixed":
            body.append(f"g = self.log_decay.expand(x_t.shape[0], -1)  # (B, {heads})")
        elif self.slots:
            body += [*self._per_channel("x_t", ""), "s = -torch.expm1(g)"]
        elif self.update == "additive" and self.loglinear:
            body.append(f"g = q.new_zeros(q.shape[:2])  # no decay: (B, {heads})")
        elif self.per_channel:
            body += self._per_channel("x_t", "")
            if self.rwkv:
                body += self._rwkv_keys("", f"(B, {heads}, V)")
        elif self.gate is not None:
            if self.memories > 1:
                body.append('g = repeat(self._log_decay(x_t), "b h -> b (h m)", m=self.n_memories)')
            else:
                body.append("g = self._log_decay(x_t)")
        if self.loglinear:
            body.append(self._lambdas("x_t", ""))
        if self.denominator:
            body.append("v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)")
        step_op = self._use(self.kernel_module, self.step_op)
        if self.slots:
            body += ['slots = (state["key_slots"], state["value_slots"])',
                     f'o, (key_slots, value_slots) = {step_op}({self._kernel_args("g", "", "slots")})'
                     f"  # (B, {heads}, V)"]
        elif self.loglinear:
            args = self._kernel_args("g", "", '(state["levels"], state["tokens"])')
            body.append(f"o, (levels, tokens) = {step_op}({args})  # (B, {heads}, V)")
        elif self.steps == 1:
            if self.delta:
                body.append("beta = self._beta(x_t)")
            args = self._kernel_args("g", "beta", 'state["S"]')
            body.append(f"o, S = {step_op}({args})  # (B, {heads}, V)")
        else:
            delta_step = self._use("kernels.delta_rule", "delta_rule_step")
            body += ['k = rearrange(k, "b (h s) k -> s b h k", s=self.n_steps)',
                     'v = rearrange(v, "b (h s) v -> s b h v", s=self.n_steps)',
                     'beta = rearrange(self._beta(x_t), "b (h s) -> s b h", s=self.n_steps)']
            if self.gate is not None:
                body += ["# The token's decay applies once, at its first step.",
                         f'o, S = {step_op}(q, k[0], v[0], g, beta[0], state["S"])',
                         "for i in range(1, self.n_steps):"]
            else:
                body += ['S = state["S"]', "for i in range(self.n_steps):"]
            body.append(f"{INDENT}o, S = {delta_step}(q, k[i], v[i], beta[i], S)  # (B, {heads}, V)")
        if self.denominator:
            body.append("o = o[..., :-1] / (o[..., -1:] + 1e-6)")
        if self.rwkv and self.memories > 1:
            body += ['o, bonus = (rearrange(y, "b (h m) v -> b h m v", m=self.n_memories) for y in (o, bonus))',
                     "weights = self._router(x_t)  # (B, H, M)",
                     'o, bonus = (torch.einsum("bhmv,bhm->bhv", y, weights) for y in (o, bonus))  # (B, H, V)']
        elif self.memories > 1:
            body += ['o = rearrange(o, "b (h m) v -> b h m v", m=self.n_memories)',
                     'o = torch.einsum("bhmv,bhm->bhv", o, self._router(x_t))  # (B, H, V)']
        if self.slots:
            body += self._slot_output("self.g_proj(x_t)", "torch.flatten(o, 1)")
            body.append("y = self.o_proj(o)")
        else:
            body += self._output('rearrange(self.g_proj(x_t), "b (h v) -> b h v", h=self.n_heads)')
            body.append("y = self.o_proj(torch.flatten(o, 1))")
        new_state = {"position": 'state["position"] + 1', "S": "S"}
        items = [f'"{part}": {new_state.get(part, part)}' for part in self._state_parts()]
        ret = f"return y, {{{', '.join(items)}}}"
        if len(2 * INDENT + ret) <= LINE_LENGTH:
            body.append(ret)
        else:
            body += ["return y, {", *indent([f"{item}," for item in items]), "}"]
        return [*signature("step", "self, x_t: Tensor, state: dict[str, Tensor]",
                            " -> tuple[Tensor, dict[str, Tensor]]"), *indent(body)]
