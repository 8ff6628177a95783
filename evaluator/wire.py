"""Tensors across the sandbox's boundary, as JSON, and never trusted on the way back.

The design's process sends tensors as ``{"dtype", "shape", "data"}`` with the raw bytes in
base64. The trusted side decodes them with ``decode``, which accepts only plain dtypes, only the
shape it expects (when it knows it), only a byte count that matches the shape, and nothing over
a size cap: a malformed or oversized tensor is a ``WireError`` naming what was wrong, never an
exception from deep inside torch and never an object the design chose.
"""

from __future__ import annotations

import base64
import binascii
import math

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64, "int64": torch.int64, "int32": torch.int32, "int16": torch.int16,
          "uint8": torch.uint8, "bool": torch.bool}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}
MAX_ELEMENTS = 1 << 27


class WireError(ValueError):
    """What the other side sent is not the tensor it should be."""


def encode(tensor: torch.Tensor) -> dict:
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype not in _NAMES:
        raise WireError(f"cannot send a tensor of dtype {tensor.dtype}")
    raw = tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
    return {"dtype": _NAMES[tensor.dtype], "shape": list(tensor.shape), "data": base64.b64encode(raw).decode()}


def decode(obj: object, what: str, shape: tuple[int, ...] | None = None,
           dtypes: tuple[torch.dtype, ...] | None = None) -> torch.Tensor:
    """The tensor ``obj`` describes, checked; ``what`` names it in the error."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise WireError(f"{what}: expected a dict with dtype, shape and data")
    dtype = DTYPES.get(obj["dtype"]) if isinstance(obj["dtype"], str) else None
    if dtype is None or (dtypes is not None and dtype not in dtypes):
        raise WireError(f"{what}: dtype {obj['dtype']!r} is not allowed here")
    dims = obj["shape"]
    if not (isinstance(dims, list) and all(type(d) is int and 0 <= d for d in dims)) or len(dims) > 8:
        raise WireError(f"{what}: shape {dims!r} is not a list of at most 8 non-negative ints")
    if shape is not None and tuple(dims) != tuple(shape):
        raise WireError(f"{what}: shape {tuple(dims)}, expected {tuple(shape)}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise WireError(f"{what}: {count} elements exceed the cap of {MAX_ELEMENTS}")
    if not isinstance(obj["data"], str):
        raise WireError(f"{what}: data is not a base64 string")
    try:
        raw = base64.b64decode(obj["data"], validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{what}: data is not valid base64") from None
    size = torch.empty((), dtype=dtype).element_size()
    if len(raw) != count * size:
        raise WireError(f"{what}: {len(raw)} bytes for shape {tuple(dims)} of {obj['dtype']}")
    if not count:
        return torch.empty(dims, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(dims).clone()
