"""The kernel harness rejects every adversarial kernel and accepts honest ones (CPU: Triton's interpreter)."""

import functools
from pathlib import Path

import pytest
import torch

from kernels.harness import CheckConfig, check_kernel
from kernels.harness.check import case_shapes
from kernels.harness.poison import poisoned_memory
from kernels.harness.scan import KernelScanError, kernel_roots, scan_kernel
from kernels.spec import recurrence_spec
from tests.kernel_targets import adversarial

SOURCE_PATH = Path(adversarial.__file__)
SOURCE = SOURCE_PATH.read_text(encoding="utf-8")
QUICK = CheckConfig(hidden=1)


def check(kernel, scan: bool = True, config: CheckConfig = QUICK, **spec_kw):
    spec = recurrence_spec("linear_attn", kernel, **spec_kw)
    return check_kernel(spec, source=SOURCE if scan else None, filename=str(SOURCE_PATH), seed=0, hidden_seed=7,
                        config=config)


def test_the_honest_kernel_passes_with_tiny_errors():
    report = check(adversarial.honest)
    assert report.ok, report.reason
    assert report.cases >= 7
    assert set(report.errors) >= {"o", "final_state", "grad_q", "grad_k", "grad_v", "grad_initial_state"}
    assert max(report.errors.values()) < 1e-5
    assert report.flops > 0 and report.bytes > 0


@pytest.mark.parametrize("name", sorted(adversarial.ADVERSARIES))
def test_every_adversarial_kernel_is_rejected(name):
    adversarial.CACHE.clear()
    report = check(adversarial.ADVERSARIES[name])
    assert not report.ok, f"{name} passed the harness"
    assert report.reason


@pytest.mark.parametrize("name", adversarial.DYNAMIC)
def test_dynamic_checks_alone_reject_the_runtime_cheats(name):
    adversarial.CACHE.clear()
    report = check(adversarial.ADVERSARIES[name], scan=False)
    assert report.status == "mismatch", report.reason


@pytest.mark.parametrize("name, words", [
    ("first_chunk_only", "not finite"), ("freed_memory", "not finite"), ("zeros", "relative RMS error"),
    ("input_itself", "shares memory"), ("mutates_input", "modified its input 'v'"), ("wrong_dtype", "dtype"),
])
def test_rejections_name_what_went_wrong(name, words):
    report = check(adversarial.ADVERSARIES[name], scan=False)
    assert words in report.reason


def test_a_cache_is_caught_by_the_in_place_redraw():
    adversarial.CACHE.clear()
    report = check(adversarial.cached, scan=False)
    assert report.cases == 1  # the first call was right; the redraw into the same tensors was not
    assert "relative RMS error" in report.reason


@pytest.mark.parametrize("name, words", [
    ("falls_back_to_reference", "try/except"), ("falls_back_to_torch", "try/except"),
    ("computes_with_torch", "the kernel must compute the result itself"), ("uses_a_stream", "torch.cuda.Stream"),
])
def test_the_static_scan_rejects_fallbacks_torch_compute_and_streams(name, words):
    report = check(adversarial.ADVERSARIES[name])
    assert report.status == "scan"
    assert words in report.reason


def test_the_scan_follows_helpers_and_names_the_reference():
    source = '''
import torch
from kernels.gla import naive_recurrent_gla

def kernel(q, k, v, g):
    return helper(q, k, v, g)

def helper(q, k, v, g):
    return naive_recurrent_gla(q, k, v, g)
'''
    findings = scan_kernel(source, ["kernel"])
    assert any("naive_recurrent_gla" in str(f) for f in findings)


def test_the_scan_lets_device_code_compute_and_host_code_allocate():
    source = '''
import torch
import triton
import triton.language as tl

@triton.jit
def body(x, y, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(y + o, tl.sum(tl.load(x + o), axis=0) + tl.exp(tl.load(x + o)))

def kernel(x):
    y = torch.empty_like(x, dtype=torch.float32)
    body[(1,)](x.contiguous(), y, N=triton.next_power_of_2(x.numel()))
    return y
'''
    assert scan_kernel(source, ["kernel"]) == []
    assert scan_kernel(source.replace("return y", "return y.cumsum(0)"), ["kernel"])
    assert scan_kernel(source.replace("import torch", "import torch\nimport threading"), ["kernel"]) == []
    assert scan_kernel(source.replace("return y", "threading.Thread()\n    return y"), ["kernel"])


def test_a_lambda_kernel_cannot_be_located():
    with pytest.raises(KernelScanError):
        kernel_roots(lambda q: q, "design.py")
    report = check(lambda *a: adversarial.honest(*a))
    assert report.status == "scan"


def test_reference_ops_of_the_library_are_not_kernels():
    from kernels.linear_attn import chunk_linear_attn, naive_recurrent_linear_attn

    assert check(chunk_linear_attn, scan=False).status == "scan"
    assert "reference itself" in check(naive_recurrent_linear_attn, scan=False).reason


def test_case_shapes_cover_edges_odd_head_sizes_and_a_hidden_draw():
    spec = recurrence_spec("gla", adversarial.honest)
    shapes = case_shapes(spec, CheckConfig(hidden=2), hidden_seed=3)
    lengths = {s["T"] for _, s in shapes}
    assert {1, 15, 16, 17, 35} <= lengths
    assert any(s["K"] == 12 and s["V"] == 20 for _, s in shapes)
    hidden = [s for kind, s in shapes if kind == "hidden"]
    assert len(hidden) == 2
    assert hidden == [s for kind, s in case_shapes(spec, CheckConfig(hidden=2), 3) if kind == "hidden"]
    assert hidden != [s for kind, s in case_shapes(spec, CheckConfig(hidden=2), 4) if kind == "hidden"]


def test_a_declared_tolerance_tightens_but_never_loosens():
    loose = recurrence_spec("linear_attn", adversarial.zeros)
    loose = type(loose)(**{**loose.__dict__, "tolerance": {"o": 10.0, "final_state": 10.0}})
    assert not check_kernel(loose, config=QUICK, hidden_seed=0).ok
    strict = recurrence_spec("linear_attn", adversarial.honest)
    strict = type(strict)(**{**strict.__dict__, "tolerance": {"o": 1e-12}})
    report = check_kernel(strict, config=QUICK, hidden_seed=0)
    assert report.status == "mismatch" and "1e-12" in report.reason


def test_poisoned_memory_fills_empty_tensors_with_nan_and_restores_torch():
    before = torch.are_deterministic_algorithms_enabled()
    with poisoned_memory():
        assert torch.isnan(torch.empty(64)).all()
        assert torch.isnan(torch.ones(3).new_empty(5)).all()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_a_broken_inputs_function_is_a_spec_error_not_a_mismatch():
    spec = recurrence_spec("linear_attn", adversarial.honest)
    spec = type(spec)(**{**spec.__dict__, "inputs": lambda shape, gen, device: [1, 2]})
    report = check_kernel(spec, config=QUICK, hidden_seed=0)
    assert report.status == "spec" and "tuple" in report.reason


def test_partial_of_a_design_kernel_is_scanned_through_to_its_function():
    kernel = functools.partial(adversarial.falls_back_to_reference, scale=None)
    assert kernel_roots(kernel, str(SOURCE_PATH)) == ["falls_back_to_reference"]
