"""The chunked Triton delta-rule kernels (kernels/triton_chunk_delta.py) match the naive token loops,
forward and every gradient, on ragged lengths, odd head sizes, strong decay and extreme betas, and
pass the kernel harness (CPU: Triton's interpreter)."""

import inspect

import pytest
import torch
import torch.nn.functional as F

import kernels.triton_chunk_delta as chunk_delta
from kernels.delta_rule.naive import naive_recurrent_delta_rule
from kernels.gated_delta_rule.naive import naive_recurrent_gated_delta_rule
from kernels.harness.scan import scan_kernel
from kernels.triton_chunk_delta import chunked_delta_recurrence
from kernels.utils import rel_rms_error
from tests.gpu_compile import HAS_CUDA_BACKEND, compile_in_child

# Every kernel of kernels/triton_chunk_delta.py, ungated at head size 32 and gated at 128 (value blocks
# 32 and 16, as _block_sizes picks on a GPU), compiled for sm_90 through ptxas: no GPU needed, and what the
# interpreter would let through (tl.dot under 16 wide, float64, a dtype mismatch) fails here.
COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import kernels.triton_chunk_delta as cd

FLAGS = {"chunk_delta_prep_kernel": {}, "chunk_delta_fwd_state_kernel": {"USE_H0": True, "STORE_HT": True},
         "chunk_delta_fwd_o_kernel": {}, "chunk_delta_bwd_state_kernel": {"USE_DHT": True, "USE_H0": True},
         "chunk_delta_bwd_grad_kernel": {}}
for name, flags in FLAGS.items():
    fn = getattr(cd, name)
    names = list(fn.arg_names)
    for BK, BV, gated in ((32, 32, False), (128, 16, True)):
        constexprs = {"BT": 16, "BK": BK, "BV": BV, "GATED": gated, "FLOOR": -40.0, **flags}
        signature = {n: "constexpr" if n in constexprs else "i32" if n in ("T", "K", "V")
                     else "fp32" if n == "scale" else "*bf16" if n in ("q", "k", "v", "o") else "*fp32"
                     for n in names}
        source = ASTSource(fn, signature, {(names.index(n),): v for n, v in constexprs.items()})
        kernel = triton.compile(source, target=GPUTarget("cuda", 90, 32))
        assert kernel.asm["cubin"], (name, BK, gated)
        print(name, BK, BV, gated, "compiled, shared memory", kernel.metadata.shared)
"""


def draw(B, H, T, K, V, gated, seed=0, beta=None, g=None):
    """Inputs as designs produce them: L2-normalized keys, sigmoid betas, log-sigmoid decays."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = torch.randn(B, H, T, K, generator=gen), torch.randn(B, H, T, K, generator=gen), \
        torch.randn(B, H, T, V, generator=gen)
    k = F.normalize(k, dim=-1)
    if beta is None:
        beta = torch.sigmoid(torch.randn(B, H, T, generator=gen))
    if gated and g is None:
        g = F.logsigmoid(torch.randn(B, H, T, generator=gen) + 2.0)
    h0 = 0.5 * torch.randn(B, H, K, V, generator=gen)
    return q, k, v, beta, (g if gated else None), h0


def errors(q, k, v, beta, g, h0, use_h0=True, final=True, chunk_size=16, seed=1):
    """Relative RMS errors of o, the final state and every input gradient against the naive loop,
    for random cotangents; also asserts every kernel value is finite."""
    inputs = {"q": q, "k": k, "v": v, "beta": beta}
    if g is not None:
        inputs["g"] = g
    if use_h0:
        inputs["initial_state"] = h0
    ours = {n: x.clone().requires_grad_() for n, x in inputs.items()}
    ref = {n: x.clone().requires_grad_() for n, x in inputs.items()}
    o, ht = chunked_delta_recurrence(ours["q"], ours["k"], ours["v"], ours["beta"], g=ours.get("g"),
                                   initial_state=ours.get("initial_state"), output_final_state=final,
                                   chunk_size=chunk_size)
    naive = naive_recurrent_delta_rule if g is None else naive_recurrent_gated_delta_rule
    gates = (ref["beta"],) if g is None else (ref["g"], ref["beta"])
    o_ref, ht_ref = naive(ref["q"], ref["k"], ref["v"], *gates, initial_state=ref.get("initial_state"),
                          output_final_state=final)
    assert (ht is None) == (not final)
    gen = torch.Generator().manual_seed(seed)
    outs, refs = [o], [o_ref]
    out = {"o": rel_rms_error(o, o_ref)}
    if final:
        outs.append(ht)
        refs.append(ht_ref)
        out["final_state"] = rel_rms_error(ht, ht_ref)
    cotangents = [torch.randn(x.shape, generator=gen) for x in refs]
    grads = torch.autograd.grad(outs, list(ours.values()), cotangents)
    ref_grads = torch.autograd.grad(refs, list(ref.values()), cotangents)
    for name, grad, ref_grad in zip(ours, grads, ref_grads):
        assert torch.isfinite(grad).all(), f"grad_{name} is not finite"
        out[f"grad_{name}"] = rel_rms_error(grad, ref_grad)
    assert torch.isfinite(o).all()
    return out


@pytest.mark.parametrize("gated", [False, True], ids=["delta_rule", "gated_delta_rule"])
@pytest.mark.parametrize("shape", [(1, 2, 1, 16, 16), (1, 1, 15, 16, 16), (1, 1, 16, 16, 16), (2, 1, 17, 20, 12),
                                   (1, 2, 37, 8, 32)], ids=lambda s: "x".join(map(str, s)))
def test_forward_and_every_gradient_match_the_naive_loop(shape, gated):
    errs = errors(*draw(*shape, gated))
    expected = {"o", "final_state", "grad_q", "grad_k", "grad_v", "grad_beta", "grad_initial_state"}
    assert set(errs) == expected | ({"grad_g"} if gated else set())
    assert max(errs.values()) < 2e-6, errs


@pytest.mark.parametrize("use_h0,final", [(False, False), (False, True), (True, False)])
def test_initial_and_final_state_are_optional(use_h0, final):
    errs = errors(*draw(1, 1, 23, 12, 20, gated=True, seed=3), use_h0=use_h0, final=final)
    assert ("grad_initial_state" in errs) == use_h0 and ("final_state" in errs) == final
    assert max(errs.values()) < 2e-6, errs


def test_strong_decay_stays_exact_for_every_gradient_including_the_decay():
    # e^-30 per step: the true gradient of g is ~1e-13, so a form that takes differences of O(1)
    # terms (a reverse cumulative sum of per-position log-decay gradients) is off by orders of magnitude.
    B, H, T, K, V = 1, 2, 40, 16, 16
    errs = errors(*draw(B, H, T, K, V, gated=True, g=torch.full((B, H, T), -30.0)))
    assert max(errs.values()) < 1e-5, errs


def test_mixed_and_floored_decays_stay_finite_and_exact():
    B, H, T, K, V = 1, 1, 33, 16, 16
    g = torch.zeros(B, H, T)
    g[..., 5::7] = -30.0  # a near-reset now and then, no decay in between
    g[..., 20] = -100.0  # below LOG_DECAY_FLOOR: floored like the PyTorch chunked form
    errs = errors(*draw(B, H, T, K, V, gated=True, g=g))
    assert max(errs.values()) < 1e-5, errs


@pytest.mark.parametrize("beta_value", [1e-4, 1 - 1e-4, 1.0])
def test_beta_near_zero_and_one(beta_value):
    B, H, T, K, V = 1, 2, 21, 16, 16
    errs = errors(*draw(B, H, T, K, V, gated=True, beta=torch.full((B, H, T), beta_value)))
    assert max(errs.values()) < 5e-6, errs


def test_a_larger_chunk_gives_the_same_result():
    errs = errors(*draw(1, 1, 45, 16, 16, gated=True, seed=5), chunk_size=32)
    assert max(errs.values()) < 2e-6, errs


def test_non_contiguous_inputs_are_read_correctly():
    q, k, v, beta, g, h0 = draw(1, 2, 19, 16, 16, gated=True, seed=7)
    # (B, T, H, K) storage seen as (B, H, T, K), as a model's projections produce it
    q_t, k_t, v_t = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
    assert not q_t.is_contiguous()
    o, ht = chunked_delta_recurrence(q_t, k_t, v_t, beta, g=g, initial_state=h0, output_final_state=True)
    o_ref, ht_ref = naive_recurrent_gated_delta_rule(q, k, v, g, beta, initial_state=h0, output_final_state=True)
    assert rel_rms_error(o, o_ref) < 2e-6 and rel_rms_error(ht, ht_ref) < 2e-6


def test_half_precision_inputs_keep_their_dtype_and_a_float32_state():
    q, k, v, beta, g, h0 = draw(1, 1, 18, 16, 16, gated=True, seed=9)
    args = [x.to(torch.bfloat16).requires_grad_() for x in (q, k, v, beta, g)]
    o, ht = chunked_delta_recurrence(*args[:4], g=args[4], output_final_state=True)
    assert o.dtype == torch.bfloat16 and ht.dtype == torch.float32
    o.float().pow(2).sum().backward()
    assert all(a.grad is not None and a.grad.dtype == torch.bfloat16 for a in args)
    o_ref, _ = naive_recurrent_gated_delta_rule(*(a.detach().float() for a in args[:3]), args[4].detach().float(),
                                                args[3].detach().float())
    assert rel_rms_error(o.float(), o_ref) < 1e-2


def test_host_code_passes_the_static_kernel_scan():
    findings = scan_kernel(inspect.getsource(chunk_delta), ["chunked_delta_recurrence"], naive_recurrent_delta_rule)
    assert findings == []


@pytest.mark.parametrize("change,message", [
    ({"k": torch.zeros(1, 2, 5, 3)}, "expected q, k"),
    ({"beta": torch.zeros(1, 2, 4)}, "beta must be"),
    ({"g": torch.zeros(1, 2, 5, 4)}, "g must be"),
    ({"initial_state": torch.zeros(1, 2, 4, 3)}, "initial_state must be"),
    ({"chunk_size": 8}, "chunk_size must be a power of two"),
    ({"chunk_size": 24}, "chunk_size must be a power of two"),
])
def test_bad_inputs_raise_a_named_error(change, message):
    x = torch.zeros(1, 2, 5, 4)
    args = {"q": x, "k": x, "v": x, "beta": torch.zeros(1, 2, 5), **change}
    with pytest.raises(ValueError, match=message):
        chunked_delta_recurrence(**args)


@pytest.mark.skipif(not HAS_CUDA_BACKEND, reason="this triton build has no CUDA backend")
def test_every_kernel_compiles_for_a_hopper_gpu(tmp_path):
    assert compile_in_child(COMPILE_FOR_HOPPER, tmp_path).count("compiled") == 10
