"""The Triton recurrence kernels match the naive loops (CPU: Triton's interpreter); generated designs
carry checked kernels; the CUDA and timing paths report named outcomes without a GPU."""

import functools
import shutil

import pytest
import torch

from agents.offline.render import render_point
from evaluator.checks import CheckSpec, check_kernels
from evaluator.design import load
from kernels.delta_rule.triton import fused_recurrent_delta_rule, triton_delta_rule
from kernels.gated_delta_rule.triton import fused_recurrent_gated_delta_rule, triton_gated_delta_rule
from kernels.gla.triton import fused_recurrent_gla, triton_gla
from kernels.harness import CheckConfig, check_declared, check_kernel
from kernels.harness.cuda import compile_report, parse_ptxas
from kernels.harness.flops import recurrence_bytes, recurrence_flops
from kernels.harness.timing import NoGPU, Timing, TimingError, roofline_floor_ms, time_kernel, validate
from kernels.linear_attn.triton import fused_recurrent_linear_attn, triton_linear_attn
from kernels.simple_gla.triton import fused_recurrent_simple_gla, triton_simple_gla
from kernels.spec import CudaSource, KernelSpec, recurrence_spec
from memory.baselines import BASELINE_POINTS

TRITON_OPS = {"linear_attn": triton_linear_attn, "simple_gla": triton_simple_gla, "gla": triton_gla,
              "delta_rule": triton_delta_rule, "gated_delta_rule": triton_gated_delta_rule}
FUSED_OPS = {"linear_attn": fused_recurrent_linear_attn, "simple_gla": fused_recurrent_simple_gla,
             "gla": fused_recurrent_gla, "delta_rule": fused_recurrent_delta_rule,
             "gated_delta_rule": fused_recurrent_gated_delta_rule}
# The chunked kernels at their smallest chunk (tl.dot's 16); the token-by-token ones with a saved state
# every 4 tokens, so T = 3, 4, 5, 11 and the hidden length cross chunk boundaries.
FORMS = [("chunked", op, TRITON_OPS[op], 16) for op in sorted(TRITON_OPS)] + \
    [("fused", op, FUSED_OPS[op], 4) for op in sorted(FUSED_OPS)]


@pytest.mark.parametrize(("form", "op", "kernel", "chunk"), FORMS, ids=[f"{f}-{op}" for f, op, _, _ in FORMS])
def test_triton_kernel_matches_the_naive_loop_forward_and_backward(form, op, kernel, chunk):
    kernel = functools.partial(kernel, chunk_size=chunk)
    report = check_kernel(recurrence_spec(op, kernel, chunk=chunk), hidden_seed=11, config=CheckConfig(hidden=1))
    assert report.ok, report.reason
    assert max(report.errors.values()) < 1e-5
    gradients = {q for q in report.errors if q.startswith("grad_")}
    assert {"grad_q", "grad_k", "grad_v", "grad_initial_state"} <= gradients
    assert ("grad_g" in gradients) == (op not in {"linear_attn", "delta_rule"})
    assert ("grad_beta" in gradients) == ("delta" in op)


def test_triton_kernel_rejects_bad_shapes_with_a_named_error():
    q = torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match="g must be"):
        triton_gla(q, q, q, torch.zeros(1, 2, 5))


def test_strong_decay_stays_exact():
    B, H, T, K, V = 1, 1, 9, 4, 4
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, T, d, generator=gen) for d in (K, K, V))
    g = torch.full((B, H, T, K), -60.0)  # e^-60 per step: the state is wiped every token
    from kernels.gla import naive_recurrent_gla

    for o, _ in (triton_gla(q, k, v, g), fused_recurrent_gla(q, k, v, g, chunk_size=4)):
        assert torch.allclose(o, naive_recurrent_gla(q, k, v, g)[0], atol=1e-6)


def test_rendered_recurrent_design_declares_a_kernel_that_passes_the_check():
    code = render_point(BASELINE_POINTS["deltanet"])
    assert "@triton.jit" in code and "KERNELS = [recurrence_spec(\"delta_rule\", delta_rule_kernel)]" in code
    module, info = load(code)
    assert info.has_kernels
    spec = CheckSpec(kernel_check=CheckConfig(hidden=0, edges=False))
    metrics, failure = check_kernels(module, code, spec, seed=0)
    assert failure is None, failure
    assert metrics["kernel_delta_rule_status"] == "ok"
    assert metrics["kernel_delta_rule_err_o"] < 1e-5


def test_kernels_can_be_switched_off_and_attention_designs_have_none():
    assert "KERNELS" not in render_point(BASELINE_POINTS["deltanet"], kernels=False)
    assert "KERNELS" not in render_point(BASELINE_POINTS["softmax_attention"])
    assert "KERNELS" in render_point(BASELINE_POINTS["deltanet_hybrid"])


def test_a_wrong_declared_kernel_is_a_kernel_mismatch_with_its_figures():
    code = render_point(BASELINE_POINTS["retnet"]).replace(
        "o_blk = scale * (tl.dot(A, v_c) + tl.dot(q_in, S))",
        "o_blk = scale * 1.01 * (tl.dot(A, v_c) + tl.dot(q_in, S))")
    module, _ = load(code)
    metrics, failure = check_kernels(module, code, CheckSpec(kernel_check=CheckConfig(hidden=0, edges=False)), 0)
    assert failure is not None and failure.status == "kernel-mismatch"
    assert "relative" in failure.reason
    assert metrics["kernel_simple_gla_status"] == "mismatch"
    assert 5e-3 < metrics["kernel_simple_gla_err_o"] < 2e-2


def test_malformed_kernels_are_a_contract_failure():
    class Module:
        KERNELS = ["not a spec"]

    _, failure = check_kernels(Module, "", CheckSpec(), 0)
    assert failure.status == "contract"


def test_flop_and_byte_counts_scale_with_the_shape():
    shape = {"B": 2, "H": 3, "T": 10, "K": 8, "V": 4}
    double_t = {**shape, "T": 20}
    for op in TRITON_OPS:
        assert recurrence_flops(op, double_t) == 2 * recurrence_flops(op, shape)
        assert recurrence_flops(op, shape, backward=True) > 2 * recurrence_flops(op, shape)
        assert recurrence_bytes(op, shape) > 4 * 2 * 3 * 10 * (8 + 8 + 4)
    assert recurrence_flops("gated_delta_rule", shape) > recurrence_flops("delta_rule", shape) > \
        recurrence_flops("linear_attn", shape)


PTXAS_OUTPUT = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'big_local' for 'sm_80'
ptxas info    : Function properties for big_local
    2048 bytes stack frame, 16 bytes spill stores, 24 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 2048 bytes cumulative stack size, 364 bytes cmem[0]
ptxas info    : Compile time = 90.408 ms
ptxas info    : Compiling entry function 'scale_rows' for 'sm_80'
ptxas info    : Function properties for scale_rows
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 1 barriers, 1024 bytes smem, 372 bytes cmem[0]
"""

CUDA_SOURCE = """
extern "C" __global__ void scale_rows(const float* x, float* y, int n) {
    __shared__ float tile[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    tile[threadIdx.x] = i < n ? x[i] : 0.f;
    __syncthreads();
    if (i < n) y[i] = 2.f * tile[threadIdx.x];
}
"""


def test_ptxas_report_gives_registers_spills_and_shared_memory():
    resources = parse_ptxas(PTXAS_OUTPUT)["sm_80"]
    assert resources["big_local"].registers == 32 and resources["big_local"].spills
    assert (resources["big_local"].spill_stores, resources["big_local"].spill_loads) == (16, 24)
    assert resources["scale_rows"].smem == 1024 and not resources["scale_rows"].spills


def test_missing_nvcc_is_a_named_outcome():
    assert compile_report(CUDA_SOURCE, nvcc="/nonexistent/nvcc").status == "nvcc-not-found"


def _launch(kernel, x):
    y = torch.empty_like(x)
    kernel(grid=((x.numel() + 255) // 256, 1, 1), block=(256, 1, 1), args=[x, y, x.numel()])
    return y


def _spec(source):
    return KernelSpec(name="scale", kernel=None, reference=lambda x: 2 * x,
                      inputs=lambda shape, gen, device: (torch.randn(shape["T"], generator=gen).to(device),),
                      shapes=({"T": 300},), grad=False, cuda=CudaSource(source, "scale_rows", _launch))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_cuda_source_is_compiled_and_reported_without_a_gpu():
    report = check_declared(_spec(CUDA_SOURCE), archs=("sm_80",))
    expected = "ok" if torch.cuda.is_available() else "compiled-only"
    assert report.status == expected and report.ok, report.reason
    assert report.notes["smem_bytes"] == 1024 and report.notes["registers"] > 0
    broken = check_declared(_spec(CUDA_SOURCE.replace("tile[threadIdx.x];", "undefined_name;")), archs=("sm_80",))
    assert broken.status == "compile-error" and not broken.ok
    assert "undefined_name" in broken.reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_timing_needs_a_gpu():
    with pytest.raises(NoGPU):
        time_kernel(lambda: None)


def test_impossible_or_inconsistent_times_are_rejected():
    floor = roofline_floor_ms(flops=10**12, nbytes=0, peaks=(1e15, 1e12))
    assert floor == pytest.approx(1.0)
    validate(Timing(median_ms=2.0, p10_ms=1.9, p90_ms=2.2, host_ms=2.5, floor_ms=floor, reps=10), 20.0)
    with pytest.raises(TimingError, match="roofline"):
        validate(Timing(median_ms=0.5, p10_ms=0.4, p90_ms=0.6, host_ms=2.5, floor_ms=floor, reps=10), 5.0)
    with pytest.raises(TimingError, match="host saw"):
        validate(Timing(median_ms=2.0, p10_ms=1.9, p90_ms=2.2, host_ms=1.0, floor_ms=floor, reps=10), 20.0)
