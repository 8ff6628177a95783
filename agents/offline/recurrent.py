"""One recurrent layer of a rendered design: its projections, gates, feature maps, state update and
output, as the lines of a class for a canonical point of the design space (no attention)."""

from __future__ import annotations

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
from agents.offline.space import DELTA_UPDATES
from kernels.emit import wrapper_name

_KERNEL_OPS = {  # update -> (module, chunked op, step op)
    "additive": ("kernels.linear_attn", "chunk_linear_attn", "linear_attn_step"),
    "decay_fixed": ("kernels.simple_gla", "chunk_simple_gla", "simple_gla_step"),
    "decay": ("kernels.simple_gla", "chunk_simple_gla", "simple_gla_step"),
    "gated": ("kernels.gla", "chunk_gla", "gla_step"),
    "delta": ("kernels.delta_rule", "chunk_delta_rule", "delta_rule_step"),
    "gated_delta": ("kernels.gated_delta_rule", "chunk_gated_delta_rule", "gated_delta_rule_step"),
}
_LAYER_DOCS = {
    "additive": "Linear attention, S_t = S_{t-1} + k_t v_t^T, read by q_t.",
    "decay_fixed": "Retention, S_t = gamma_h S_{t-1} + k_t v_t^T with a fixed decay per head, read by q_t.",
    "decay": "Linear attention with a scalar forget gate, S_t = exp(g_t) S_{t-1} + k_t v_t^T, read by q_t.",
    "gated": "Gated linear attention, S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, read by q_t.",
    "delta": "The delta rule S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, read by q_t.",
    "gated_delta": "The gated delta rule S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T.",
}
_KEY_DIMS = {"head": "d_model // n_heads", "half": "max(1, d_model // n_heads // 2)", "16": "16"}


class RecurrentLayer:
    """The lines of one recurrent layer class for a canonical point (no attention)."""

    def __init__(self, p: dict, class_name: str, contract: bool, imports: set, kernel: bool = False):
        self.p, self.class_name, self.contract, self.imports = p, class_name, contract, imports
        self.update = p["update"]
        self.delta = self.update in DELTA_UPDATES
        self.steps = p["delta_steps"] if self.delta else 1
        self.memories = p["memories"]
        self.conv = p["conv"]
        self.taylor = p["feature_map"] == "taylor2"
        self.denominator = p["out_norm"] == "none" and not self.delta
        self.gate = p.get("gate")
        self.per_channel = self.update == "gated"
        factors = [f for f, n in (("self.n_memories", self.memories), ("self.n_steps", self.steps)) if n > 1]
        self.kv_factor = "".join(f"{f} * " for f in factors)  # key/value heads per query head, as code
        self.kv_heads = " * ".join(["H", *("M" if f.endswith("memories") else "S" for f in factors)])
        module, self.chunk_op, self.step_op = _KERNEL_OPS[self.update]
        self.kernel_module = module
        self.op = module.removeprefix("kernels.")
        self.kernel = wrapper_name(self.op) if kernel else None  # the design's own Triton kernel

    def lines(self) -> list[str]:
        head = [f"class {self.class_name}(nn.Module):"]
        if not self.contract:
            head += [f'{INDENT}"""{_LAYER_DOCS[self.update]}"""', ""]
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
        args = f"self, {CONTRACT_ARGS}" if self.contract else "self, d_model: int, n_heads: int"
        if self.conv:
            args += f", conv_size: int = {self.conv}"
        if self.contract:
            args += ", **kw"
        key = _KEY_DIMS[p["key_dim"]]
        body = ["super().__init__()", *(DIVISIBLE if self.contract else []), "self.n_heads = n_heads",
                f"self.head_k_dim = {key}", "self.head_v_dim = d_model // n_heads",
                "key_dim = n_heads * self.head_k_dim"]
        kv = self.kv_factor
        if self.memories > 1 and self.steps > 1:
            body.append("kv_heads = self.n_memories * self.n_steps  # key/value heads per query head")
            kv = "kv_heads * "
        body += ["self.q_proj = nn.Linear(d_model, key_dim, bias=False)",
                 f"self.k_proj = nn.Linear(d_model, {kv}key_dim, bias=False)",
                 f"self.v_proj = nn.Linear(d_model, {kv}d_model, bias=False)"]
        if self.delta:
            body.append(f"self.b_proj = nn.Linear(d_model, {kv}n_heads, bias=False)")
        gate_dim = "key_dim" if self.per_channel else "n_heads"
        if self.gate == "logsigmoid16" and self.per_channel:
            low_rank = "nn.Linear(d_model, 16, bias=False), nn.Linear(16, key_dim, bias=True)"
            body += ["# GLA's low-rank gate projection.", f"self.gk_proj = nn.Sequential({low_rank})"]
        elif self.gate == "logsigmoid16":
            body.append("self.a_proj = nn.Linear(d_model, n_heads, bias=True)")
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
            norm = self._use("kernels.norm", "GatedRMSNorm" if p["out_gate"] == "swish" else "RMSNorm")
            body.append(f"self.o_norm = {norm}(self.head_v_dim)")
        body += ["self.o_proj = nn.Linear(d_model, d_model, bias=False)", "self.reset_parameters()"]
        return [*signature("__init__", args), *indent(body)]

    def reset(self) -> list[str]:
        lines = list(SMALL_INIT)
        if self.gate == "logsigmoid16":
            lines += [3 * INDENT + "if module.bias is not None:", 4 * INDENT + "nn.init.zeros_(module.bias)"]
        if self.gate == "mamba":
            lines += indent([
                "with torch.no_grad():",
                INDENT + "# A uniform in [1, 16] and dt log-uniform in [0.001, 0.1] as in Mamba2; "
                         "softplus(dt_bias) = dt.",
                INDENT + "self.A_log.copy_(torch.empty_like(self.A_log).uniform_(1.0, 16.0).log())",
                INDENT + "dt = torch.empty_like(self.dt_bias).uniform_(math.log(0.001), math.log(0.1)).exp()",
                INDENT + "dt = dt.clamp(min=1e-4)",
                INDENT + "self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))",
            ])
        return lines

    def helpers(self) -> list[list[str]]:
        methods = []
        if self.gate is not None:
            if self.per_channel:
                doc = "Log-decay g <= 0 per key channel, (..., H * K)."
            else:
                doc = "Log-decay g <= 0 per head, (..., H)."
            if self.gate == "mamba":
                value = "-self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)"
            else:
                value = f"F.logsigmoid(self.{'gk' if self.per_channel else 'a'}_proj(x)) / 16.0"
            methods.append(["def _log_decay(self, x: Tensor) -> Tensor:", f'{INDENT}"""{doc}"""',
                            f"{INDENT}return {value}"])
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
        if self.update != "additive" and self.update != "delta":
            args.append(g)
        if self.delta:
            args.append(beta)
        if state:
            args.append(state)
        if self.taylor:
            args.append("scale=1.0")  # the Taylor map holds the 1/sqrt(d) temperature itself
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
            body.append(f"o, _ = {chunk}({self._kernel_args('g', 'beta', '')})  # (B, {heads}, {time}, V)")
        if self.steps > 1:
            body.append("o = o[:, :, self.n_steps - 1 :: self.n_steps]  # each token's output after its "
                        "last step")
        if self.denominator:
            body.append("o = o[..., :-1] / (o[..., -1:] + 1e-6)")
        if self.memories > 1:
            body += ['o = rearrange(o, "b (h m) t v -> b t h m v", m=self.n_memories)',
                     'o = torch.einsum("bthmv,bthm->bthv", o, self._router(x))  # (B, T, H, V)']
        else:
            body.append('o = rearrange(o, "b h t v -> b t h v")')
        body += self._output('rearrange(self.g_proj(x), "b t (h v) -> b t h v", h=self.n_heads)')
        body.append('return self.o_proj(rearrange(o, "b t h v -> b t (h v)"))')
        return ["def forward(self, x: Tensor) -> Tensor:", *indent(body)]

    def _forward_gates(self, heads: str) -> list[str]:
        lines = []
        if self.update == "decay_fixed":
            lines.append(f"g = self.log_decay[None, :, None].expand(B, -1, T)  # (B, {heads}, T)")
        elif self.per_channel:
            if self.memories > 1:
                lines.append('g = repeat(self._log_decay(x), "b t (h k) -> b (h m) t k", h=self.n_heads, '
                             "m=self.n_memories)")
            else:
                lines.append('g = rearrange(self._log_decay(x), "b t (h k) -> b h t k", h=self.n_heads)')
        elif self.gate is not None:
            if self.memories > 1:
                lines.append('g = repeat(self._log_decay(x), "b t h -> b (h m) t", m=self.n_memories)')
            else:
                lines.append('g = rearrange(self._log_decay(x), "b t h -> b h t")')
            if self.steps > 1:
                lines += ["# A token's decay applies once, at its first step.",
                          "g = F.pad(g[..., None], (0, self.n_steps - 1)).flatten(-2)"
                          f"  # (B, {heads}, S * T)"]
        if self.delta:
            if self.steps > 1:
                lines.append('beta = rearrange(self._beta(x), "b t (h s) -> b h (t s)", s=self.n_steps)')
            else:
                lines.append('beta = rearrange(self._beta(x), "b t h -> b h t")')
        return lines

    def _output(self, gate_expr: str) -> list[str]:
        p = self.p
        lines = [f"gate = {gate_expr}"] if p["out_gate"] == "swish" else []
        if p["out_norm"] == "rmsnorm":
            lines.append("o = self.o_norm(o, gate)" if p["out_gate"] == "swish" else "o = self.o_norm(o)")
        elif p["out_gate"] == "swish":
            lines.append("o = o * F.silu(gate)")
        return lines

    def _state_parts(self) -> list[str]:
        parts = [f"{t}_conv" for t in "qkv"] if self.conv else []
        if self.p["rotary"] == "rope":
            parts.append("position")
        return parts + ["S"]

    def init_state(self) -> list[str]:
        heads = "heads" if self.memories > 1 else "self.n_heads"
        key = "features" if self.taylor else "self.head_k_dim"
        value = "self.head_v_dim + 1" if self.denominator else "self.head_v_dim"
        shape = f"(B, {'H * M' if self.memories > 1 else 'H'}, {'1 + K + K^2' if self.taylor else 'K'}, " \
                f"{'V + 1' if self.denominator else 'V'})"
        what = []
        if self.conv:
            what.append("the conv windows")
        if self.p["rotary"] == "rope":
            what.append("the tokens seen (for rotary)")
        what.append(f"the memory S: {shape}")
        doc = (", ".join(what[:-1]) + " and " + what[-1]) if len(what) > 1 else what[0]
        entries = [f'"{t}_conv": self.{t}_conv.init_state(batch),' for t in "qkv"] if self.conv else []
        if self.p["rotary"] == "rope":
            entries.append('"position": torch.zeros((), dtype=torch.long, device=weight.device),')
        entries.append(f'"S": weight.new_zeros(batch, {heads}, {key}, {value}),')
        body = [f'"""{doc[0].upper()}{doc[1:]}."""', "weight = self.q_proj.weight"]
        if self.memories > 1:
            body.append("heads = self.n_heads * self.n_memories")
        if self.taylor:
            feature_dim = self._use("kernels.feature_maps", "feature_dim")
            body.append(f'features = {feature_dim}("taylor2", self.head_k_dim)  # 1 + K + K^2')
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
        if self.memories > 1:
            body.append('q = repeat(q, "b h k -> b (h m) k", m=self.n_memories)')
        if self.update == "decay_fixed":
            body.append(f"g = self.log_decay.expand(x_t.shape[0], -1)  # (B, {heads})")
        elif self.per_channel:
            if self.memories > 1:
                body.append('g = repeat(self._log_decay(x_t), "b (h k) -> b (h m) k", h=self.n_heads, '
                            "m=self.n_memories)")
            else:
                body.append('g = rearrange(self._log_decay(x_t), "b (h k) -> b h k", h=self.n_heads)')
        elif self.gate is not None:
            if self.memories > 1:
                body.append('g = repeat(self._log_decay(x_t), "b h -> b (h m)", m=self.n_memories)')
            else:
                body.append("g = self._log_decay(x_t)")
        if self.denominator:
            body.append("v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)")
        step_op = self._use(self.kernel_module, self.step_op)
        if self.steps == 1:
            if self.delta:
                body.append("beta = self._beta(x_t)")
            args = self._kernel_args("g", "beta", 'state["S"]')
            body.append(f"o, S = {step_op}({args})  # (B, {heads}, V)")
        else:
            delta_step = self._use("kernels.delta_rule", "delta_rule_step")
            body += ['k = rearrange(k, "b (h s) k -> s b h k", s=self.n_steps)',
                     'v = rearrange(v, "b (h s) v -> s b h v", s=self.n_steps)',
                     'beta = rearrange(self._beta(x_t), "b (h s) -> s b h", s=self.n_steps)']
            if self.update == "gated_delta":
                body += ["# The token's decay applies once, at its first step.",
                         f'o, S = {step_op}(q, k[0], v[0], g, beta[0], state["S"])',
                         "for i in range(1, self.n_steps):"]
            else:
                body += ['S = state["S"]', "for i in range(self.n_steps):"]
            body.append(f"{INDENT}o, S = {delta_step}(q, k[i], v[i], beta[i], S)  # (B, {heads}, V)")
        if self.denominator:
            body.append("o = o[..., :-1] / (o[..., -1:] + 1e-6)")
        if self.memories > 1:
            body += ['o = rearrange(o, "b (h m) v -> b h m v", m=self.n_memories)',
                     'o = torch.einsum("bhmv,bhm->bhv", o, self._router(x_t))  # (B, H, V)']
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
