"""seccomp: the system calls the job's process may not make at all.

A filter in the kernel, installed last and kept across fork (and exec, were exec allowed), that
lets every system call through except those a computation has no use for and an escape needs:
running programs, opening sockets, tracing or reading other processes, mounting, entering or
making namespaces, loading kernel code. Those fail with EPERM, the caller sees PermissionError.
``clone3`` fails with ENOSYS instead, so that glibc falls back to ``clone``, whose flags a filter
can read: a ``clone`` asking for a new namespace fails with EPERM, threads and fork still work.

Built with ``pyseccomp`` (ctypes over libseccomp) when this module is imported, which only the
job's side does: the fork server once, so each job just loads the filter (finding libseccomp runs
``ldconfig``, which a job may not run, and would cost a fork of the whole server per job), or else
the child before Landlock forbids that. Without pyseccomp or libseccomp, ``install`` raises
``SeccompUnavailable``, which the caller reports as not in force.
"""

from __future__ import annotations

import errno

try:
    import pyseccomp
except (ImportError, RuntimeError, OSError) as exc:  # pyseccomp raises RuntimeError without libseccomp
    pyseccomp, _MISSING = None, f"pyseccomp could not be loaded ({type(exc).__name__}: {exc})"

DENIED = (
    "execve", "execveat",                                                    # running programs
    "socket", "socketpair",                                                  # any network or IPC socket (SOCKETS)
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",        # other processes' memory and fds
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree",
    "move_mount", "mount_setattr",                                           # the file system's shape
    "unshare", "setns",                                                      # namespaces
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",                                      # the kernel keyring
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff",
    "open_by_handle_at", "name_to_handle_at",                                # opening files past path checks
    "personality",
)
SOCKETS = ("socket", "socketpair")  # allowed to a job that may use the network
EXEC = ("execve", "execveat")  # allowed to a job given programs to run, which Landlock then names one by one
NOT_IMPLEMENTED = ("clone3",)  # its flags sit in memory a filter cannot read; glibc falls back to clone
# CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET
# (CLONE_NEWTIME shares its bit with clone's exit signal and can only be asked of unshare and clone3).
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


class SeccompUnavailable(RuntimeError):
    """pyseccomp or libseccomp is missing, or the kernel refused the filter."""


def build(network: bool = False, programs: bool = False):
    """The filter, not yet installed, and the words saying what it denies; raises ``SeccompUnavailable``.

    ``network``: the job may use the network (``Limits.network``), so sockets are not denied.
    ``programs``: the job may run the programs ``Limits.programs`` names, so exec is left to Landlock,
    which allows those and no other.
    """
    seccomp = pyseccomp
    if seccomp is None:
        raise SeccompUnavailable(_MISSING)
    denied = [name for name in DENIED if not (network and name in SOCKETS) and not (programs and name in EXEC)]
    unknown = [name for name in (*denied, *NOT_IMPLEMENTED) if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) < 0]
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        rules.set_attr(seccomp.Attr.CTL_TSYNC, 1)
        for name in denied:
            if name not in unknown:
                rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        for name in NOT_IMPLEMENTED:
            if name not in unknown:
                rules.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
        for flag in CLONE_NAMESPACE_FLAGS:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    except OSError as exc:
        raise SeccompUnavailable(f"libseccomp refused a rule ({exc})") from exc
    listed = ", ".join(name for name in ("execve", "socket", "ptrace", "process_vm_readv", "mount", "unshare", "bpf",
                                         "io_uring_setup") if name in denied)
    fact = (f"{len(denied) + len(NOT_IMPLEMENTED) - len(unknown)} system calls denied ({listed}, ...; "
            f"clone3: ENOSYS), clone with a namespace flag denied")
    if programs:
        fact += "; execve allowed, Landlock names the programs"
    if unknown:
        fact += f"; not on this architecture or unknown to libseccomp, so not denied: {', '.join(unknown)}"
    return rules, fact


def install(network: bool = False, programs: bool = False) -> str:
    """Install the filter on this process (all its threads) and everything it starts; returns what it denies.

    Sets no_new_privs, which an unprivileged process needs for a filter. Raises ``SeccompUnavailable``.
    """
    default = _built is not None and not network and not programs
    rules, fact = _built if default else build(network, programs)
    try:
        rules.load()
    except OSError as exc:
        raise SeccompUnavailable(f"the kernel refused the filter ({exc})") from exc
    return fact


try:  # built once in the fork server, which imports this module; each job only loads it
    _built = build()
except SeccompUnavailable:
    _built = None
