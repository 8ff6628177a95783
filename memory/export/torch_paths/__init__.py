"""The PyTorch functions an export binds in place of the kernels package's Triton entry points.

``kernels.triton_chunk``, ``kernels.triton_chunk_delta`` and ``kernels.triton_recurrence`` launch Triton
kernels from their public functions. A design may import them directly (or through
``kernels.<op>.triton``); ``discover export`` inlines them, and where triton is absent it binds each
entry point to the function of the module here with the same name (``kernels.triton_chunk`` ->
``torch_paths.triton_chunk``): the same contract, computed by the PyTorch chunked forms the kernels
are checked against. Each module is inlined as a kernels module is, so it imports the blocks it uses
from ``kernels`` and nothing else of the project.
"""

# kernels module -> (its Triton entry point, the function of torch_paths.<module> that stands in for it)
STANDS_IN = {
    "kernels.triton_chunk": ("chunked_recurrence", "torch_chunked_recurrence"),
    "kernels.triton_chunk_delta": ("chunked_delta_recurrence", "torch_chunked_delta_recurrence"),
    "kernels.triton_recurrence": ("fused_recurrence", "torch_fused_recurrence"),
}


def module_for(kernels_module: str) -> str:
    """torch_paths' module for a kernels module with a Triton entry point."""
    return f"{__name__}.{kernels_module.removeprefix('kernels.')}"
