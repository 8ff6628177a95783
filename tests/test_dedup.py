import hashlib

import pytest

from memory.dedup import code_hash, normalize_whitespace, structural_hash

DESIGN = '''"""Gated linear attention

Decay gates on a linear-attention state.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def feature_map(x):
    return F.elu(x) + 1.0


class Mixer(nn.Module):
    """The mixer."""

    chunk_size = 64

    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm = nn.LayerNorm(d_model)
        self.register_buffer("decay", torch.linspace(0.9, 0.99, n_heads))

    def _scan(self, q, k):
        # cumulative state, one step per token
        state = torch.cumsum(k, dim=1) * self.decay.mean()
        return q * state / self.chunk_size

    def forward(self, x):
        q = feature_map(self.q_proj(x))
        k = feature_map(self.k_proj(x))
        q = q / q.norm(dim=-1, keepdim=True)
        return self.norm(self._scan(q, k))
'''

# Every identifier the file binds renamed, plus new comments, docstrings, annotations and layout.
RENAMED = """import torch as T
import torch.nn as nn
import torch.nn.functional as Fn

def phi(inp):
  '''Positive features.'''
  return Fn.elu(inp) + 1.0
class Mixer(nn.Module):
  block = 64
  def __init__(self, d_model, n_heads, layer_idx, n_layers, **options):
    super().__init__()
    self.heads = n_heads   # heads
    self.wq = nn.Linear(d_model, d_model, bias=False)
    self.wk = nn.Linear(d_model, d_model, bias=False)
    self.out_norm = nn.LayerNorm(d_model)
    self.register_buffer("gamma", T.linspace(0.9, 0.99, n_heads))
  def _recurrence(self, query, key):
    memory = T.cumsum(key, dim=1) * self.gamma.mean()
    return query * memory / self.block
  def forward(self, hidden: T.Tensor) -> T.Tensor:
    query = phi(self.wq(hidden))
    key = phi(self.wk(hidden))
    query = query / query.norm(dim=-1, keepdim=True)
    return self.out_norm(self._recurrence(query, key))
"""


def test_whitespace_variants_share_a_code_hash():
    variant = "\r\n\n".join(line.rstrip() + "  \t" for line in DESIGN.splitlines()).replace("    ", "\t")
    assert code_hash(variant) == code_hash(DESIGN)
    assert code_hash(DESIGN.replace("x = ", "x  =  ")) == code_hash(DESIGN)


def test_code_hash_is_sha256_of_the_normalized_text():
    assert normalize_whitespace("a \t = 1   \r\n\n\r\n    b=2\t\n") == "a = 1\n b=2"
    assert code_hash("a = 1\n") == hashlib.sha256(b"a = 1").hexdigest()


def test_code_hash_changes_with_any_token():
    assert code_hash(DESIGN.replace("0.99", "0.999")) != code_hash(DESIGN)
    assert code_hash(DESIGN.replace("# cumulative", "# running")) != code_hash(DESIGN)


def test_renamed_copy_has_the_same_structural_hash():
    assert code_hash(RENAMED) != code_hash(DESIGN)
    assert structural_hash(RENAMED) == structural_hash(DESIGN)


def test_locals_renamed_independently_per_function_still_match():
    a = "def f(x):\n    y = x + 1\n    return y\n\ndef g(x):\n    return x * 2\n"
    b = "def f(x):\n    y = x + 1\n    return y\n\ndef g(inp):\n    return inp * 2\n"
    assert structural_hash(a) == structural_hash(b)


@pytest.mark.parametrize(
    "old, new",
    [
        ("F.elu(x)", "F.silu(x)"),  # a different op
        ("chunk_size = 64", "chunk_size = 32"),  # a constant
        ("0.9, 0.99", "0.99, 0.9"),  # argument order
        ("bias=False)\n        self.k", "bias=True)\n        self.k"),  # a keyword value
        ("keepdim=True", "keepdims=True"),  # a keyword name of an external call
        ("q.norm(dim=-1", "q.sum(dim=-1"),  # an external method that shares a member's name
        ("q * state / self.chunk_size", "q * state / self.n_heads"),  # a different member
        ("return self.norm(self._scan(q, k))", "return self.norm(self._scan(k, q))"),  # swapped operands
        ("        q = q / q.norm(dim=-1, keepdim=True)\n", ""),  # a removed statement
        ("def forward(self, x)", "def forward_(self, x)"),  # the contract names what the evaluator calls
    ],
)
def test_real_changes_change_the_structural_hash(old, new):
    assert old in DESIGN
    assert structural_hash(DESIGN.replace(old, new)) != structural_hash(DESIGN)


def test_closure_variable_is_not_confused_with_a_local():
    uses_outer = "def f(a):\n    def g(b):\n        return a\n    return g\n"
    uses_own = "def f(a):\n    def g(b):\n        return b\n    return g\n"
    assert structural_hash(uses_outer) != structural_hash(uses_own)


def test_a_global_and_a_local_of_the_same_name_differ():
    reads_global = "scale = 2\n\ndef f(x, y):\n    y = 3\n    return x * scale\n"
    reads_local = "scale = 2\n\ndef f(x, y):\n    y = 3\n    return x * y\n"
    assert structural_hash(reads_global) != structural_hash(reads_local)


def test_builtins_and_unbound_names_keep_their_spelling():
    assert structural_hash("y = max(1, 2)\n") != structural_hash("y = min(1, 2)\n")


def test_bare_string_statements_are_ignored():
    assert structural_hash('def f():\n    "doc"\n    return 1\n') == structural_hash("def f():\n    return 1\n")


def test_unparseable_code_has_no_structural_hash():
    assert structural_hash("def broken(:\n") is None
    assert structural_hash("x = 1\0\n") is None
