"""Watching a kernel call at run time: what it launched, which torch ops it ran, what it started or replaced.

The numbers a kernel returns cannot show how they were made, and a static scan can be talked around
(getattr, importlib, an alias bound elsewhere, a torch op the scan does not list). So the harness calls
the kernel under a ``CallWatch``, which records:

- every Triton launch (``InterpretedFunction.run`` under the interpreter, ``JITFunction.run`` when
  compiled, a CUDA kernel the harness compiled), the tensors it was given and the thread it came
  from. A call must launch a kernel on its own thread, and every output must be memory a launch was
  given, or a copy, cast or view of such memory;
- every aten op the call runs (a TorchDispatchMode). Outside a launch, host code may allocate, view,
  copy, cast, pad and concatenate; any other op computes, and computing is the kernel's job. Inside a
  launch only what Triton's interpreter runs to stage its arguments is allowed. In a backward, the ops
  the autograd engine issues itself (gradient accumulation, the backward of views and of built-in
  ops) are not the kernel's. Fresh allocations are filled with the case's fill value (``poison``);
- casts of floating-point data below the precision of the least precise input (a precision downgrade),
  and values moved between tensors and the host (``.item()``, ``.numpy()``, ``.tolist()``,
  ``torch.tensor``): a result computed on the host comes in that way;
- threads and processes started, the garbage collector's object lists read (they come back empty
  during the call), the call stack walked, and attributes of torch, the clocks, the builtins and the
  project's modules replaced (a patched timer, reference or harness: put back, and rejected).

What it cannot see: host code writing through a raw pointer (ctypes) into memory a launch was given;
the static scan rejects ctypes.

``LaunchLog`` spans a whole check: it routes the calling thread's launches to the current watch and
counts launches from any other thread, at any time: work left on a side thread or stream.
"""

from __future__ import annotations

import _thread
import builtins
import functools
import gc
import importlib.util
import os
import statistics
import sys
import sysconfig
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.autograd.function
import torch.nn.functional
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from kernels.harness.poison import fill_fresh

# aten ops host code may run: allocation, views, copies and casts (staging memory for a launch), and
# questions about dtypes and shapes.
FRESH = frozenset({"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided"})
ALLOCATION = FRESH | {"zeros", "zeros_like", "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like",
                      "new_full", "scalar_tensor", "arange", "fill_", "zero_", "resize_"}
VIEWS = frozenset({"view", "_unsafe_view", "_reshape_alias", "reshape", "as_strided", "transpose", "t", "permute",
                   "expand", "slice", "select", "unsqueeze", "squeeze", "unbind", "split", "split_with_sizes",
                   "narrow", "alias", "detach", "diagonal", "unfold", "view_as_real", "view_as_complex", "movedim",
                   "flatten", "unflatten", "transpose_", "t_", "unsqueeze_", "squeeze_", "as_strided_", "detach_"})
COPIES = frozenset({"copy_", "clone", "_to_copy", "contiguous", "cat", "stack", "constant_pad_nd", "_copy_from",
                    "_copy_from_and_resize", "repeat", "repeat_interleave", "flip", "roll", "index_select"})
METADATA = frozenset({"promote_types", "result_type", "can_cast", "is_floating_point", "is_complex", "is_same_size",
                      "is_contiguous", "is_nonoverlapping_and_dense", "size", "stride", "numel", "dim",
                      "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "_has_compatible_shallow_copy_type"})
STAGING = ALLOCATION | VIEWS | COPIES | METADATA
# What Triton's interpreter runs to hand a launch its arguments and copy them back (GridExecutor).
INTERPRETER = frozenset({"new_empty", "empty", "set_", "copy_"})
# Ops that move values between the host and tensors: a result computed on the host comes in this way.
HOST_VALUES = {"lift_fresh": "made a tensor from host data (torch.tensor, torch.from_numpy)",
               "lift_fresh_copy": "made a tensor from host data (torch.tensor, torch.from_numpy)",
               "_local_scalar_dense": "read a tensor value on the host (.item())"}

SETTLE_S = 0.05  # the most time other threads get to show work handed to them before the harness looks
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_FUNCTION_PY = torch.autograd.function.__file__
_INSTALLED = tuple({os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "purelib", "platlib")})
_TRITON = importlib.util.find_spec("triton")  # located without importing it: the interpreter is chosen first
_LIBRARY_DIRS = tuple(os.path.dirname(path) + os.sep for path in (
    torch.__file__, __file__, threading.__file__, _TRITON.origin if _TRITON and _TRITON.origin else torch.__file__))
_LOG: LaunchLog | None = None
_getframe = sys._getframe  # the harness's own, whatever a kernel does to sys._getframe


def _tensors(obj, depth: int = 0) -> Iterator[Tensor]:
    """Tensors among launch arguments: plain, in tuples and lists, or behind Triton's wrappers (.base)."""
    if depth > 4:
        return
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item, depth + 1)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item, depth + 1)
    elif isinstance(getattr(obj, "base", None), Tensor):
        yield obj.base


def _storage_key(t: Tensor) -> tuple:
    return str(t.device), t.untyped_storage().data_ptr()


def _hooked(original: Callable) -> Callable:
    """``run(self, *args, grid, warmup, **kwargs)`` of a Triton kernel, reporting every launch."""

    @functools.wraps(original)
    def run(self, *args, grid, warmup, **kwargs):
        if _LOG is None or warmup:
            return original(self, *args, grid=grid, warmup=warmup, **kwargs)
        with _LOG.launch((args, kwargs)):
            return original(self, *args, grid=grid, warmup=warmup, **kwargs)

    run._harness_hook = True
    return run


def _install_hooks() -> None:
    """Wrap Triton's launch paths once (the interpreter's and the compiler's ``run``); the wrappers pass
    straight through while no check runs."""
    from triton.runtime import interpreter, jit

    for cls in (interpreter.InterpretedFunction, jit.JITFunction):
        if not getattr(cls.run, "_harness_hook", False):
            cls.run = _hooked(cls.run)


def counted(kernel: Callable) -> Callable:
    """A compiled CUDA kernel whose launches the current check counts like Triton's."""

    @functools.wraps(kernel)
    def launch(*args, **kwargs):
        if _LOG is None:
            return kernel(*args, **kwargs)
        with _LOG.launch((args, kwargs)):
            return kernel(*args, **kwargs)

    return launch


class LaunchLog:
    """The launch hooks of one check. Launches on the checking thread go to the current CallWatch;
    launches on any other thread are counted in ``foreign`` (reset per case by the harness)."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.foreign = 0
        self.current: CallWatch | None = None

    def __enter__(self) -> LaunchLog:
        global _LOG
        _install_hooks()
        self._previous, _LOG = _LOG, self
        return self

    def __exit__(self, *exc) -> None:
        global _LOG
        _LOG = self._previous

    @contextmanager
    def launch(self, args) -> Iterator[None]:
        if threading.get_ident() != self.thread:
            self.foreign += 1
            yield
        elif self.current is None:
            yield
        else:
            with self.current.launch(list(_tensors(args))):
                yield

    def settle(self) -> None:
        """Give other Python threads, if there are any, a moment to show work handed to them (a launch)."""
        deadline = time.monotonic() + SETTLE_S
        while len(sys._current_frames()) > 1 and not self.foreign and time.monotonic() < deadline:
            time.sleep(0.005)

    def foreign_fault(self) -> str | None:
        if self.foreign:
            return (f"{self.foreign} Triton launch(es) came from another thread: work left running on a side "
                    "thread or stream escapes the checks and the timing")
        return None


def _watched_namespaces() -> list[tuple[str, object]]:
    """Where a patch would change what the harness measures or compares: the clocks, torch, the
    builtins, and every module of the project (the harness, the references, the library kernels)."""
    spaces: list[tuple[str, object]] = [
        ("time", time), ("gc", gc), ("threading", threading), ("statistics", statistics), ("builtins", builtins),
        ("torch", torch), ("torch.cuda", torch.cuda), ("torch.nn.functional", torch.nn.functional),
        ("torch.autograd", torch.autograd), ("torch.Tensor", torch.Tensor), ("torch.cuda.Event", torch.cuda.Event),
        ("torch.autograd.Function", torch.autograd.Function),
    ]
    spaces += [(name, module) for name, module in list(sys.modules.items())
               if module is not None and (name == "kernels" or name.startswith("kernels."))]
    return spaces


class _Snapshot:
    """Attribute bindings (and the code of functions) of the watched namespaces at one moment."""

    def __init__(self, extra_functions: tuple = ()) -> None:
        self.spaces = [(label, space, dict(vars(space))) for label, space in _watched_namespaces()]
        functions = [v for label, _, names in self.spaces if label.startswith("kernels")
                     for v in names.values() if isinstance(v, types.FunctionType)]
        functions += [f for f in extra_functions if isinstance(f, types.FunctionType)]
        self.codes = [(f, f.__code__, f.__defaults__) for f in functions]

    def restore(self) -> list[str]:
        """Put back every binding and code object that changed, and take away attributes added to a class
        (modules gain attributes as submodules load); returns what changed."""
        changed = []
        for label, space, before in self.spaces:
            now = vars(space)
            for name, value in before.items():
                if now.get(name, _MISSING) is not value:
                    changed.append(f"{label}.{name}")
                    setattr(space, name, value)
            if isinstance(space, type):
                for name in [name for name in now if name not in before]:
                    changed.append(f"{label}.{name}")
                    delattr(space, name)
        for f, code, defaults in self.codes:
            if f.__code__ is not code or f.__defaults__ is not defaults:
                changed.append(f"the code of {f.__module__}.{f.__qualname__}")
                f.__code__, f.__defaults__ = code, defaults
        return changed


_MISSING = object()


def _codes(reference: Callable | None) -> dict:
    codes = {}
    target = reference
    while isinstance(target, functools.partial):
        target = target.func
    while target is not None:
        code = getattr(target, "__code__", None)
        if code is not None:
            codes[code] = getattr(target, "__name__", "the reference")
        target = getattr(target, "__wrapped__", None)
    return codes


def _site(frame: types.FrameType | None) -> str:
    """Where the innermost frame outside torch, Triton, the standard library and the harness is."""
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame = frame.f_back
    if frame is None:
        return ""
    return f" ({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name})"


def _issued_by_autograd_engine(frame: types.FrameType | None) -> bool:
    """Whether an op dispatched in a backward comes from the autograd engine itself (gradient
    accumulation, the backward of a view or of a built-in op), not from Python code of the kernel's (a
    custom Function's backward, a hook): then only torch's frames lie between it and the engine's entry."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename == _FUNCTION_PY or not code.co_filename.startswith(_TORCH_DIR):
            return False
        if code.co_name == "_engine_run_backward":
            return True
        frame = frame.f_back
    return False


class CallWatch(TorchDispatchMode):
    """One kernel call (or its backward) under watch. ``fault()`` names the first thing it did that a
    kernel must not do, or the launch it failed to make; ``unwritten()`` the output no launch wrote."""

    def __init__(self, log: LaunchLog, fill: float, inputs: list[Tensor], reference: Callable | None = None,
                 backward: bool = False) -> None:
        super().__init__()
        self.log, self.fill, self.backward = log, fill, backward
        self.thread = threading.get_ident()
        self.reference_codes = _codes(reference)
        self.reference = reference
        floats = [t.dtype for t in inputs if t.is_floating_point()]
        self.coarsest = max((torch.finfo(d).eps for d in floats), default=None)
        self.stream = torch.cuda.current_stream() if any(t.is_cuda for t in inputs) else None
        self.launches = 0
        self.launching = 0
        self.written: dict[tuple, Tensor] = {}
        self.findings: list[str] = []

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """No Dynamo guard around the handler: it would import torch._dynamo on its first op (seconds),
        which rebinds torch.manual_seed and others in the middle of a watched call."""
        return False

    # -- the call window: patches, the snapshot, the dispatch mode ------------------------------------
    def __enter__(self) -> CallWatch:
        starts = ((_thread, "start_new_thread"), (threading, "_start_new_thread"),
                  (threading, "_start_joinable_thread"))
        self._patches = [(module, name, self._guard(getattr(module, name), "started a thread"))
                         for module, name in starts if hasattr(module, name)]
        self._patches += [
            (os, "fork", self._guard(os.fork, "forked a process", refuse=True)),
            (gc, "get_objects", self._guard(gc.get_objects, "read gc.get_objects()", empty=True)),
            (gc, "get_referrers", self._guard(gc.get_referrers, "read gc.get_referrers()", empty=True)),
            (gc, "get_referents", self._guard(gc.get_referents, "read gc.get_referents()", empty=True)),
            (sys, "_getframe", self._frames()),
        ] + [(torch.Tensor, name, self._host_read(name)) for name in ("numpy", "tolist", "__array__")]
        self._originals = [(owner, name, vars(owner).get(name, _MISSING)) for owner, name, _ in self._patches]
        for owner, name, patched in self._patches:
            setattr(owner, name, patched)
        self._snapshot = _Snapshot((self.reference,))
        self.log.current = self
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.log.current = None
        changed = self._snapshot.restore()
        for owner, name, original in self._originals:
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            self.flag(f"replaced {changed[0]}{more} during the call (put back): patching torch, the clocks or the "
                      "harness is not allowed")

    def _frames(self) -> Callable:
        """sys._getframe, flagged when the kernel's own code (or inspect and traceback, for it) walks the
        stack; installed packages and the rest of the standard library use it for their own ends."""

        def getframe(depth: int = 0, /):
            caller = _getframe(1).f_code.co_filename
            if threading.get_ident() == self.thread and (
                    not caller.startswith(_INSTALLED) or os.path.basename(caller) in ("inspect.py", "traceback.py")):
                self.flag(f"inspected the call stack (sys._getframe){_site(_getframe(1))}: the harness's objects "
                          "are off limits to a kernel")
            return _getframe(depth + 1)

        return getframe

    def _host_read(self, name: str) -> Callable:
        """Tensor.<name>, flagged outside launches on the calling thread: it hands tensor memory to host
        code (numpy), which can compute a result, or write one straight into an output."""
        original = getattr(torch.Tensor, name)

        @functools.wraps(original)
        def read(tensor, *args, **kwargs):
            if threading.get_ident() == self.thread and not self.launching:
                self.flag(f"read tensor values on the host (.{name}()){_site(_getframe(1))}: results computed on "
                          "the host are not the kernel's")
            return original(tensor, *args, **kwargs)

        return read

    def _guard(self, original: Callable, what: str, empty: bool = False, refuse: bool = False) -> Callable:
        """``original``, flagged when the calling thread uses it."""

        @functools.wraps(original)
        def guarded(*args, **kwargs):
            if threading.get_ident() != self.thread:
                return original(*args, **kwargs)
            self.flag(f"{what}{_site(_getframe(1))}: the harness's objects, threads and processes are "
                      "off limits to a kernel")
            if empty:
                return []
            if refuse:
                raise OSError(f"{what.split()[0]} is not allowed during a kernel check")
            return original(*args, **kwargs)

        return guarded

    def flag(self, finding: str) -> None:
        self.findings.append(finding)

    @contextmanager
    def launch(self, tensors: list[Tensor]) -> Iterator[None]:
        self.launches += 1
        for t in tensors:
            if t.numel():
                self.written[_storage_key(t)] = t
        if self.stream is not None and torch.cuda.current_stream() != self.stream:
            self.flag("launched a kernel on another CUDA stream than the caller's")
        self.launching += 1
        try:
            yield
        finally:
            self.launching -= 1

    # -- aten ops -------------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        namespace, _, name = func._schema.name.partition("::")
        if self.launching:
            if namespace != "aten" or name not in INTERPRETER:
                self._flag_op(f"{namespace}.{name}", "inside a Triton launch")
            return out
        if namespace == "aten" and name in STAGING:
            if name in FRESH and isinstance(out, Tensor):
                fill_fresh(out, self.fill)
            if name in ("_to_copy", "copy_"):
                self._check_cast(name, args, kwargs)
            if name in COPIES:
                self._derive(args, kwargs, out)
            return out
        if self.backward and _issued_by_autograd_engine(_getframe(1)):
            return out
        if namespace == "aten" and name in HOST_VALUES:
            if name.startswith("lift_fresh") and isinstance(out, Tensor) and out.numel() <= 1:
                return out  # a Python scalar on its way into a tensor: x[i] = 0.0
            self.flag(f"{HOST_VALUES[name]}{_site(_getframe(1))}: results computed on the host are not the kernel's")
            return out
        self._flag_op(f"{namespace}.{name}", "outside a Triton kernel")
        return out

    def _flag_op(self, op: str, where: str) -> None:
        frame = _getframe(2)
        probe = frame
        while probe is not None:
            if probe.f_code in self.reference_codes:
                self.flag(f"the reference {self.reference_codes[probe.f_code]} ran during the "
                          f"{'backward' if self.backward else 'call'} (torch op {op} {where}){_site(frame)}")
                return
            probe = probe.f_back
        self.flag(f"computed with torch op {op} {where}{_site(frame)}")

    def _check_cast(self, name: str, args: tuple, kwargs: dict) -> None:
        if name == "_to_copy":
            source, target = args[0], kwargs.get("dtype") or args[0].dtype
        else:
            source, target = args[1], args[0].dtype
        if (self.coarsest is None or not isinstance(source, Tensor) or not source.is_floating_point()
                or not target.is_floating_point):
            return
        if torch.finfo(target).eps > self.coarsest:
            self.flag(f"cast {source.dtype} data to {target} outside a Triton kernel, below the inputs' precision "
                      f"(a precision downgrade){_site(_getframe(2))}")

    def _derive(self, args: tuple, kwargs: dict, out) -> None:
        """A copy, cast or concatenation of memory a launch was given counts as written by it."""
        sources = [t for t in _tensors(list(args) + list(kwargs.values())) if t.numel()]
        if any(_storage_key(t) in self.written for t in sources):
            for t in _tensors(out):
                if t.numel():
                    self.written[_storage_key(t)] = t

    # -- verdicts -------------------------------------------------------------------------------------
    def fault(self) -> str | None:
        """The first finding, else a missing launch."""
        if self.findings:
            return self.findings[0]
        if not self.launches:
            return f"no Triton kernel was launched during {'the backward' if self.backward else 'the call'}"
        return None

    def unwritten(self, outputs: tuple, names: tuple[str, ...]) -> str | None:
        for name, out in zip(names, outputs):
            if isinstance(out, Tensor) and out.numel() and _storage_key(out) not in self.written:
                return (f"output {name!r} is memory no Triton kernel launched during the call was given, nor a "
                        "copy of such memory: it was computed some other way")
        return None
