"""Published ways to pass a kernel benchmark without computing the result: each a kernel to reject.

All share the signature of ``naive_recurrent_linear_attn`` (q, k, v, scale, initial_state,
output_final_state) -> (o, final state). Most give the right numbers some or all of the time, through
the library's Triton kernel (``honest``) or the reference, so a rejection is about what they do. Several
are written the way one dodges a static scan (the reference bound outside the kernel, a name looked up
at run time): the harness's run-time watch has to catch those on its own.

Work handed to other threads is tracked in ``THREADS`` and ``STREAM`` (started by whoever checks these
kernels, closed after); ``settle()`` waits for it, so a test can make sure none of it is still running
when the next check starts.
"""

import ctypes
import gc
import hashlib
import importlib
import inspect
import math
import queue
import struct
import sys
import threading
import time

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

import kernels.linear_attn as la
from kernels.linear_attn.triton import triton_linear_attn

CACHE: dict = {}
THREADS: list[threading.Thread] = []
_reference = la.naive_recurrent_linear_attn  # bound where a scan of the kernel's functions does not look


def honest(q, k, v, scale=None, initial_state=None, output_final_state=False):
    return triton_linear_attn(q, k, v, scale=scale, initial_state=initial_state,
                              output_final_state=output_final_state)


@triton.jit
def _touch_kernel(y, N: tl.constexpr, BLOCK: tl.constexpr):
    """A real launch that computes nothing: y = y."""
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y + o, tl.load(y + o, mask=o < N), mask=o < N)


def _touch(*tensors):
    """Launch a Triton kernel on each tensor, so that launches are seen and the memory was given to one."""
    for t in tensors:
        _touch_kernel[(triton.cdiv(t.numel(), 1024),)](t, N=t.numel(), BLOCK=1024)


def _outputs(q, v):
    """Fresh (o, final state) memory, as a kernel would allocate it."""
    return torch.empty_like(v), torch.empty(q.shape[0], q.shape[1], q.shape[3], v.shape[3])


def _detached(*tensors):
    return tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in tensors)


def _raw(t: torch.Tensor) -> bytes:
    """A contiguous tensor's bytes, read through its address: no torch call a watch could see."""
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())


class SideStream:
    """A CPU stand-in for a CUDA stream: work queued on it runs later, in order, on its own thread. The
    thread starts with ``start()``, before any kernel call (as a stream is created before it is used),
    and ends with ``close()``."""

    def __init__(self):
        self.jobs: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self):
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()
            self.thread = None

    def _run(self):
        while (job := self.jobs.get()) is not None:
            try:
                job()
            finally:
                self.jobs.task_done()

    def submit(self, job):
        if self.thread is None:
            self.start()
        self.jobs.put(job)

    def synchronize(self):
        if self.thread is not None:
            self.jobs.join()


STREAM = SideStream()


def settle():
    """Wait for every piece of work the cheats handed to other threads."""
    STREAM.synchronize()
    for thread in THREADS:
        thread.join()
    THREADS.clear()


# -- work elsewhere -------------------------------------------------------------------------------------

def thread_returns_early(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Returns at once; a new thread computes the result into the returned memory afterwards."""
    o, final = _outputs(q, v)
    args = _detached(q, k, v, scale, initial_state)

    def work():
        out, state = honest(*args, output_final_state=True)
        o.copy_(out)
        final.copy_(state)

    thread = threading.Thread(target=work)
    THREADS.append(thread)
    thread.start()
    return o, final if output_final_state else None


def on_a_side_stream(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Queues the kernel on a side stream and returns without waiting for it."""
    o, final = _outputs(q, v)
    args = _detached(q, k, v, scale, initial_state)

    def work():
        out, state = honest(*args, output_final_state=True)
        o.copy_(out)
        final.copy_(state)

    STREAM.submit(work)
    return o, final if output_final_state else None


def writes_later(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Launches a kernel that does nothing, returns, and has a side thread write the reference's result
    into the outputs a moment later: right by the time a slow harness reads them."""
    o, final = _outputs(q, v)
    _touch(o, final)
    args = _detached(q, k, v, scale, initial_state)

    def work():
        time.sleep(0.05)
        out, state = _reference(*args, output_final_state=True)
        o.copy_(out)
        final.copy_(state)

    STREAM.submit(work)
    return o, final if output_final_state else None


class _Deferred(torch.Tensor):
    """Holds no values until something reads it; then it computes them."""

    @staticmethod
    def __new__(cls, like, compute):
        tensor = torch.Tensor._make_subclass(cls, torch.empty_like(like))
        tensor._compute = compute
        return tensor

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        for a in args:
            if isinstance(a, _Deferred) and getattr(a, "_compute", None) is not None:
                compute, a._compute = a._compute, None
                with torch._C.DisableTorchFunctionSubclass():
                    a.copy_(compute())
        return super().__torch_function__(func, types, args, kwargs or {})


def lazy_tensor(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Returns tensors whose values are computed only when the harness reads them."""
    args = _detached(q, k, v, scale, initial_state)
    o = _Deferred(v, lambda: honest(*args, output_final_state=True)[0])
    final = _Deferred(torch.empty(q.shape[0], q.shape[1], q.shape[3], v.shape[3]),
                      lambda: honest(*args, output_final_state=True)[1])
    return o, final if output_final_state else None


# -- less precision ---------------------------------------------------------------------------------------

def _downgraded(dtype, q, k, v, scale, initial_state, output_final_state):
    low = [t.to(dtype) if t is not None else None for t in (q, k, v, initial_state)]
    o, final = honest(*low[:3], scale, low[3], output_final_state)
    return o.to(q.dtype), final.float() if final is not None else None


def half_precision(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes in float16 and casts back."""
    return _downgraded(torch.float16, q, k, v, scale, initial_state, output_final_state)


def bfloat16_precision(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes in bfloat16 and casts back."""
    return _downgraded(torch.bfloat16, q, k, v, scale, initial_state, output_final_state)


# -- patching what measures or compares -----------------------------------------------------------------

_true_clock = time.perf_counter


def _fast_clock():
    return _true_clock() / 10


class _FastEvent(torch.cuda.Event):
    def elapsed_time(self, end_event):
        return super().elapsed_time(end_event) / 10


def patched_timer(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Correct, and makes every later measurement of time ten times shorter."""
    time.perf_counter = _fast_clock
    return honest(q, k, v, scale, initial_state, output_final_state)


def patched_event(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Correct, and replaces the CUDA events that time kernels."""
    torch.cuda.Event = _FastEvent
    return honest(q, k, v, scale, initial_state, output_final_state)


def _zeros(q, k, v, scale=None, initial_state=None, output_final_state=False):
    final = torch.zeros(q.shape[0], q.shape[1], q.shape[3], v.shape[3]) if output_final_state else None
    return torch.zeros_like(v), final


def patches_the_reference(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Makes the reference return zeros, then returns zeros (touched by a launch)."""
    sys.modules["kernels.linear_attn.naive"].naive_recurrent_linear_attn.__code__ = _zeros.__code__
    o, final = _zeros(q, k, v, scale, initial_state, True)
    _touch(o, final)
    return o, final if output_final_state else None


def walks_the_stack(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Finds the harness's frame and loosens its limits, then returns zeros (touched by a launch)."""
    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if hasattr(owner, "limits"):
            owner.limits = {dtype: (type(limits[0])(1e9, 1e9),) * 2 for dtype, limits in owner.limits.items()}
        frame = frame.f_back
    o, final = _zeros(q, k, v, scale, initial_state, True)
    _touch(o, final)
    return o, final if output_final_state else None


def loosens_the_limits(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Reaches the harness's frame through a traceback (no frame function called) and loosens its
    limits, then returns zeros (touched by a launch)."""
    try:
        raise LookupError
    except LookupError as exc:
        frame = exc.__traceback__.tb_frame
    while frame is not None:
        owner = frame.f_locals.get("self")
        if hasattr(owner, "limits"):
            owner.limits = {dtype: (type(limits[0])(1e9, 1e9),) * 2 for dtype, limits in owner.limits.items()}
        frame = frame.f_back
    o, final = _zeros(q, k, v, scale, initial_state, True)
    _touch(o, final)
    return o, final if output_final_state else None


def reads_the_garbage_collector(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Looks for the harness's expected output among all live objects, else for its reference."""
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.shape == v.shape and obj is not v and not obj.requires_grad:
            final = torch.zeros(q.shape[0], q.shape[1], q.shape[3], v.shape[3])
            return obj.clone(), final if output_final_state else None
        if callable(getattr(obj, "reference", None)) and callable(getattr(obj, "inputs", None)):
            return obj.reference(q, k, v, scale, initial_state, output_final_state)
    return honest(q, k, v, scale, initial_state, output_final_state)


def input_as_output(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Launches a kernel on its inputs and returns them as the outputs."""
    _touch(v, initial_state)
    return v, initial_state if output_final_state else None


# -- caches ---------------------------------------------------------------------------------------------

def cache_by_address(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes once per set of input addresses, then returns that result again."""
    key = ("address", *(t.data_ptr() for t in (q, k, v, initial_state) if t is not None), output_final_state)
    if key not in CACHE:
        CACHE[key] = honest(q, k, v, scale, initial_state, output_final_state)
    return CACHE[key]


def cache_by_values(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes once per set of input values (a hash of their bytes), then returns that result again."""
    digest = hashlib.sha1()
    for t in (q, k, v, initial_state):
        if t is not None:
            digest.update(_raw(t))
    key = ("values", digest.hexdigest(), output_final_state)
    if key not in CACHE:
        CACHE[key] = honest(q, k, v, scale, initial_state, output_final_state)
    return CACHE[key]


# -- part of the work -----------------------------------------------------------------------------------

def short_sequences_only(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Right up to T = 40, which is all a short-sequence harness tries; longer, only the first 40 tokens."""
    if q.shape[2] <= 40:
        return honest(q, k, v, scale, initial_state, output_final_state)
    o = torch.empty_like(v)
    part, final = honest(q[:, :, :40], k[:, :, :40], v[:, :, :40], scale, initial_state, True)
    o[:, :, :40] = part
    return o, final if output_final_state else None


def first_batch_only(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes batch element 0 and leaves the others' memory as it was allocated."""
    o, final = _outputs(q, v)
    h0 = initial_state[:1] if initial_state is not None else None
    part, state = honest(q[:1], k[:1], v[:1], scale, h0, True)
    o[:1] = part
    final[:1] = state
    return o, final if output_final_state else None


def head_zero_only(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes head 0 of every sequence and leaves the other heads' memory as it was allocated."""
    o, final = _outputs(q, v)
    h0 = initial_state[:, :1] if initial_state is not None else None
    part, state = honest(q[:, :1], k[:, :1], v[:, :1], scale, h0, True)
    o[:, :1] = part
    final[:, :1] = state
    return o, final if output_final_state else None


def honest_under_nan(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes only when fresh memory reads as NaN (a harness that poisons with NaN is watching);
    otherwise returns the fresh memory after a launch that does nothing."""
    o, final = _outputs(q, v)
    if math.isnan(struct.unpack("f", _raw(o)[:4])[0]):
        return honest(q, k, v, scale, initial_state, output_final_state)
    _touch(o, final)
    return o, final if output_final_state else None


# -- the reference, reached some other way --------------------------------------------------------------

def reference_through_module_alias(q, k, v, scale=None, initial_state=None, output_final_state=False):
    return la.naive_recurrent_linear_attn(q, k, v, scale, initial_state, output_final_state)


def reference_bound_outside(q, k, v, scale=None, initial_state=None, output_final_state=False):
    return _reference(q, k, v, scale, initial_state, output_final_state)


def reference_via_getattr(q, k, v, scale=None, initial_state=None, output_final_state=False):
    return getattr(la, "naive_" + "recurrent_linear_attn")(q, k, v, scale, initial_state, output_final_state)


def reference_via_importlib(q, k, v, scale=None, initial_state=None, output_final_state=False):
    naive = importlib.import_module("kernels.linear_attn.naive")
    return naive.naive_recurrent_linear_attn(q, k, v, scale, initial_state, output_final_state)


def reference_via_dunder_import(q, k, v, scale=None, initial_state=None, output_final_state=False):
    naive = __import__("kernels.linear_attn.naive", fromlist=["naive_recurrent_linear_attn"])
    return naive.naive_recurrent_linear_attn(q, k, v, scale, initial_state, output_final_state)


def reference_via_sys_modules(q, k, v, scale=None, initial_state=None, output_final_state=False):
    naive = sys.modules["kernels.linear_attn.naive"]
    return naive.naive_recurrent_linear_attn(q, k, v, scale, initial_state, output_final_state)


class _BorrowedBackward(torch.autograd.Function):
    """The Triton kernel forward; the gradients from the reference under autograd."""

    @staticmethod
    def forward(ctx, q, k, v, initial_state, scale):
        ctx.save_for_backward(q, k, v, initial_state)
        ctx.scale = scale
        return honest(q, k, v, scale, initial_state, True)

    @staticmethod
    def backward(ctx, do, dfinal):
        leaves = [t.detach().requires_grad_() for t in ctx.saved_tensors]
        with torch.enable_grad():
            o, final = _reference(*leaves[:3], ctx.scale, leaves[3], True)
            grads = torch.autograd.grad((o, final), leaves, (do, dfinal))
        return (*grads, None)


def borrowed_backward(q, k, v, scale=None, initial_state=None, output_final_state=False):
    o, final = _BorrowedBackward.apply(q, k, v, initial_state, scale)
    return o, final if output_final_state else None


# -- torch on the host, under names a scan may not list --------------------------------------------------

def _scale(q, scale):
    return q.shape[-1] ** -0.5 if scale is None else scale


def einsum_on_host(q, k, v, scale=None, initial_state=None, output_final_state=False):
    states = initial_state.unsqueeze(2) + torch.einsum("bhtk,bhtv->bhtkv", k, v).cumsum(2)
    o = _scale(q, scale) * torch.einsum("bhtk,bhtkv->bhtv", q, states)
    return o, states[:, :, -1] if output_final_state else None


def bmm_on_host(q, k, v, scale=None, initial_state=None, output_final_state=False):
    B, H, T, K = q.shape
    batched = getattr(torch, "bm" + "m")
    scores = batched(q.reshape(B * H, T, K), k.reshape(B * H, T, K).transpose(1, 2))
    o = batched(scores.tril(), v.reshape(B * H, T, -1)).reshape(v.shape)
    o = _scale(q, scale) * (o + batched(q.reshape(B * H, T, K), initial_state.reshape(B * H, K, -1)).reshape(v.shape))
    final = initial_state + batched(k.reshape(B * H, T, K).transpose(1, 2), v.reshape(B * H, T, -1)).reshape(
        initial_state.shape)
    return o, final if output_final_state else None


def matmul_dunder(q, k, v, scale=None, initial_state=None, output_final_state=False):
    T = q.shape[2]
    scores = torch.Tensor.__matmul__(q, k.transpose(-1, -2)) * torch.ones(T, T).tril()
    o = _scale(q, scale) * (scores.__matmul__(v) + q.__matmul__(initial_state))
    final = initial_state + k.transpose(-1, -2).__matmul__(v)
    return o, final if output_final_state else None


def functional_ops(q, k, v, scale=None, initial_state=None, output_final_state=False):
    B, H, T, K = q.shape
    o = torch.empty_like(v)
    for b in range(B):
        for h in range(H):
            scores = F.linear(q[b, h], k[b, h]).tril()
            o[b, h] = _scale(q, scale) * (F.linear(scores, v[b, h].T) + F.linear(q[b, h], initial_state[b, h].T))
    final = initial_state + F.linear(k.transpose(-1, -2), v.transpose(-1, -2))
    return o, final if output_final_state else None


# -- numpy on the host ----------------------------------------------------------------------------------

def _numpy_linear_attn(q, k, v, scale, initial_state):
    import numpy as np

    q, k, v, h0 = (np.frombuffer(_raw(t), dtype=np.float32).reshape(t.shape).astype(np.float64)
                   for t in (q, k, v, initial_state))
    states = h0[:, :, None] + np.cumsum(np.einsum("bhtk,bhtv->bhtkv", k, v), axis=2)
    o = _scale(q, scale) * np.einsum("bhtk,bhtkv->bhtv", q, states)
    return o.astype(np.float32), states[:, :, -1].astype(np.float32)


def numpy_behind_a_launch(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes with numpy, hands the result to torch, and launches a kernel that does nothing."""
    o, final = (torch.from_numpy(x) for x in _numpy_linear_attn(q, k, v, scale, initial_state))
    _touch(torch.empty(1))
    return o, final if output_final_state else None


def numpy_view_write(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes with numpy and writes the result through a numpy view of launched-on memory."""
    o, final = _outputs(q, v)
    _touch(o, final)
    o_np, final_np = _numpy_linear_attn(q, k, v, scale, initial_state)
    o.numpy()[...] = o_np
    final.numpy()[...] = final_np
    return o, final if output_final_state else None


CHEATS = {
    "thread_returns_early": thread_returns_early, "on_a_side_stream": on_a_side_stream,
    "writes_later": writes_later, "lazy_tensor": lazy_tensor, "half_precision": half_precision,
    "bfloat16_precision": bfloat16_precision, "patched_timer": patched_timer, "patched_event": patched_event,
    "patches_the_reference": patches_the_reference, "walks_the_stack": walks_the_stack,
    "loosens_the_limits": loosens_the_limits,
    "reads_the_garbage_collector": reads_the_garbage_collector, "cache_by_address": cache_by_address,
    "cache_by_values": cache_by_values, "short_sequences_only": short_sequences_only,
    "first_batch_only": first_batch_only, "head_zero_only": head_zero_only, "honest_under_nan": honest_under_nan,
    "reference_through_module_alias": reference_through_module_alias,
    "reference_bound_outside": reference_bound_outside, "reference_via_getattr": reference_via_getattr,
    "reference_via_importlib": reference_via_importlib, "reference_via_dunder_import": reference_via_dunder_import,
    "reference_via_sys_modules": reference_via_sys_modules, "borrowed_backward": borrowed_backward,
    "einsum_on_host": einsum_on_host, "bmm_on_host": bmm_on_host, "matmul_dunder": matmul_dunder,
    "functional_ops": functional_ops, "numpy_behind_a_launch": numpy_behind_a_launch,
    "numpy_view_write": numpy_view_write, "input_as_output": input_as_output,
}
