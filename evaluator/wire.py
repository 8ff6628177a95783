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
    raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
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


MAX_TREE_LEAVES = 4096
MAX_TREE_DEPTH = 8


def encode_tree(obj: object, depth: int = 0) -> object:
    """A recurrent state (tensors in tuples, lists and dicts with str or int keys, or None) as JSON:
    each container tagged with its kind, so a tuple comes back a tuple."""
    if depth > MAX_TREE_DEPTH:
        raise WireError(f"a state nests deeper than {MAX_TREE_DEPTH} levels")
    if obj is None:
        return None
    if isinstance(obj, torch.Tensor):
        return {"tensor": encode(obj)}
    if isinstance(obj, (tuple, list)):
        return {type(obj).__name__: [encode_tree(v, depth + 1) for v in obj]}
    if isinstance(obj, dict) and all(type(k) in (str, int) for k in obj):
        return {"dict": [[k, encode_tree(v, depth + 1)] for k, v in obj.items()]}
    raise WireError(f"a state may hold tensors, tuples, lists and dicts with str or int keys, not "
                    f"{type(obj).__name__}")


def decode_tree(obj: object, what: str, dtypes: tuple[torch.dtype, ...] | None = None) -> object:
    """The state ``obj`` describes, checked like ``decode`` leaf by leaf, with at most
    ``MAX_TREE_LEAVES`` tensors, ``MAX_ELEMENTS`` numbers in all and ``MAX_TREE_DEPTH`` levels."""
    budget = {"leaves": MAX_TREE_LEAVES, "elements": MAX_ELEMENTS}

    def walk(node: object, depth: int) -> object:
        if depth > MAX_TREE_DEPTH:
            raise WireError(f"{what}: nests deeper than {MAX_TREE_DEPTH} levels")
        if node is None:
            return None
        if not isinstance(node, dict) or len(node) != 1:
            raise WireError(f"{what}: a node is not a tagged dict")
        (tag, value), = node.items()
        if tag == "tensor":
            budget["leaves"] -= 1
            tensor = decode(value, what, dtypes=dtypes)
            budget["elements"] -= tensor.numel()
            if budget["leaves"] < 0 or budget["elements"] < 0:
                raise WireError(f"{what}: more than {MAX_TREE_LEAVES} tensors or {MAX_ELEMENTS} numbers")
            return tensor
        if tag in ("tuple", "list") and isinstance(value, list):
            items = [walk(v, depth + 1) for v in value]
            return tuple(items) if tag == "tuple" else items
        if tag == "dict" and isinstance(value, list) and all(
                isinstance(p, list) and len(p) == 2 and type(p[0]) in (str, int) for p in value):
            return {k: walk(v, depth + 1) for k, v in value}
        raise WireError(f"{what}: a node tagged {str(tag)[:20]!r} is malformed")

    return walk(obj, 0)


def tree_tensors(obj: object) -> list[torch.Tensor]:
    """Every tensor of a decoded state, in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for v in obj for t in tree_tensors(v)]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tree_tensors(v)]
    return []
