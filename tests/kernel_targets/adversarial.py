"""Kernels that try to pass the harness without computing the result: each must be rejected.

All share the signature of ``naive_recurrent_linear_attn`` (q, k, v, scale, initial_state,
output_final_state) -> (o, final state). The honest one (``honest``) wraps the library's Triton
kernel, so a rejection of the others is about what they do, not about the harness being broken.
"""

import torch

from kernels.linear_attn import naive_recurrent_linear_attn
from kernels.linear_attn.triton import triton_linear_attn

CACHE: dict = {}


def honest(q, k, v, scale=None, initial_state=None, output_final_state=False):
    return triton_linear_attn(q, k, v, scale=scale, initial_state=initial_state,
                              output_final_state=output_final_state)


def first_chunk_only(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes the first 16 tokens and leaves the rest of the output uninitialized."""
    B, H, T, K = q.shape
    o = torch.empty_like(v)
    part, state = triton_linear_attn(q[:, :, :16], k[:, :, :16], v[:, :, :16], scale=scale,
                                     initial_state=initial_state, output_final_state=True)
    o[:, :, :16] = part
    return o, state if output_final_state else None


def first_head_only(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Computes head 0 and returns zeros for the others."""
    o = torch.zeros_like(v)
    h0 = initial_state[:, :1] if initial_state is not None else None
    part, state = triton_linear_attn(q[:, :1], k[:, :1], v[:, :1], scale=scale, initial_state=h0,
                                     output_final_state=True)
    o[:, :1] = part
    final = torch.zeros(q.shape[0], q.shape[1], q.shape[3], v.shape[3])
    final[:, :1] = state
    return o, final if output_final_state else None


def zeros(q, k, v, scale=None, initial_state=None, output_final_state=False):
    final = torch.zeros(q.shape[0], q.shape[1], q.shape[3], v.shape[3]) if output_final_state else None
    return torch.zeros_like(v), final


def copy_of_input(q, k, v, scale=None, initial_state=None, output_final_state=False):
    return v.detach().clone(), initial_state.detach().clone() if output_final_state else None


def input_itself(q, k, v, scale=None, initial_state=None, output_final_state=False):
    return v, initial_state if output_final_state else None


def freed_memory(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Returns fresh uninitialized memory, hoping the allocator hands back the reference's output."""
    B, H, T, K = q.shape
    final = torch.empty(B, H, K, v.shape[3]) if output_final_state else None
    return torch.empty_like(v), final


def cached(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Correct on the first call per shape, then returns that call's outputs again."""
    key = (tuple(q.shape), tuple(v.shape), output_final_state)
    if key not in CACHE:
        CACHE[key] = triton_linear_attn(q, k, v, scale=scale, initial_state=initial_state,
                                        output_final_state=output_final_state)
    return CACHE[key]


def mutates_input(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Correct, but scribbles on its input afterwards."""
    out = triton_linear_attn(q, k, v, scale=scale, initial_state=initial_state,
                             output_final_state=output_final_state)
    with torch.no_grad():
        v[0, 0, 0, 0] = 0.0
    return out


def wrong_dtype(q, k, v, scale=None, initial_state=None, output_final_state=False):
    o, state = triton_linear_attn(q.double(), k.double(), v.double(), scale=scale,
                                  initial_state=None if initial_state is None else initial_state.double(),
                                  output_final_state=output_final_state)
    return o, state


def falls_back_to_reference(q, k, v, scale=None, initial_state=None, output_final_state=False):
    try:
        raise RuntimeError("pretend the Triton kernel failed to compile")
    except RuntimeError:
        return naive_recurrent_linear_attn(q, k, v, scale, initial_state, output_final_state)


def falls_back_to_torch(q, k, v, scale=None, initial_state=None, output_final_state=False):
    try:
        return _broken_kernel(q)
    except Exception:
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        state = initial_state if initial_state is not None else q.new_zeros(q.shape[0], q.shape[1], q.shape[3],
                                                                           v.shape[3])
        states = state.unsqueeze(2) + torch.einsum("bhtk,bhtv->bhtkv", k, v).cumsum(2)
        o = scale * torch.einsum("bhtk,bhtkv->bhtv", q, states)
        return o, states[:, :, -1] if output_final_state else None


def _broken_kernel(q):
    raise RuntimeError("no GPU")


def computes_with_torch(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """No try, no reference: the whole recurrence as torch matmuls on the host."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    mask = torch.ones(q.shape[2], q.shape[2]).tril()
    o = ((q @ k.transpose(-1, -2)) * mask) @ v * scale + (q @ initial_state) * scale
    final = initial_state + k.transpose(-1, -2) @ v
    return o, final if output_final_state else None


def uses_a_stream(q, k, v, scale=None, initial_state=None, output_final_state=False):
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        return honest(q, k, v, scale, initial_state, output_final_state)


ADVERSARIES = {
    "first_chunk_only": first_chunk_only, "first_head_only": first_head_only, "zeros": zeros,
    "copy_of_input": copy_of_input, "input_itself": input_itself, "freed_memory": freed_memory,
    "cached": cached, "mutates_input": mutates_input, "wrong_dtype": wrong_dtype,
    "falls_back_to_reference": falls_back_to_reference, "falls_back_to_torch": falls_back_to_torch,
    "computes_with_torch": computes_with_torch, "uses_a_stream": uses_a_stream,
}
# Caught by running them, with the static scan off: the dynamic checks alone reject these.
DYNAMIC = ("first_chunk_only", "first_head_only", "zeros", "copy_of_input", "input_itself", "freed_memory",
           "cached", "mutates_input", "wrong_dtype")
