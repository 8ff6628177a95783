"""Render a point of the design space as a standalone design file.

The file holds only the code its point needs (no branches over options it does not use), so two
different points give different code and one point always gives byte-identical code. Recurrent
layers call the chunked ops of ``kernels`` in ``forward`` and their ``*_step`` ops in ``step``; attention
layers step over a key-value cache (the last ``window`` keys for a sliding window), so every design has
``init_state``/``step`` and the evaluator can measure its state and class its cost. PaTH attention layers
(``attention`` "path") replace the rotary embeddings with accumulated Householder transforms: ``forward``
runs ``kernels.path``'s blockwise ``chunk_path_attn``, and ``step`` runs ``path_step``, which moves every
cached key through the new token's transform before it appends the token.

With ``kernels`` on (the default), a recurrent design also carries its own Triton kernel for its
state update (``kernels.emit``), runs it in ``forward`` on a GPU (the chunked op elsewhere) and
declares it in ``KERNELS``, so the evaluator checks the kernel against the naive token loop in
every evaluation. Kimi Delta Attention, RWKV-7's generalized delta rule, Gated Slot Attention and
log-linear attention have no Triton kernel of their own: their designs are rendered without one (no
``KERNELS``) and run the chunked forms of ``kernels`` on every device, so every valid point renders
whatever ``kernels`` says. Attention layers never carry a kernel; PaTH's run the PyTorch forms of
``kernels.path`` on every device, so a pure PaTH design declares none and a hybrid declares only its
recurrent layer's.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping

from agents.offline.lines import CONTRACT_ARGS, DIVISIBLE, INDENT, SMALL_INIT, indent, join_methods, signature
from agents.offline.recurrent import RecurrentLayer
from agents.offline.space import DELTA_UPDATES, WINDOWS, canonical, describe, point_name, validate
from kernels.emit import recurrence_kernel_source, wrapper_name

_LAYER_CLASSES = {
    "additive": "LinearAttention", "decay_fixed": "Retention", "decay": "DecayingLinearAttention",
    "gated": "GatedLinearAttention", "delta": "DeltaNet", "gated_delta": "GatedDeltaNet",
    "channel_delta": "KimiDeltaAttention", "generalized_delta": "RWKV7", "slots": "GatedSlotAttention",
}
_ATTENTION_CLASSES = {"full": "Attention", "path": "PathAttention"}  # else SlidingWindowAttention


def render(point: Mapping, name: str, motivation: str, kernels: bool = True) -> str:
    """The design file of ``point`` (valid; ``ValueError`` otherwise), titled ``name`` and motivated by
    ``motivation`` (one paragraph, wrapped here); ``kernels``: include and declare a Triton kernel for
    the state update of a recurrent design whose update has one (all but KDA's, RWKV-7's, GSA's and
    log-linear attention's)."""
    problems = validate(point)
    if problems:
        raise ValueError(f"cannot render an invalid point: {'; '.join(problems)}")
    if "\n" in name.strip() or not name.strip():
        raise ValueError(f"a design name is one non-empty line, got {name!r}")
    p = canonical(point)
    gated = p.get("attn_gate") == "sigmoid"
    imports: set[tuple[str, str]] = set()
    attention_class = _path_attention_class if p.get("attention") == "path" else _attention_class
    if p["hybrid"] == "all":
        blocks = [attention_class(p["attention"], "Mixer", contract=True, imports=imports, gated=gated)]
    elif p["hybrid"] == "none":
        layer = RecurrentLayer(p, "Mixer", contract=True, imports=imports, kernel=kernels)
        blocks = [layer.lines()]
    else:
        layer = RecurrentLayer(p, _layer_class(p), contract=False, imports=imports, kernel=kernels)
        attention = _ATTENTION_CLASSES.get(p["attention"], "SlidingWindowAttention")
        blocks = [layer.lines(),
                  attention_class(p["attention"], attention, contract=False, imports=imports, gated=gated),
                  _hybrid_mixer(p, layer.class_name, attention, layer.depth)]
    if p["hybrid"] != "all" and layer.kernel:
        kernel = recurrence_kernel_source(layer.op)
        imports.update(kernel.imports)
        blocks = [kernel.code.splitlines(), *blocks, _kernels_declaration(layer.op, imports)]
    body = "\n\n\n".join("\n".join(block) for block in blocks)
    return f"{_docstring(name.strip(), motivation)}\n\n{_imports(body, imports)}\n\n\n{body}\n"


def _kernels_declaration(op: str, imports: set) -> list[str]:
    imports.add(("kernels.spec", "recurrence_spec"))
    return ["# Checked by the evaluator against the naive token loop on shapes of its own choosing.",
            f'KERNELS = [recurrence_spec("{op}", {wrapper_name(op)})]']


def _literal(text: str) -> str:
    """``text`` made safe inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"""', "'''")


def _docstring(name: str, motivation: str) -> str:
    name, paragraph = _literal(name), _literal(" ".join(motivation.split()))
    wrapped = textwrap.fill(paragraph, width=100, break_long_words=False, break_on_hyphens=False)
    return f'"""{name}\n\n{wrapped}\n"""' if wrapped else f'"""{name}\n"""'


def _imports(body: str, kernels: set[tuple[str, str]]) -> str:
    """Import lines in ruff's isort order: standard library, third party, then the project's kernels."""
    stdlib = ["import math"] if re.search(r"\bmath\.", body) else []
    third = ["import torch"] if re.search(r"\btorch\.", body) else []
    if re.search(r"\bF\.", body):
        third.append("import torch.nn.functional as F")
    if re.search(r"\btriton\.", body):
        third.append("import triton")
    if re.search(r"\btl\.", body):
        third.append("import triton.language as tl")
    einops = [n for n in ("rearrange", "repeat") if re.search(rf"\b{n}\(", body)]
    if einops:
        third.append(f"from einops import {', '.join(einops)}")
    third.append("from torch import Tensor, nn")
    modules: dict[str, list[str]] = {}
    for module, name in kernels:
        modules.setdefault(module, []).append(name)

    def by_type(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    first = [f"from {module} import {', '.join(sorted(names, key=by_type))}"
             for module, names in sorted(modules.items())]
    return "\n\n".join("\n".join(group) for group in (stdlib, third, first) if group)


def _layer_class(p: dict) -> str:
    name = _LAYER_CLASSES[p["update"]]
    if p["update"] in DELTA_UPDATES and p["delta_steps"] > 1:
        name = name.replace("Net", "Product") if name.endswith("Net") else f"{name}Product"
    return f"LogLinear{name}" if p.get("levels") == "loglinear" else name


def _attention_class(kind: str, class_name: str, contract: bool, imports: set, gated: bool = False) -> list[str]:
    """Causal softmax attention, full or over a sliding window, with rotary embeddings; ``gated``: each head's
    output multiplied by sigmoid(W_g x) (gated attention)."""
    imports.add(("kernels.attention", "RotaryEmbedding"))
    full = kind == "full"
    imports.add(("kernels.attention", "softmax_attention" if full else "sliding_window_attention"))
    args = f"self, {CONTRACT_ARGS}" if contract else "self, d_model: int, n_heads: int"
    if not full:
        args += f", window: int = {WINDOWS[kind]}"
    if contract:
        args += ", **kw"
    doc = ("Causal multi-head softmax attention with rotary embeddings" if full
           else "Causal softmax attention over the last ``window`` tokens, with rotary embeddings")
    doc += ", each head's output gated by sigmoid(W_g x)." if gated else "."
    init = ["super().__init__()", *(DIVISIBLE if contract else []), "self.n_heads = n_heads"]
    if not full:
        init.append("self.window = window")
    init += [f"self.{proj}_proj = nn.Linear(d_model, d_model, bias=False)" for proj in ("qkvog" if gated else "qkvo")]
    init += ["self.rotary = RotaryEmbedding(d_model // n_heads)", "self.reset_parameters()"]
    forward = [f'{t} = rearrange(self.{t}_proj(x), "b t (h d) -> b h t d", h=self.n_heads)' for t in "qkv"]
    forward += [
        "q, k = self.rotary(q, k)",
        "o = softmax_attention(q, k, v)  # (B, H, T, D)" if full
        else "o = sliding_window_attention(q, k, v, self.window)  # (B, H, T, D)",
        *(['o = o * rearrange(self.g_proj(x), "b t (h d) -> b h t d", h=self.n_heads).sigmoid()'] if gated else []),
        'return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))',
    ]
    step = [f'{t} = rearrange(self.{t}_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)' for t in "qkv"]
    step += [
        "keys, values, seen = state",
        "q, k = self.rotary(q, k, offset=seen)",
        "keys, values = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)",
        *([] if full else ["keys, values = keys[:, :, -self.window :], values[:, :, -self.window :]"]),
        "o = F.scaled_dot_product_attention(q, keys, values)  # one query over the cache: no mask",
        *(['o = o * rearrange(self.g_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads).sigmoid()'] if gated else []),
        'return self.o_proj(rearrange(o, "b h 1 d -> b (h d)")), (keys, values, seen + 1)',
    ]
    cache = "every key and value so far" if full else "the last ``window`` keys and values"
    init_state = [
        "head_dim = self.q_proj.out_features // self.n_heads",
        "empty = self.q_proj.weight.new_zeros(batch, self.n_heads, 0, head_dim)",
        "return empty, empty.clone(), torch.zeros((), dtype=torch.long)",
    ]
    methods = [
        [*signature("__init__", args), *indent(init)],
        SMALL_INIT,
        ["def forward(self, x: Tensor) -> Tensor:", *indent(forward)],
        ["def init_state(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:",
         f'{INDENT}"""A key-value cache holding {cache}, and the tokens seen."""', *indent(init_state)],
        ["def step(self, x_t: Tensor, state: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, tuple]:",
         *indent(step)],
    ]
    head = [f"class {class_name}(nn.Module):"] + ([] if contract else [f'{INDENT}"""{doc}"""', ""])
    return head + join_methods(methods)


def _path_attention_class(kind: str, class_name: str, contract: bool, imports: set, gated: bool = False) -> list[str]:
    """PaTH attention (``kind`` "path"): causal softmax attention positioned by the accumulated Householder
    transforms H_t = I - beta_t w_t w_t^T of ``kernels.path`` instead of rotary embeddings, with w and beta as
    flash-linear-attention's PaTHAttention has them (a rank-32 projection, a width-3 convolution with silu and
    an L2 norm per head; 2 sigmoid), as ``memory/baselines/path_attention.py``; ``gated``: each head's output
    multiplied by sigmoid(W_g x) (gated attention)."""
    imports.update({("kernels.path", "chunk_path_attn"), ("kernels.path", "path_step"),
                    ("kernels.path", "empty_path_state"), ("kernels.conv", "ShortConvolution"),
                    ("kernels.norm", "l2_normalize")})
    args = f"self, {CONTRACT_ARGS}, **kw" if contract else "self, d_model: int, n_heads: int"
    doc = (['"""Causal softmax attention positioned by accumulated Householder transforms (PaTH),',
            'each head\'s output gated by sigmoid(W_g x)."""'] if gated
           else ['"""Causal softmax attention positioned by accumulated Householder transforms (PaTH), not RoPE."""'])
    init = [
        "super().__init__()", *(DIVISIBLE if contract else []), "self.n_heads = n_heads",
        *[f"self.{proj}_proj = nn.Linear(d_model, d_model, bias=False)" for proj in "qkv"],
        "# H_t = I - beta_t w_t w_t^T: w_t from a low-rank projection (rank <= 32), a short convolution",
        "# with silu and an L2 norm per head; beta_t = 2 sigmoid(W_b x_t + b) per head",
        "rank = min(32, d_model)",
        "self.w_proj = nn.Sequential(",
        f"{INDENT}nn.Linear(d_model, rank, bias=False), nn.Linear(rank, d_model, bias=False)",
        ")",
        'self.w_conv = ShortConvolution(d_model, kernel_size=3, activation="silu")',
        "self.b_proj = nn.Linear(d_model, n_heads, bias=True)",
        *[f"self.{proj}_proj = nn.Linear(d_model, d_model, bias=False)" for proj in ("og" if gated else "o")],
        "self.reset_parameters()",
    ]
    reset = [*SMALL_INIT, f"{INDENT}nn.init.zeros_(self.b_proj.bias)  # beta = 2 sigmoid(0) = 1 at the start"]
    gate = 'o = o * rearrange(self.g_proj({x}), "{pattern}", h=self.n_heads).sigmoid()'
    forward = [f'{t} = rearrange(self.{t}_proj(x), "b t (h d) -> b h t d", h=self.n_heads)' for t in "qkv"]
    forward += [
        'w = l2_normalize(rearrange(self.w_conv(self.w_proj(x)), "b t (h d) -> b t h d", h=self.n_heads))',
        'w = rearrange(w, "b t h d -> b h t d")',
        'beta = rearrange(2 * self.b_proj(x).sigmoid(), "b t h -> b h t")  # in (0, 2)',
        "o, _ = chunk_path_attn(q, k, v, w, beta)  # (B, H, T, D)",
        *([gate.format(x="x", pattern="b t (h d) -> b h t d")] if gated else []),
        'return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))',
    ]
    init_state = [
        "head_dim, weight = self.q_proj.out_features // self.n_heads, self.q_proj.weight",
        "keys, values = empty_path_state(batch, self.n_heads, head_dim, head_dim, weight, dtype=weight.dtype)",
        'return {"w_conv": self.w_conv.init_state(batch), "keys": keys, "values": values}',
    ]
    step = [f'{t} = rearrange(self.{t}_proj(x_t), "b (h d) -> b h d", h=self.n_heads)' for t in "qkv"]
    step += [
        'w, w_conv = self.w_conv.step(self.w_proj(x_t), state["w_conv"])',
        'w = l2_normalize(rearrange(w, "b (h d) -> b h d", h=self.n_heads))',
        "beta = 2 * self.b_proj(x_t).sigmoid()",
        "# Every cached key moves through H_t, then k_t and v_t join the cache and q_t attends over it.",
        'o, (keys, values) = path_step(q, k, v, w, beta, (state["keys"], state["values"]))',
        *([gate.format(x="x_t", pattern="b (h d) -> b h d")] if gated else []),
        'y = self.o_proj(rearrange(o, "b h d -> b (h d)"))',
        'return y, {"w_conv": w_conv, "keys": keys, "values": values}',
    ]
    methods = [
        [*signature("__init__", args), *indent(init)],
        reset,
        ["def forward(self, x: Tensor) -> Tensor:", *indent(forward)],
        ["def init_state(self, batch: int) -> dict[str, Tensor]:",
         f'{INDENT}"""The w convolution\'s window and the key and value caches, keys transformed to the present."""',
         *indent(init_state)],
        ["def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:",
         *indent(step)],
    ]
    head = [f"class {class_name}(nn.Module):"] + ([] if contract else [*indent(doc), ""])
    return head + join_methods(methods)


def _hybrid_mixer(p: dict, layer_class: str, attention_class: str, depth: bool) -> list[str]:
    """The hybrid's Mixer; ``depth``: the recurrent layer takes ``layer_idx`` and ``n_layers`` too."""
    every = int(p["hybrid"].removeprefix("every"))
    rule = [
        "def is_attention_layer(layer_idx: int, n_layers: int, every: int) -> bool:",
        f'{INDENT}"""The last layer, and every ``every``-th layer counting back from it, is attention."""',
        f"{INDENT}return (n_layers - 1 - layer_idx) % every == 0",
    ]
    init = [
        "super().__init__()",
        *DIVISIBLE,
        "if is_attention_layer(layer_idx, n_layers, attention_every):",
        f"{INDENT}self.layer: nn.Module = {attention_class}(d_model, n_heads)",
        "else:",
        f"{INDENT}self.layer = {layer_class}(d_model, n_heads{', layer_idx, n_layers' if depth else ''})",
    ]
    args = f"self, {CONTRACT_ARGS}, attention_every: int = {every}, **kw"
    methods = [
        [*signature("__init__", args), *indent(init)],
        ["def forward(self, x: Tensor) -> Tensor:", f"{INDENT}return self.layer(x)"],
        ["def init_state(self, batch: int):", f"{INDENT}return self.layer.init_state(batch)"],
        ["def step(self, x_t: Tensor, state):", f"{INDENT}return self.layer.step(x_t, state)"],
    ]
    return [*rule, "", "", "class Mixer(nn.Module):", *join_methods(methods)]





def render_point(point: Mapping, kernels: bool = True) -> str:
    """The file the offline roles write for ``point``: titled ``point_name``, motivated by ``describe``.

    Title and motivation are functions of the point, so equal points give equal files and the
    researcher can tell from a code hash whether a point is already in memory.
    """
    return render(point, point_name(point), describe(point), kernels)
