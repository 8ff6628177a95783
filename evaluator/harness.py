"""The design's side of an evaluation: the code that runs in the sandboxed child with the design.

Nothing here is trusted, because the design's code shares the process: what this side reports is
information, and the checks it runs are early, friendly errors. Two entry points:

- ``train_in_child``: the static checks, the design's contract, the in-process checks, then one
  model trained per task; returns the trained weights (and the check model's initial ones).
- ``answer_in_child``: a fresh process loads trained weights into a freshly built model and
  answers queries (logits for the inputs it is given, and for a ``flops`` query the FLOPs torch's
  flop counter counted in the forward pass that produced them), nothing else.

The trusted side (``evaluator.measure``) never imports design code: it draws the held-out inputs,
keeps their labels, asks the queries and computes every metric that counts.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from types import MappingProxyType

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from evaluator import checks, wire
from evaluator.backbone import LanguageModel, recurrent_logits, resume
from evaluator.design import load
from evaluator.guard import Guard
from evaluator.profile import flops_per_token
from evaluator.status import EvalFailure, is_oom
from evaluator.tasks.common import build_model
from evaluator.tiers import get_tier
from kernels.runtime import use_interpreter_without_gpu


def environment(device: str) -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": device, "threads": torch.get_num_threads(), "cpu": platform.machine()}


def _classify(exc: BaseException) -> tuple[str, str]:
    if is_oom(exc):
        return "oom", f"out of memory: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    frames = traceback.extract_tb(exc.__traceback__)
    design_frames = [f for f in frames if f.filename == "design.py"]
    where = design_frames[-1] if design_frames else (frames[-1] if frames else None)
    at = f" at {os.path.basename(where.filename)}:{where.lineno}" if where else ""
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return "error", f"{type(exc).__name__}{at}: {message}"


def check_model_shape(spec) -> dict:
    """The model the check tier's probes query: the shape ``checks.check_model`` builds."""
    return {"vocab": spec.vocab, "d_model": spec.d_model, "n_layers": spec.n_layers, "n_heads": spec.n_heads,
            "mlp_ratio": 2.0, "token_conv": 4}


def task_model_shape(task) -> dict:
    shape = task.model
    return {"vocab": task.vocab, "d_model": shape.d_model, "n_layers": shape.n_layers, "n_heads": shape.n_heads,
            "mlp_ratio": shape.mlp_ratio, "token_conv": shape.token_conv}


def export_model(model: torch.nn.Module) -> dict:
    return {"weights": {name: wire.encode(t) for name, t in model.state_dict().items()},
            "params": [name for name, _ in model.named_parameters()]}


def train_in_child(payload: dict) -> dict:
    """payload: code, tier, seed, sources ({task: bytes}). Never raises: every outcome is a status."""
    started = time.perf_counter()
    tier = get_tier(payload["tier"])
    seed = int(payload.get("seed", 0))
    device = "cuda" if tier.device == "cuda" and torch.cuda.is_available() else "cpu"
    metrics: dict = {}
    models: dict = {}
    log: list[str] = []
    info = None
    guard: Guard | None = None
    status, reason = "ok", ""
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        sources = payload.get("sources", {})
        data = {task.name: task.train_data(seed, sources.get(task.name)) for task in tier.tasks}
        log.append(f"prepared training data for {', '.join(data) or 'no tasks'} in "
                   f"{time.perf_counter() - started:.1f}s")
        guard = Guard()
        use_interpreter_without_gpu()  # before the design's @triton.jit kernels are decorated
        module, info = load(payload["code"])
        guard.verify("import")
        mixer_cls = module.Mixer

        spec = tier.checks
        mixers = checks.build_mixers(mixer_cls, spec)
        metrics.update(checks.check_params(mixers, spec))
        checks.check_shapes_and_causality(mixers, spec, generator)
        model_metrics, check_model = checks.check_model(mixer_cls, spec, generator)
        metrics.update(model_metrics)
        if info.has_step:
            metrics.update(checks.check_recurrent(mixers, spec, generator))
        if info.has_kernels:
            kernel_metrics, kernel_failure = checks.check_kernels(module, payload["code"], spec, seed)
            metrics.update(kernel_metrics)
            if kernel_failure is not None:
                raise kernel_failure
        guard.verify("checks")
        log.append(f"checks passed at {time.perf_counter() - started:.1f}s")
        models["check"] = export_model(check_model)

        for task in tier.tasks:
            t0 = time.perf_counter()
            model, reported = task.train(mixer_cls, data[task.name], seed, device)
            metrics.update(reported)
            guard.verify(task.name)
            models[task.name] = export_model(model)
            log.append(f"{task.name} trained in {time.perf_counter() - t0:.1f}s")
        if tier.tasks:
            first = tier.tasks[0]
            x, y = data[first.name]
            model = build_model(mixer_cls, first.vocab, first.model, seed, device)
            metrics["flops_per_token"] = round(flops_per_token(model, x[:8].to(device), y[:8].to(device)))
    except EvalFailure as failure:
        status, reason = failure.status, failure.reason
    except (Exception, MemoryError) as exc:  # the candidate's own exception: a named outcome, not a crash
        status, reason = _classify(exc)
        log.append("".join(traceback.format_exception(exc, limit=-8)))
    if status not in ("ok", "tamper") and guard is not None:
        # A patched loss or check makes some check fail first (e.g. a zero loss at init); name the cause.
        try:
            guard.verify("the failed phase")
        except EvalFailure as failure:
            status, reason = failure.status, failure.reason
    return {
        "status": status, "reason": reason, "metrics": metrics, "log": "\n".join(log),
        "models": models if status == "ok" else {},
        "name": info.name if info else None, "motivation": info.motivation if info else None,
        "has_step": info.has_step if info else None,
        "duration_s": round(time.perf_counter() - started, 3), "environment": environment(device),
    }


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's counter knows its GPU attention kernels, not the CPU one that scaled_dot_product_attention
    dispatches to (it would count 0): the same formula, the full T x T scores (torch ignores the causal
    mask on a GPU too)."""
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


_FLOP_FORMULAS = MappingProxyType({torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops})
# torch's formulas as they were before any design was imported (this module is imported first).
_REGISTRY = MappingProxyType(dict(flop_counter.flop_registry))


def _counted(model: LanguageModel, tokens: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The model's logits and the FLOPs torch's flop counter counted while computing them: matrix
    products, convolutions and attention dispatched through torch; element-wise work and work outside
    torch's dispatcher (a Triton kernel, Python arithmetic) count nothing."""
    counter = FlopCounterMode(display=False, custom_mapping=dict(_FLOP_FORMULAS))
    with counter:
        logits = model(tokens)
    if flop_counter.flop_registry != dict(_REGISTRY):
        raise EvalFailure("tamper", "after answering: torch.utils.flop_counter.flop_registry changed")
    return logits, int(counter.get_total_flops())


def _answer(model: LanguageModel, tokens: torch.Tensor, mode: str, answers: str, state=None) -> dict:
    """The answers to one query; a ``resume`` query steps from ``state`` and sends the state it ends in;
    a ``flops`` query answers a forward pass counted by torch's flop counter, and sends the count."""
    if mode == "flops":
        logits, flops = _counted(model, tokens)
        return {**_answers(logits, answers), "flops": flops}
    if mode == "resume":
        logits, after = resume(model, tokens, state)
        try:
            sent = wire.encode_tree(after)
        except wire.WireError as exc:
            raise EvalFailure("contract", f"the recurrent state cannot be sent on: {exc}") from None
        return {**_answers(logits, answers), "state": sent}
    return _answers(recurrent_logits(model, tokens) if mode == "step" else model(tokens), answers)


def _answers(logits, answers: str) -> dict:
    if not isinstance(logits, torch.Tensor):
        raise EvalFailure("shape", f"the model returned {type(logits).__name__}, expected a Tensor")
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    if answers == "logprobs":
        return {"logprobs": wire.encode(logprobs)}
    top, index = logprobs.max(dim=-1)
    return {"argmax": wire.encode(index.to(torch.int32)), "top": wire.encode(top)}


def _to_device(state, device: str):
    """A state sent to resume from, on the device the model runs on."""
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, (tuple, list)):
        return type(state)(_to_device(v, device) for v in state)
    if isinstance(state, dict):
        return {k: _to_device(v, device) for k, v in state.items()}
    return state


def _answer_path() -> dict[str, tuple[object, tuple[str, ...]]]:
    """What turns the design's model into answers, watched like the training path."""
    import evaluator.backbone as backbone
    import kernels.conv as conv

    return {
        "evaluator.harness": (sys.modules[__name__], ("_answer", "_answers", "answer_in_child", "recurrent_logits",
                                                        "resume", "_counted", "_cpu_attention_flops", "_FLOP_FORMULAS",
                                                        "_REGISTRY", "FlopCounterMode")),
        # the flop counter that ``flops`` queries read: its class, its dispatch mode, the formulas it calls
        "torch.utils.flop_counter": (flop_counter, ("FlopCounterMode", "_FlopCounterMode", "flop_registry",
                                                    "shape_wrapper", "get_shape", "sdpa_flop_count", "mm_flop",
                                                    "addmm_flop", "bmm_flop", "baddbmm_flop", "conv_flop",
                                                    "conv_flop_count", "sdpa_flop", "ModuleTracker")),
        "FlopCounterMode": (FlopCounterMode, ("__init__", "__enter__", "__exit__", "_count_flops", "get_total_flops")),
        "_FlopCounterMode": (flop_counter._FlopCounterMode, ("__init__", "__enter__", "__exit__", "__torch_dispatch__",
                                                             "_handle_higher_order_ops")),
        "ModuleTracker": (flop_counter.ModuleTracker, ("__init__", "__enter__", "__exit__", "_fw_pre_hook",
                                                       "_fw_post_hook", "_get_append_fn", "_get_pop_fn")),
        "evaluator.wire": (wire, ("encode", "encode_tree")),
        "evaluator.backbone": (backbone, ("recurrent_logits", "resume")),
        "LanguageModel": (backbone.LanguageModel, ("forward", "load_state_dict")),
        "Block": (backbone.Block, ("forward",)), "RMSNorm": (backbone.RMSNorm, ("forward",)),
        "SwiGLU": (backbone.SwiGLU, ("forward",)), "ShortConvolution": (conv.ShortConvolution, ("forward", "step")),
        "torch.nn.Linear": (torch.nn.Linear, ("forward",)), "torch.nn.Embedding": (torch.nn.Embedding, ("forward",)),
        "torch.Tensor.answers": (torch.Tensor, ("max", "float", "to", "contiguous", "numpy")),
        "torch.answers": (torch, ("log_softmax", "stack")),
    }


def _fresh_random_state() -> None:
    """Every query process is forked from one server and would inherit one random state: noise drawn in
    answering would then repeat across processes, and a probe answered in the same place of another
    process's order would see the same noise as the batch it shadows. Drawn afresh, it never repeats."""
    import random

    torch.manual_seed(int.from_bytes(os.urandom(8), "little"))
    random.seed(os.urandom(16))
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(int.from_bytes(os.urandom(4), "little"))


def answer_in_child(payload: dict) -> dict:
    """payload: code, model (shape), weights, queries ([{tokens, mode, answers}]). Answers every query
    in order, or says why it could not."""
    use_interpreter_without_gpu()
    _fresh_random_state()
    guard = Guard(_answer_path())
    try:
        module, _ = load(payload["code"])
        guard.verify("import")
        shape = payload["model"]
        device = payload.get("device", "cpu")
        model = LanguageModel(module.Mixer, shape["vocab"], shape["d_model"], shape["n_layers"], shape["n_heads"],
                              shape["mlp_ratio"], shape["token_conv"])
        try:
            model.load_state_dict(payload["weights"], strict=True)
        except RuntimeError as exc:
            raise EvalFailure("contract", "the trained weights do not fit a freshly built model: "
                                          f"{str(exc).splitlines()[0][:300]}") from None
        model.to(device).eval()
        answers = []
        with torch.no_grad():
            for query in payload["queries"]:
                state = _to_device(query.get("state"), device)
                answers.append(_answer(model, query["tokens"].to(device), query["mode"], query["answers"], state))
        guard.verify("answering")
        return {"answers": answers}
    except EvalFailure as failure:
        return {"failed": {"status": failure.status, "reason": failure.reason}}
    except (Exception, MemoryError) as exc:
        status, reason = _classify(exc)
        return {"failed": {"status": status, "reason": reason}}
