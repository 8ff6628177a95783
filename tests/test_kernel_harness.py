"""The kernel harness rejects every adversarial kernel and accepts honest ones (CPU: Triton's interpreter)."""

import functools
import gc
import math
import time
from pathlib import Path

import pytest
import torch

from kernels.harness import CheckConfig, check_kernel, timing
from kernels.harness.cases import DISTRIBUTIONS, FILLS, LONG_T, case_plan, distribute, fill_value
from kernels.harness.scan import KernelScanError, kernel_roots, scan_kernel
from kernels.harness.watch import CallWatch, LaunchLog
from kernels.spec import recurrence_inputs, recurrence_spec
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
    assert report.cases >= 8
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
    ("first_chunk_only", "left unwritten"), ("freed_memory", "no Triton kernel was launched"),
    ("zeros", "no Triton kernel was launched"), ("mutates_input", "modified its input 'v'"),
    ("wrong_dtype", "dtype torch.float64, expected torch.float32"), ("first_head_only", "o is wrong"),
])
def test_rejections_name_what_went_wrong(name, words):
    report = check(adversarial.ADVERSARIES[name], scan=False)
    assert words in report.reason
    assert report.reason.startswith("kernel 'linear_attn': ") and "case 1 of" in report.reason
    assert "\n" not in report.reason


def test_a_cache_is_caught_by_the_in_place_redraw():
    adversarial.CACHE.clear()
    report = check(adversarial.cached, scan=False)
    assert report.cases == 1  # the first call was right; the redraw into the same tensors launched nothing
    assert "no Triton kernel was launched" in report.reason and "in-place redraw" in report.reason


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


@pytest.mark.parametrize("line, words", [
    ("y = getattr(torch, 'einsum')('i->i', x)", "torch.einsum"),
    ("y = getattr(x, 'mat' + 'mul')(x)", "getattr with a computed name"),
    ("y = x.__matmul__(x)", ".__matmul__()"),
    ("y = torch.Tensor.cumsum(x, 0)", "torch.Tensor.cumsum"),
    ("y = operator.matmul(x, x)", "operator.matmul"),
    ("y = torch.from_numpy(numpy.cumsum(x.numpy()))", "numpy.cumsum"),
    ("y = x.tolist()", "reads tensor values with .tolist()"),
    ("y = importlib.import_module('kernels.gla').naive_recurrent_gla(x)", "importlib.import_module"),
    ("y = __import__('kernels.gla')", "__import__"),
    ("y = sys.modules['kernels.gla']", "sys.modules"),
    ("y = gc.get_objects()", "gc.get_objects"),
    ("time.perf_counter = lambda: 0.0", "assigns time.perf_counter"),
    ("setattr(time, 'perf_counter', None)", "assigns time.perf_counter"),
])
def test_the_scan_rejects_what_reaches_past_it(line, words):
    source = f'''
import gc, importlib, operator, sys, time
import numpy
import torch

def kernel(x):
    y = torch.empty_like(x)
    {line}
    return y
'''
    findings = [str(f) for f in scan_kernel(source, ["kernel"])]
    assert any(words in f for f in findings), findings


def test_a_lambda_kernel_cannot_be_located():
    with pytest.raises(KernelScanError):
        kernel_roots(lambda q: q, "design.py")
    report = check(lambda *a: adversarial.honest(*a))
    assert report.status == "scan"


def test_reference_ops_of_the_library_are_not_kernels():
    from kernels.linear_attn import chunk_linear_attn, naive_recurrent_linear_attn

    assert check(chunk_linear_attn, scan=False).status == "scan"
    assert "reference itself" in check(naive_recurrent_linear_attn, scan=False).reason


def _plan(hidden_seed, chunk=16, seed=0, **kw):
    spec = recurrence_spec("gla", adversarial.honest, chunk=chunk)
    return case_plan(spec.shapes, chunk, seed, hidden_seed, **kw)


@pytest.mark.parametrize("chunk", [4, 16, 64])
def test_every_plan_has_the_edges_a_long_T_a_batch_and_varied_head_sizes(chunk):
    for hidden_seed in range(20):
        plan = _plan(hidden_seed, chunk, hidden=1)
        shapes = [case.shape for case in plan]
        assert plan[0].kind == "declared" and plan[0].redraw and plan[0].distribution == "normal"
        assert {1, chunk - 1, chunk, chunk + 1} <= {s["T"] for s in shapes}
        long = [s["T"] for s in shapes if s["T"] > max(LONG_T, chunk)]
        assert long and all(T % chunk and T % LONG_T for T in long)
        assert any(s["B"] >= 2 and s["H"] >= 2 for s in shapes)
        assert sum(case.repeat for case in plan) == 1
        assert len(plan) == len(_plan(hidden_seed + 100, chunk, hidden=1))  # the same number of cases
    heads = {s[d] for h in range(20) for s in (c.shape for c in _plan(h, chunk)) for d in "KV"}
    assert {16, 32, 64} <= heads and any(d & (d - 1) for d in heads)


def test_a_plan_depends_on_both_seeds_and_is_reproducible():
    plan = _plan(3)
    assert plan == _plan(3)
    assert [c.shape for c in plan] != [c.shape for c in _plan(4)]
    assert [c.shape for c in plan] != [c.shape for c in _plan(3, seed=1)]


def test_a_plan_draws_every_distribution_and_every_fill():
    plan = _plan(5, hidden=2)
    assert {c.distribution for c in plan} == set(DISTRIBUTIONS)
    assert {c.fill for c in plan} == set(FILLS)
    for hidden_seed in range(10):
        fills = {c.fill for c in _plan(hidden_seed, hidden=2)}
        assert "nan" in fills and fills - {"nan", "inf"}  # a finite fill in every plan


def test_distributions_keep_what_the_inputs_are_bound_to():
    gen = torch.Generator().manual_seed(0)
    shape = {"B": 2, "H": 2, "T": 24, "K": 16, "V": 16}
    q, k, v, g, beta, _, h0, _ = recurrence_inputs("gated_delta_rule")(shape, gen, "cpu")
    for kind in DISTRIBUTIONS:
        q2, k2, v2, g2, beta2, _, h02, _ = distribute((q, k, v, g, beta, None, h0, True), kind, gen)
        norms = k2.norm(dim=-1)
        assert bool((((norms - 1).abs() < 1e-4) | ((norms == 0) & (kind == "sparse"))).all())
        assert bool((g2 <= 0).all()) and bool(((beta2 >= 0) & (beta2 <= 1)).all())
        assert q2.dtype == q.dtype and q2.shape == q.shape
    large = distribute((q, v), "large", gen)
    small = distribute((q, v), "small", gen)
    sparse = distribute((q, v), "sparse", gen)
    assert all(float(x.abs().max()) > 65504 for x in large)  # beyond float16's range
    assert all(float(x.abs().max()) < 1e-3 for x in small)
    assert all(float((x == 0).float().mean()) > 0.5 for x in sparse)


def test_fill_values_cover_nan_infinity_zero_and_finite_constants():
    inputs = [torch.full((4,), 3.0)]
    assert math.isnan(fill_value("nan", 0.3, inputs))
    assert math.isinf(fill_value("inf", 0.3, inputs))
    assert fill_value("zero", 0.3, inputs) == 0.0
    constant = fill_value("constant", 0.3, inputs)
    assert math.isfinite(constant) and constant != 0
    assert 1.5 <= abs(fill_value("scale", 0.3, inputs)) <= 6.0


def test_a_declared_tolerance_tightens_but_never_loosens():
    loose = recurrence_spec("linear_attn", adversarial.first_head_only)
    loose = type(loose)(**{**loose.__dict__, "tolerance": {"o": 10.0, "final_state": 10.0}})
    assert not check_kernel(loose, config=QUICK, hidden_seed=0).ok
    strict = recurrence_spec("linear_attn", adversarial.honest)
    strict = type(strict)(**{**strict.__dict__, "tolerance": {"o": 1e-12}})
    report = check_kernel(strict, config=QUICK, hidden_seed=0)
    assert report.status == "mismatch" and "1e-12" in report.reason


def _watched(fn, fill=3.5, inputs=(), backward=False):
    with LaunchLog() as log, CallWatch(log, fill, list(inputs), backward=backward) as watch:
        fn()
    return watch


def test_fresh_memory_holds_the_fill_and_the_patches_are_undone():
    originals = (gc.get_objects, time.perf_counter, torch.Tensor.__dict__.get("numpy"))
    seen = []
    watch = _watched(lambda: seen.extend([torch.empty(64), torch.ones(3).new_empty(5),
                                          torch.empty(2, dtype=torch.int32)]))
    assert all(bool((t == 3.5).all()) for t in seen[:2]) and bool((seen[2] == 3).all())
    nan = []
    _watched(lambda: nan.append(torch.empty(8)), fill=float("nan"))
    assert torch.isnan(nan[0]).all()
    assert (gc.get_objects, time.perf_counter, torch.Tensor.__dict__.get("numpy")) == originals
    assert watch.fault() == "no Triton kernel was launched during the call"


def test_the_watch_lets_host_code_stage_memory_and_names_a_compute_op():
    x = torch.randn(4, 6)

    def staging():
        y = torch.empty(6, 4)
        y.copy_(x.t())
        torch.cat([x.reshape(24), x.flatten()]).view(2, 24)[:, 3:].contiguous().to(torch.float64)

    assert _watched(staging, inputs=[x]).findings == []
    findings = _watched(lambda: x @ x.t(), inputs=[x]).findings
    assert findings and "computed with torch op aten.mm outside a Triton kernel" in findings[0]
    assert "test_kernel_harness.py" in findings[0]
    assert "precision downgrade" in _watched(lambda: x.half(), inputs=[x]).findings[0]
    assert "host data" in _watched(lambda: torch.tensor([1.0, 2.0]), inputs=[x]).findings[0]
    assert "(.item())" in _watched(lambda: x[0, 0].item(), inputs=[x]).findings[0]


def test_the_autograd_engine_may_accumulate_but_a_backward_may_not_compute():
    x = torch.randn(5, requires_grad=True)
    y = x.view(5)[1:] * 1.0
    engine = _watched(lambda: torch.autograd.grad([y, y], [x], [torch.ones(4), torch.ones(4)]), inputs=[x],
                      backward=True)
    assert engine.findings == []  # the engine's own slice backward and accumulation

    class Computes(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    z = Computes.apply(x)
    user = _watched(lambda: torch.autograd.grad(z, x, torch.ones(5)), inputs=[x], backward=True)
    assert user.findings and "aten.mul" in user.findings[0]


def test_timing_sees_a_replaced_clock(monkeypatch):
    assert timing.tampered() == []
    monkeypatch.setattr(time, "perf_counter", lambda: 0.0)
    monkeypatch.setattr(torch.cuda, "Event", object)
    assert timing.tampered() == ["time.perf_counter", "torch.cuda.Event"]


def test_a_broken_inputs_function_is_a_spec_error_not_a_mismatch():
    spec = recurrence_spec("linear_attn", adversarial.honest)
    spec = type(spec)(**{**spec.__dict__, "inputs": lambda shape, gen, device: [1, 2]})
    report = check_kernel(spec, config=QUICK, hidden_seed=0)
    assert report.status == "spec" and "tuple" in report.reason


def test_partial_of_a_design_kernel_is_scanned_through_to_its_function():
    kernel = functools.partial(adversarial.falls_back_to_reference, scale=None)
    assert kernel_roots(kernel, str(SOURCE_PATH)) == ["falls_back_to_reference"]
