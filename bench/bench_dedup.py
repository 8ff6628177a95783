"""Time the dedup hashes on 1,000 generated design files and check what each layer collapses.

Each design is a ~180-line chunked gated linear-attention mixer. 250 semantic variants (feature
map, gate, chunk size, convolution width, expansion, eps, output norm) each appear in four
spellings: as written, re-indented with stray whitespace and CRLF endings, and twice with renamed
identifiers, new comments and docstrings. So the whitespace hash should find 750 distinct designs
and the structural hash exactly 250.

    python bench/bench_dedup.py
"""

import ast
import itertools
import random
import re
import statistics
import time

from memory.dedup import code_hash, structural_hash

TEMPLATE = '''"""Chunked gated linear attention

A linear-attention state with a data-dependent decay gate, computed chunk by chunk so training
is parallel within a chunk and recurrent across chunks.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


def feature_map(x):
    # positive features keep the normalizer positive
    return FEATURE


def gate_fn(x):
    return GATE


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale."""

    def __init__(self, dim, eps=EPS):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        rms = x.pow(2).mean(-1, keepdim=True).add(self.eps).rsqrt()
        return x * rms * self.scale


class ShortConv(nn.Module):
    """Causal depthwise convolution over time."""

    def __init__(self, dim, kernel_size=KERNEL):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, padding=kernel_size - 1)

    def forward(self, x):
        length = x.shape[1]
        y = self.conv(x.transpose(1, 2))[..., :length]
        return F.silu(y.transpose(1, 2))

    def step(self, x_t, cache):
        cache = torch.cat([cache[:, :, 1:], x_t.unsqueeze(-1)], dim=-1)
        y_t = (cache * self.conv.weight.squeeze(1)).sum(-1) + self.conv.bias
        return F.silu(y_t), cache


def chunk_scan(q, k, v, log_decay, chunk_size):
    """Gated linear attention over chunks; shapes (B, H, T, K) and (B, H, T, V)."""
    batch, heads, length, key_dim = q.shape
    value_dim = v.shape[-1]
    pad = (chunk_size - length % chunk_size) % chunk_size
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        log_decay = F.pad(log_decay, (0, pad))
    n_chunks = q.shape[2] // chunk_size
    # (B, H, N, C, K)
    q, k, v = (rearrange(t, "b h (n c) d -> b h n c d", c=chunk_size) for t in (q, k, v))
    log_decay = rearrange(log_decay, "b h (n c) -> b h n c", c=chunk_size)
    cumulative = log_decay.cumsum(-1)
    mask = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
    state = q.new_zeros(batch, heads, key_dim, value_dim)
    outputs = []
    for index in range(n_chunks):
        q_c, k_c, v_c = q[:, :, index], k[:, :, index], v[:, :, index]
        decay_c = cumulative[:, :, index]
        relative = (decay_c.unsqueeze(-1) - decay_c.unsqueeze(-2)).masked_fill(~mask, -math.inf).exp()
        scores = (q_c @ k_c.transpose(-1, -2)) * relative
        inter = (q_c * decay_c.exp().unsqueeze(-1)) @ state
        outputs.append(scores @ v_c + inter)
        total = decay_c[..., -1:]
        carry = (total - decay_c).exp().unsqueeze(-1)
        state = state * total.exp().unsqueeze(-1) + (k_c * carry).transpose(-1, -2) @ v_c
    out = torch.cat(outputs, dim=2)
    return out[:, :, :length]


def recurrent_step(q_t, k_t, v_t, log_decay_t, state):
    """One token of the same recurrence; shapes (B, H, K), (B, H, V) and state (B, H, K, V)."""
    state = state * log_decay_t.exp()[..., None, None] + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
    return (q_t.unsqueeze(-2) @ state).squeeze(-2), state


def naive_reference(q, k, v, log_decay):
    """Quadratic form of the same operator, for checking chunk_scan on short inputs."""
    length = q.shape[2]
    cumulative = log_decay.cumsum(-1)
    relative = cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2)
    mask = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    weights = relative.masked_fill(~mask, -math.inf).exp()
    scores = (q @ k.transpose(-1, -2)) * weights
    return scores @ v


def l2_normalize(x, eps=EPS):
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def merge_heads(x):
    # (B, H, T, D) -> (B, T, H * D)
    return rearrange(x, "b h t d -> b t (h d)")


def state_size(n_heads, head_dim, kernel_size, inner):
    """Floats carried between steps: the matrix memory plus the convolution cache."""
    return n_heads * head_dim * head_dim + inner * kernel_size


class Mixer(nn.Module):
    """Gated linear attention with a short convolution and an output gate."""

    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model * EXPAND // n_heads
        inner = self.head_dim * n_heads
        self.chunk_size = CHUNK
        self.q_proj = nn.Linear(d_model, inner, bias=False)
        self.k_proj = nn.Linear(d_model, inner, bias=False)
        self.v_proj = nn.Linear(d_model, inner, bias=False)
        self.g_proj = nn.Linear(d_model, n_heads, bias=True)
        self.o_gate = nn.Linear(d_model, inner, bias=False)
        self.o_proj = nn.Linear(inner, d_model, bias=False)
        self.conv = ShortConv(inner)
        self.norm = NORM(self.head_dim)
        self.reset_parameters(layer_idx, n_layers)

    def reset_parameters(self, layer_idx, n_layers):
        # deeper layers start with slower decay
        bias = torch.linspace(1.0, 4.0, self.n_heads) * (1 + layer_idx / max(n_layers, 1))
        with torch.no_grad():
            self.g_proj.bias.copy_(bias)
        nn.init.xavier_uniform_(self.o_proj.weight, gain=2 ** -2.5)

    def _split(self, x):
        return rearrange(x, "b t (h d) -> b h t d", h=self.n_heads)

    def forward(self, x):
        batch, length, _ = x.shape
        q = feature_map(self._split(self.conv(self.q_proj(x))))
        k = feature_map(self._split(self.k_proj(x)))
        v = self._split(self.v_proj(x))
        k = k / math.sqrt(self.head_dim)
        log_decay = gate_fn(self.g_proj(x)).transpose(1, 2)
        out = chunk_scan(q, k, v, log_decay, self.chunk_size)
        out = merge_heads(self.norm(out))
        return self.o_proj(out * F.silu(self.o_gate(x)))

    def extra_repr(self):
        inner = self.head_dim * self.n_heads
        size = state_size(self.n_heads, self.head_dim, self.conv.kernel_size, inner)
        return f"heads={self.n_heads}, dim={self.head_dim}, chunk={self.chunk_size}, state={size}"

    def init_state(self, batch):
        inner = self.head_dim * self.n_heads
        weight = self.q_proj.weight
        state = weight.new_zeros(batch, self.n_heads, self.head_dim, self.head_dim)
        cache = weight.new_zeros(batch, inner, self.conv.kernel_size)
        return {"state": state, "cache": cache}

    def step(self, x_t, state):
        conv_t, cache = self.conv.step(self.q_proj(x_t), state["cache"])
        q_t = feature_map(conv_t.view(-1, self.n_heads, self.head_dim))
        k_t = feature_map(self.k_proj(x_t).view(-1, self.n_heads, self.head_dim))
        v_t = self.v_proj(x_t).view(-1, self.n_heads, self.head_dim)
        k_t = k_t / math.sqrt(self.head_dim)
        log_decay_t = gate_fn(self.g_proj(x_t))
        y_t, memory = recurrent_step(q_t, k_t, v_t, log_decay_t, state["state"])
        y_t = self.norm(y_t).reshape(x_t.shape[0], -1)
        y_t = self.o_proj(y_t * F.silu(self.o_gate(x_t)))
        return y_t, {"state": memory, "cache": cache}
'''

CHOICES = {
    "FEATURE": ["F.elu(x) + 1.0", "F.relu(x)", "x * torch.sigmoid(x)", "torch.exp(x - x.amax(-1, keepdim=True))"],
    "GATE": ["F.logsigmoid(x) / 16.0", "-F.softplus(x)"],
    "CHUNK": ["16", "32", "64"],
    "KERNEL": ["2", "3", "4"],
    "EXPAND": ["1", "2"],
    "EPS": ["1e-5", "1e-6"],
    "NORM": ["RMSNorm", "nn.LayerNorm"],
}

# Identifiers the file binds, each with alternative spellings a rewrite might use.
RENAMES = {
    "feature_map": ["phi", "positive_features"],
    "gate_fn": ["decay_gate", "log_gate"],
    "RMSNorm": ["RootMeanSquareNorm", "ScaleNorm"],
    "ShortConv": ["CausalConv", "TokenShiftConv"],
    "chunk_scan": ["chunked_gla", "blockwise_scan"],
    "recurrent_step": ["gla_step", "state_update"],
    "q_proj": ["to_q", "wq"],
    "k_proj": ["to_k", "wk"],
    "v_proj": ["to_v", "wv"],
    "g_proj": ["to_gate", "w_decay"],
    "o_gate": ["out_gate", "wg"],
    "o_proj": ["to_out", "wo"],
    "head_dim": ["d_head", "dk"],
    "log_decay": ["gate_log", "alpha"],
    "cumulative": ["cum_decay", "prefix"],
    "outputs": ["chunks_out", "ys"],
    "relative": ["decay_matrix", "attn_decay"],
    "memory": ["new_state", "s_next"],
    "_split": ["_heads", "_to_heads"],
    "inner": ["hidden", "d_inner"],
}


def render(config: dict[str, str]) -> str:
    code = TEMPLATE
    for placeholder, value in config.items():
        code = re.sub(rf"\b{placeholder}\b", value, code)
    return code


def respaced(code: str) -> str:
    """Two-space indentation, stray trailing blanks and CRLF line endings: the same tokens."""
    halve = re.compile(r"^((?:    )+)")
    lines = [halve.sub(lambda m: "  " * (len(m.group(1)) // 4), line) + " \t" for line in code.split("\n")]
    return "\r\n".join(lines)


def renamed(code: str, spelling: int, rng: random.Random) -> str:
    """Another spelling of every identifier in RENAMES, plus a new docstring and comments."""
    for name, alternatives in RENAMES.items():
        code = re.sub(rf"\b{re.escape(name)}\b", alternatives[spelling], code)
    code = code.replace("Chunked gated linear attention", rng.choice(["GLA variant", "Decayed linear attention"]))
    lines = code.split("\n")
    for index in sorted(rng.sample(range(20, len(lines)), 8), reverse=True):
        indent = re.match(r"\s*", lines[index]).group(0)
        if not lines[index].rstrip().endswith(('"""', "(", "[")):
            lines.insert(index, f"{indent}# note {rng.randrange(1000)}: see the derivation")
    return "\n".join(lines)


def generate(n_semantic: int = 250, seed: int = 0) -> list[tuple[int, str]]:
    """(semantic variant, code) pairs: each variant in four spellings."""
    rng = random.Random(seed)
    configs = [dict(zip(CHOICES, values)) for values in itertools.product(*CHOICES.values())]
    designs = []
    for variant, config in enumerate(rng.sample(configs, n_semantic)):
        code = render(config)
        for spelling in (code, respaced(code), renamed(code, 0, rng), respaced(renamed(code, 1, rng))):
            designs.append((variant, spelling))
    return designs


def per_design_us(fn, codes: list[str], repeats: int = 3) -> float:
    """Mean microseconds per design of the fastest of `repeats` passes over all designs."""
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for code in codes:
            fn(code)
        passes.append(time.perf_counter() - start)
    return min(passes) / len(codes) * 1e6


def plain_ast(code: str) -> str:
    return ast.dump(ast.parse(code))


def main() -> None:
    designs = generate()
    codes = [code for _, code in designs]
    lines = statistics.mean(len(code.splitlines()) for code in codes)
    timings = {
        "code_hash (whitespace)": per_design_us(code_hash, codes),
        "structural_hash": per_design_us(structural_hash, codes),
        "ast.parse + ast.dump": per_design_us(plain_ast, codes),
    }
    base = timings["code_hash (whitespace)"]
    print(f"{len(codes)} designs, {lines:.0f} lines each on average, best of 3 passes\n")
    print(f"{'method':<26}{'us / design':>12}{'x whitespace':>14}")
    for method, us in timings.items():
        print(f"{method:<26}{us:>12.1f}{us / base:>14.1f}")
    print(f"\nstructural_hash / ast.parse+dump: {timings['structural_hash'] / timings['ast.parse + ast.dump']:.2f}")

    by_structure: dict[str | None, set[int]] = {}
    for variant, code in designs:
        by_structure.setdefault(structural_hash(code), set()).add(variant)
    variants = {variant for variant, _ in designs}
    merged = sum(len(group) > 1 for group in by_structure.values())
    print(f"\ndistinct semantic variants: {len(variants)}")
    print(f"distinct code hashes:       {len({code_hash(code) for code in codes})}")
    print(f"distinct structural hashes: {len(by_structure)} ({merged} shared by different variants)")


if __name__ == "__main__":
    main()
