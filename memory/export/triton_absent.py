"""A stand-in for triton where it is not installed, so an exported design with Triton kernels still loads.

A design's Triton kernels are defined when its module loads: ``@triton.jit`` decorates them and
``tl.constexpr`` annotates their arguments. ``discover export`` inlines this module and imports
triton inside ``try``; where that fails, ``triton`` and ``tl`` name a ``MissingTriton``, which hands
itself back for every attribute, call and decoration, so the definitions load. Launching a kernel
(``kernel[grid](...)``) raises. The export binds each kernel the design declared to the PyTorch
reference it was checked against, so the design's own choice of its Triton path still runs.
"""


class MissingTriton:
    """``triton`` or ``triton.language`` where triton is not installed: every attribute, call and
    decoration gives the stand-in back, so Triton kernels defined at import load; launching one raises."""

    def __getattr__(self, name: str) -> "MissingTriton":
        if name.startswith("__"):  # protocols Python probes for (copy, pickle) are not there
            raise AttributeError(name)
        return self

    def __call__(self, *args, **kwargs) -> "MissingTriton":
        return self

    def __getitem__(self, grid) -> "MissingTriton":
        raise ModuleNotFoundError("triton is not installed, so this Triton kernel cannot run; install triton, "
                                  "or run the design's PyTorch path")
