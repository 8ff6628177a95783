"""What a sandboxed job is and what it may use."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    wall_s: float = 300.0  # wall-clock timeout; on expiry the whole process group is killed
    cpu_s: float | None = None  # RLIMIT_CPU; None means 1.5 x wall_s
    memory_bytes: int | None = 6 << 30  # RLIMIT_AS
    max_processes: int | None = 256  # RLIMIT_NPROC (not enforced for root; reported)
    file_size_bytes: int = 64 << 20  # RLIMIT_FSIZE
    output_bytes: int = 256 << 10  # stdout and stderr are each kept up to this size
    threads: int = 1  # compute threads in the child
    network: bool = False  # False: a new, empty network namespace where the OS allows

    @property
    def cpu_limit_s(self) -> int:
        return int(self.cpu_s if self.cpu_s is not None else self.wall_s * 1.5) + 1


@dataclass(frozen=True)
class Job:
    """Call ``target`` ("package.module:function") with ``payload`` in an isolated child."""

    target: str
    payload: dict = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)


@dataclass
class ProcessResult:
    outcome: str  # returned | raised | memory | timeout | cpu-limit | killed | exited
    value: dict | None = None  # what the target returned (outcome "returned")
    error: str | None = None  # one line: exception, signal or exit code
    traceback: str = ""
    returncode: int | None = None
    signal: str | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_bytes: int = 0
    ready_s: float | None = None  # spawn request -> child isolated and about to import the target
    imported_s: float | None = None  # spawn request -> target imported, about to be called
    isolation: dict = field(default_factory=dict)
