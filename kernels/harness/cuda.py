"""CUDA C++ kernels: compile with nvcc on any machine, run only where a GPU is present.

``compile_report`` compiles a design's source to a cubin for each configured architecture with
``-Xptxas -v`` and reads ptxas's resource lines, so a compile error, register use, spills, stack
and shared memory are reported on a machine without a GPU (nvcc needs no device). Without nvcc the
outcome is the named status ``nvcc-not-found``. ``load_kernel`` compiles at run time with NVRTC
through torch on a GPU, for the correctness checks of ``kernels.harness.check``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import torch

DEFAULT_ARCHS = ("sm_80", "sm_90")  # A100, H100/H200
COMPILE_TIMEOUT_S = 120.0

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(\w+)'")
_PROPERTIES = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


@dataclass(frozen=True)
class KernelResources:
    registers: int = 0
    spill_stores: int = 0  # bytes
    spill_loads: int = 0  # bytes
    stack: int = 0  # bytes per thread
    smem: int = 0  # static shared memory, bytes per block

    @property
    def spills(self) -> bool:
        return bool(self.spill_stores or self.spill_loads)


@dataclass
class CompileReport:
    """status: ok, compile-error or nvcc-not-found; resources[arch][function]."""

    status: str
    resources: dict[str, dict[str, KernelResources]] = field(default_factory=dict)
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        lines = []
        for arch, functions in self.resources.items():
            for name, r in functions.items():
                spill = f", spills {r.spill_stores}/{r.spill_loads} B" if r.spills else ""
                lines.append(f"{arch} {name}: {r.registers} registers, {r.smem} B smem, {r.stack} B stack{spill}")
        return "; ".join(lines)


def parse_ptxas(text: str) -> dict[str, dict[str, KernelResources]]:
    """ptxas -v output -> {arch: {function: resources}}; lines of other tools are ignored."""
    out: dict[str, dict[str, KernelResources]] = {}
    current: tuple[str, str] | None = None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        entry = _ENTRY.search(line)
        if entry:
            if current:
                out.setdefault(current[1], {})[current[0]] = KernelResources(**fields)
            current, fields = (entry.group(1), entry.group(2)), {}
            continue
        if current is None:
            continue
        props = _PROPERTIES.search(line)
        if props:
            fields.update(stack=int(props.group(1)), spill_stores=int(props.group(2)),
                          spill_loads=int(props.group(3)))
        used = _USED.search(line)
        if used:
            fields["registers"] = int(used.group(1))
            smem = _SMEM.search(line)
            if smem:
                fields["smem"] = int(smem.group(1))
    if current:
        out.setdefault(current[1], {})[current[0]] = KernelResources(**fields)
    return out


def find_nvcc() -> str | None:
    """nvcc on PATH, or under CUDA_HOME / the usual install prefix."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    return None


def compile_report(source: str, archs: tuple[str, ...] = DEFAULT_ARCHS, nvcc: str | None = None) -> CompileReport:
    """Compile ``source`` for every arch in ``archs`` and report resources, or the first error."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        return CompileReport("nvcc-not-found", log="nvcc not found on PATH, CUDA_HOME or /usr/local/cuda")
    report = CompileReport("ok")
    with tempfile.TemporaryDirectory(prefix="kernel-cuda-") as tmp:
        path = os.path.join(tmp, "kernel.cu")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        for arch in archs:
            cmd = [nvcc, "-cubin", f"-arch={arch}", "-Xptxas", "-v", "-o", os.path.join(tmp, f"{arch}.cubin"), path]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False)
            except FileNotFoundError:
                return CompileReport("nvcc-not-found", log=f"nvcc not found at {nvcc}")
            except subprocess.TimeoutExpired:
                return CompileReport("compile-error", report.resources, f"nvcc ran over {COMPILE_TIMEOUT_S:.0f}s")
            text = done.stdout + done.stderr
            if done.returncode != 0:
                errors = [line for line in text.splitlines() if "error" in line.lower()]
                return CompileReport("compile-error", report.resources,
                                     f"{arch}: " + ("\n".join(errors[:5]) or text[-2000:]).replace(path, "kernel.cu"))
            report.resources.update(parse_ptxas(text))
            report.log += text
    return report


def load_kernel(source: str, entry: str):
    """Compile ``entry`` of ``source`` with NVRTC on the current GPU; returns a launchable callable.

    Raises RuntimeError without a GPU: CUDA kernels are only run where one is present.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: CUDA kernels are compiled and reported, not run")
    return torch.cuda._compile_kernel(source, entry)
