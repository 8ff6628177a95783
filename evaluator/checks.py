"""Checks a design must pass before any training: build, budget, shapes, causality, initial
loss, gradients, recurrent form and declared kernels. Each raises ``EvalFailure`` with a named
status and an expected-versus-actual reason, or returns measured figures."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from evaluator.backbone import LanguageModel
from evaluator.status import EvalFailure, is_oom
from evaluator.train import loss_fn
from kernels.harness import CheckConfig, check_declared
from kernels.spec import KernelSpec


@dataclass(frozen=True)
class CheckSpec:
    d_model: int = 64
    n_heads: int = 2
    n_layers: int = 2
    vocab: int = 64
    seq_len: int = 75  # odd, and longer than a 64-token chunk, so chunk boundaries are exercised
    causal_cuts: tuple[int, ...] = (1, 17, 63, 64, 65, 74)
    max_params_per_layer: float = 16.0  # in units of d_model**2
    init_loss_tol: float = 0.5  # |loss - ln V| at initialization, in nats
    step_len: int = 70
    step_tol: float = 1e-3  # relative RMS error of step() against forward()
    scaling_lengths: tuple[int, ...] = (512, 1024, 2048, 4096)
    # Declared KERNELS: one input draw per case (plus its in-place redraw) and one hidden shape keep a
    # recurrence kernel's check near 10 s under Triton's CPU interpreter; a GPU runs it in well under 1 s.
    kernel_check: CheckConfig = CheckConfig(seeds=1, hidden=1)


def rel_rms(actual: torch.Tensor, expected: torch.Tensor) -> float:
    num = (actual.double() - expected.double()).pow(2).mean().sqrt()
    den = expected.double().pow(2).mean().sqrt().clamp_min(1e-12)
    return (num / den).item()


def build_mixers(mixer_cls: type, spec: CheckSpec) -> list[nn.Module]:
    mixers = []
    for layer in range(spec.n_layers):
        try:
            mixers.append(mixer_cls(d_model=spec.d_model, n_heads=spec.n_heads, layer_idx=layer,
                                    n_layers=spec.n_layers))
        except Exception as exc:
            if is_oom(exc):
                raise
            raise EvalFailure("build", f"Mixer(d_model={spec.d_model}, n_heads={spec.n_heads}, layer_idx={layer}) "
                                       f"raised {type(exc).__name__}: {exc}") from None
    return mixers


def check_params(mixers: list[nn.Module], spec: CheckSpec) -> dict:
    counts = [sum(p.numel() for p in m.parameters()) for m in mixers]
    budget = spec.max_params_per_layer * spec.d_model**2
    for layer, count in enumerate(counts):
        if count > budget:
            raise EvalFailure("params", f"layer {layer} has {count} parameters; the budget is {int(budget)} "
                                        f"({spec.max_params_per_layer:g} x d_model^2)")
    return {"mixer_params_per_d2": round(max(counts) / spec.d_model**2, 3)}


def _forward(mixer: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
    y = mixer(x)
    if not isinstance(y, torch.Tensor):
        raise EvalFailure("shape", f"layer {layer}: forward returned {type(y).__name__}, expected a Tensor")
    if y.shape != x.shape:
        raise EvalFailure("shape", f"layer {layer}: forward returned shape {tuple(y.shape)}, expected {tuple(x.shape)}")
    if y.dtype != x.dtype:
        raise EvalFailure("shape", f"layer {layer}: forward returned dtype {y.dtype}, expected {x.dtype}")
    if not torch.isfinite(y).all():
        raise EvalFailure("nan", f"layer {layer}: forward produced non-finite values at initialization")
    return y


@torch.no_grad()
def check_shapes_and_causality(mixers: list[nn.Module], spec: CheckSpec, generator: torch.Generator) -> None:
    """Changing inputs at positions >= t must leave outputs before t bit-identical."""
    for layer, mixer in enumerate(mixers):
        mixer.eval()
        x = torch.randn(2, spec.seq_len, spec.d_model, generator=generator)
        y = _forward(mixer, x, layer)
        for cut in spec.causal_cuts:
            x2 = x.clone()
            x2[:, cut:] = torch.randn(x2[:, cut:].shape, generator=generator)
            y2 = _forward(mixer, x2, layer)
            if not torch.equal(y[:, :cut], y2[:, :cut]):
                diff = (y[:, :cut] - y2[:, :cut]).abs()
                first = int(diff.amax(dim=(0, 2)).nonzero()[0])
                raise EvalFailure("causality", f"layer {layer}: changing tokens from position {cut} on changed the "
                                               f"output at position {first} (max change {diff.max().item():.3g})")


def check_model(mixer_cls: type, spec: CheckSpec, generator: torch.Generator) -> tuple[dict, LanguageModel]:
    """Initial loss near ln V, and no non-finite gradient; returns the figures and the model.

    A parameter no gradient reaches is reported (``unused_params``), not refused: a hybrid that
    declares a module in every layer and uses it in some is a common, valid pattern."""
    model = LanguageModel(mixer_cls, spec.vocab, spec.d_model, spec.n_layers, spec.n_heads, mlp_ratio=2.0)
    tokens = torch.randint(0, spec.vocab, (4, spec.seq_len + 1), generator=generator)
    loss = loss_fn(model, tokens[:, :-1], tokens[:, 1:])
    expected = math.log(spec.vocab)
    if not torch.isfinite(loss):
        raise EvalFailure("nan", f"loss at initialization is {loss.item()}")
    if abs(loss.item() - expected) > spec.init_loss_tol:
        raise EvalFailure("init-loss", f"loss at initialization is {loss.item():.3f}, expected ln V = {expected:.3f} "
                                       f"± {spec.init_loss_tol}")
    loss.backward()
    unused = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            unused += param.numel()
        elif not torch.isfinite(param.grad).all():
            raise EvalFailure("nan", f"parameter {name} has a non-finite gradient at initialization")
    model.zero_grad(set_to_none=True)
    return {"init_loss": round(loss.item(), 4), "unused_params": unused}, model


def state_numel(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel()
    if isinstance(state, dict):
        return sum(state_numel(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_numel(v) for v in state)
    if state is None:
        return 0
    kind = type(state).__name__
    raise EvalFailure("contract", f"a recurrent state may hold tensors, tuples, lists and dicts, not {kind}")


@torch.no_grad()
def check_recurrent(mixers: list[nn.Module], spec: CheckSpec, generator: torch.Generator) -> dict:
    """step() over the sequence must reproduce forward(); returns the state size per sequence."""
    total_state = 0
    for layer, mixer in enumerate(mixers):
        mixer.eval()
        x = torch.randn(2, spec.step_len, spec.d_model, generator=generator)
        y = _forward(mixer, x, layer)
        try:
            state = mixer.init_state(2)
            outputs = []
            for t in range(spec.step_len):
                y_t, state = mixer.step(x[:, t], state)
                if not isinstance(y_t, torch.Tensor) or y_t.shape != (2, spec.d_model):
                    got = tuple(y_t.shape) if isinstance(y_t, torch.Tensor) else type(y_t).__name__
                    raise EvalFailure("contract", f"layer {layer}: step returned {got}, expected (2, {spec.d_model})")
                outputs.append(y_t)
        except EvalFailure:
            raise
        except Exception as exc:
            if is_oom(exc):
                raise
            raise EvalFailure("contract", f"layer {layer}: step raised {type(exc).__name__}: {exc}") from None
        error = rel_rms(torch.stack(outputs, dim=1), y)
        if not error <= spec.step_tol:
            raise EvalFailure("recurrent-mismatch", f"layer {layer}: step vs forward relative RMS error {error:.2e} "
                                                    f"exceeds {spec.step_tol:.0e}")
        total_state += state_numel(state) // 2
    return {"state_size": total_state}


def check_kernels(module, code: str, spec: CheckSpec, seed: int) -> tuple[dict, EvalFailure | None]:
    """Every entry of the design's ``KERNELS`` against its reference (``kernels.harness``).

    Returns the error figures of every kernel checked (kept in the metrics even when one fails) and
    the failure, if any: ``contract`` for a malformed declaration, ``kernel-mismatch`` otherwise.
    On a GPU the kernels run there; without one, Triton kernels run under the interpreter.
    """
    declared = module.KERNELS
    if not isinstance(declared, (list, tuple)) or not all(isinstance(k, KernelSpec) for k in declared):
        kinds = ", ".join(sorted({type(k).__name__ for k in declared})) if isinstance(declared, (list, tuple)) \
            else type(declared).__name__
        return {}, EvalFailure("contract", f"KERNELS must be a list of kernels.spec.KernelSpec, got {kinds}")
    names = [k.name for k in declared]
    if len(set(names)) != len(names):
        return {}, EvalFailure("contract", f"KERNELS names must be unique, got {names}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    metrics: dict = {"kernels_declared": len(declared)}
    for kernel_spec in declared:
        report = check_declared(kernel_spec, code, "design.py", device, seed, config=spec.kernel_check)
        metrics.update(report.figures())
        if report.status == "spec":
            return metrics, EvalFailure("contract", report.reason)
        if not report.ok:
            return metrics, EvalFailure("kernel-mismatch", report.reason)
    return metrics, None
