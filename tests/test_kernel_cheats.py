"""The published exploits of kernel benchmarks, each a kernel the harness must reject, with a reason that
names what it caught (CPU: Triton's interpreter).

The dynamic checks are tested alone (no static scan): most of these kernels are written the way one
dodges a scan, and the run-time watch must not rely on it. With the scan on, every one is still rejected.
"""

import time
from pathlib import Path

import pytest
import torch

from kernels.harness import CheckConfig, check_kernel
from kernels.linear_attn import naive
from kernels.spec import recurrence_spec
from tests.kernel_targets import adversarial, cheats

CHEATS_SOURCE = (Path(cheats.__file__), Path(cheats.__file__).read_text(encoding="utf-8"))
ADVERSARIAL_SOURCE = (Path(adversarial.__file__), Path(adversarial.__file__).read_text(encoding="utf-8"))
REFERENCE = "the reference naive_recurrent_linear_attn ran during the call"
TORCH_OP = "computed with torch op aten."
NO_LAUNCH = "no Triton kernel was launched during the call"

# What each cheat is caught by: every listed phrase must be in the reason.
CAUGHT = {
    "thread_returns_early": ("started a thread",),
    "on_a_side_stream": ("came from another thread",),
    "writes_later": ("o is wrong", "left unwritten"),
    "lazy_tensor": ("torch.Tensor subclass",),
    "half_precision": ("to torch.float16", "precision downgrade"),
    "bfloat16_precision": ("to torch.bfloat16", "precision downgrade"),
    "patched_timer": ("replaced time.perf_counter",),
    "patched_event": ("replaced torch.cuda.Event",),
    "patches_the_reference": ("replaced the code of kernels.linear_attn.naive.naive_recurrent_linear_attn",),
    "walks_the_stack": ("inspected the call stack",),
    "loosens_the_limits": ("changed the harness's _Check.limits",),
    "reads_the_garbage_collector": ("gc.get_objects",),
    "cache_by_address": (NO_LAUNCH, "in-place redraw"),
    "cache_by_values": (NO_LAUNCH, "repeated call"),
    "short_sequences_only": ("o is wrong", "long: B=1 H=1 T="),
    "first_batch_only": ("o is wrong", "batched: B="),
    "head_zero_only": ("o is wrong", "left unwritten"),
    "honest_under_nan": ("o is wrong", "left unwritten"),
    "reference_through_module_alias": (REFERENCE,),
    "reference_bound_outside": (REFERENCE,),
    "reference_via_getattr": (REFERENCE,),
    "reference_via_importlib": (REFERENCE,),
    "reference_via_dunder_import": (REFERENCE,),
    "reference_via_sys_modules": (REFERENCE,),
    "borrowed_backward": ("the reference naive_recurrent_linear_attn ran during the backward",),
    "einsum_on_host": (TORCH_OP,),
    "bmm_on_host": ("computed with torch op aten.bmm",),
    "matmul_dunder": (TORCH_OP, "matmul_dunder"),
    "functional_ops": (TORCH_OP, "functional_ops"),
    "numpy_behind_a_launch": ("made a tensor from host data",),
    "numpy_view_write": ("read tensor values on the host (.numpy())",),
    "input_as_output": ("output 'o' shares memory with input 'v'",),
}
CAUGHT_ADVERSARIAL = {
    "first_chunk_only": ("left unwritten",),
    "first_head_only": ("o is wrong",),
    "zeros": (NO_LAUNCH,),
    "copy_of_input": (NO_LAUNCH,),
    "input_itself": (NO_LAUNCH,),
    "freed_memory": (NO_LAUNCH,),
    "cached": (NO_LAUNCH, "in-place redraw"),
    "mutates_input": ("modified its input 'v'",),
    "wrong_dtype": ("dtype torch.float64",),
    "falls_back_to_reference": (REFERENCE,),
    "falls_back_to_torch": (TORCH_OP,),
    "computes_with_torch": (TORCH_OP,),
    "uses_a_stream": ("torch.cuda.Stream",),  # no stream without CUDA: creating one raises
}
ALL = [("cheats", name) for name in sorted(CAUGHT)] + [("adversarial", name) for name in sorted(CAUGHT_ADVERSARIAL)]


@pytest.fixture(autouse=True, scope="module")
def side_stream():
    """The side stream's thread exists before any kernel call, as a CUDA stream would."""
    cheats.STREAM.start()
    yield
    cheats.STREAM.close()


@pytest.fixture(autouse=True)
def isolated():
    """No cache, patch or leftover work of one cheat reaches the next test."""
    clock, event, code = time.perf_counter, torch.cuda.Event, naive.naive_recurrent_linear_attn.__code__
    cheats.CACHE.clear()
    adversarial.CACHE.clear()
    yield
    cheats.settle()
    time.perf_counter, torch.cuda.Event, naive.naive_recurrent_linear_attn.__code__ = clock, event, code


def check(kernel, source: tuple | None = None, hidden_seed: int = 7):
    path, text = source or (Path("none"), None)
    return check_kernel(recurrence_spec("linear_attn", kernel), source=text, filename=str(path), seed=0,
                        hidden_seed=hidden_seed, config=CheckConfig(hidden=1))


def _kernel(module: str, name: str):
    return (cheats.CHEATS if module == "cheats" else adversarial.ADVERSARIES)[name]


def test_there_are_cheats_enough_and_every_one_has_its_catch():
    assert set(CAUGHT) == set(cheats.CHEATS)
    assert set(CAUGHT_ADVERSARIAL) == set(adversarial.ADVERSARIES)
    assert len(ALL) >= 15


@pytest.mark.parametrize("module, name", ALL, ids=[f"{m}-{n}" for m, n in ALL])
def test_the_run_time_checks_alone_reject_each_cheat_and_name_it(module, name):
    report = check(_kernel(module, name))
    assert not report.ok and report.status == "mismatch", report.reason
    caught = (CAUGHT if module == "cheats" else CAUGHT_ADVERSARIAL)[name]
    missing = [words for words in caught if words not in report.reason]
    assert not missing, report.reason
    assert report.reason.startswith("kernel 'linear_attn': ") and "\n" not in report.reason


@pytest.mark.parametrize("module, name", ALL, ids=[f"{m}-{n}" for m, n in ALL])
def test_with_the_scan_on_each_cheat_is_still_rejected(module, name):
    report = check(_kernel(module, name), CHEATS_SOURCE if module == "cheats" else ADVERSARIAL_SOURCE)
    assert not report.ok, f"{name} passed the harness"
    assert report.status in {"scan", "mismatch"} and report.reason


@pytest.mark.parametrize("hidden_seed", [1, 2])
def test_cheats_that_depend_on_the_plan_are_rejected_under_other_hidden_seeds(hidden_seed):
    for name in ("short_sequences_only", "first_batch_only", "honest_under_nan", "cache_by_values"):
        report = check(cheats.CHEATS[name], hidden_seed=hidden_seed)
        assert not report.ok, f"{name} passed with hidden seed {hidden_seed}"
        cheats.CACHE.clear()


def test_the_honest_kernel_beside_the_cheats_passes_the_scan_and_the_run():
    report = check(cheats.honest, CHEATS_SOURCE)
    assert report.ok, report.reason


def test_what_a_cheat_patched_is_put_back():
    clock, event, code = time.perf_counter, torch.cuda.Event, naive.naive_recurrent_linear_attn.__code__
    for name in ("patched_timer", "patched_event", "patches_the_reference"):
        assert not check(cheats.CHEATS[name]).ok
    assert (time.perf_counter, torch.cuda.Event, naive.naive_recurrent_linear_attn.__code__) == (clock, event, code)
