"""Landlock: the kernel's own list of what the job's process may read, write and connect to.

Mounts (``sandbox.confine``) make the file system read-only; Landlock (Linux >= 5.13) decides what
may be opened at all, and it cannot be undone by the process nor by anything it forks. Once
``restrict`` has run, the process may

- read beneath the paths of ``allowed_paths``: the Python runtime, the system's libraries, its
  ``sys.path`` (but of a project checkout only the packages it has imported, so a workspace, a
  ``runs/`` folder or a notes file next to them stays unreadable), its own ``/proc/<pid>`` and a
  few devices;
- read and write beneath its working directory only;
- execute nothing: no rule grants the execute right anywhere (shared libraries are mapped, which
  Landlock does not govern, so ``dlopen`` still works);
- with ABI >= 4 neither bind nor connect a TCP socket; with ABI >= 6 neither reach an abstract
  unix socket nor signal a process outside its own domain.

Every right of the ABI the kernel speaks is handled, so whatever no rule grants is denied (EACCES).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

# The file-system rights each ABI knows (ABI 2 adds REFER, 3 TRUNCATE, 5 IOCTL_DEV; 4, 6 and 7 add none).
_FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_ALL_FS_RIGHTS = (1 << 16) - 1
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the only ones a rule on a file may hold
READ = READ_FILE | READ_DIR
READ_WRITE = (READ | WRITE_FILE | TRUNCATE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM
              | MAKE_FIFO | MAKE_SOCK | REFER)

# What the interpreter and the libraries it loads (torch, numpy, triton) open outside their own directories,
# found by tracing evaluations: shared libraries (/lib and /lib64 lead into /usr), the loader's cache, time zones.
SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime")
# Read from /proc besides the process's own entry (no other process's): the CPU's features (torch's cpuinfo),
# and the driver's parameters CUDA reads. /sys (CPU topology, caches) holds no other process's data.
PROC_PATHS = ("/proc/cpuinfo", "/proc/driver/nvidia")
DEVICES_READ = ("/dev/zero", "/dev/urandom", "/dev/random")
DEVICES_READ_WRITE = ("/dev/null",)
GPU_DEVICE_PREFIXES = ("nvidia",)  # /dev/nvidia0, nvidiactl, nvidia-uvm: CUDA reads, writes and ioctls them
CHECKOUT_MARKERS = ("pyproject.toml", ".git")


class LandlockUnavailable(OSError):
    """The kernel cannot enforce Landlock (too old, or disabled at boot)."""


@dataclass(frozen=True)
class Allowed:
    """The paths one job may open: read beneath ``read``, read and write beneath ``write``, and
    ``devices`` (read, write and device ioctls)."""

    read: tuple[str, ...]
    write: tuple[str, ...]
    devices: tuple[str, ...] = ()
    listable: tuple[str, ...] = ()  # folders whose entries may be listed, not read (``without``)
    programs: tuple[str, ...] = ()  # files, or folders of them, that may be executed (``with_programs``)


def abi_version() -> int:
    """The Landlock ABI this kernel speaks; raises ``LandlockUnavailable`` when it speaks none."""
    abi = _syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    if abi < 0:
        errno = ctypes.get_errno()
        raise LandlockUnavailable(errno, f"landlock_create_ruleset: {os.strerror(errno)}")
    return abi


def is_checkout(path: str) -> bool:
    """Whether ``path`` is the root of a project (a pyproject.toml or a .git in it)."""
    return any(os.path.lexists(os.path.join(path, marker)) for marker in CHECKOUT_MARKERS)


def _beneath(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _locations(module: ModuleType) -> list[str]:
    """Where a top-level module lives: a package's directories, or a single module's file."""
    path = getattr(module, "__path__", None)
    if path is not None:
        return [p for p in path if isinstance(p, str)]
    file = getattr(module, "__file__", None)
    return [file] if isinstance(file, str) else []


def too_broad(path: str) -> bool:
    """Whether a ``sys.path`` entry may not be read whole: a checkout, a folder holding checkouts (``/work``),
    a home directory or a folder above one (``/``)."""
    if is_checkout(path) or any(_beneath(home, [path]) for home in _homes()):
        return True
    try:
        with os.scandir(path) as entries:
            return any(entry.is_dir() and is_checkout(entry.path) for entry in entries)
    except OSError:
        return False


def _homes() -> list[str]:
    homes = ["/root", "/home"]
    try:
        import pwd

        homes.append(pwd.getpwuid(os.getuid()).pw_dir)
    except (KeyError, ImportError):  # a job's own user id has no entry
        pass
    return [os.path.realpath(home) for home in homes]


def imported_packages(modules: Mapping[str, ModuleType], covered: Iterable[str] = ()) -> list[str]:
    """The directory (or file) of each top-level module in ``modules`` not beneath ``covered``, resolved;
    never a checkout root itself."""
    found: list[str] = []
    for name in sorted({name.partition(".")[0] for name in modules} - {"__main__"}):
        module = modules.get(name)
        if module is not None:
            found += _locations(module)
    return _outside(found, list(covered))


def _target_package(target: str, covered: tuple[str, ...]) -> list[str]:
    """Where the target module's top-level package is, found without importing it."""
    try:
        spec = importlib.util.find_spec(target.partition(":")[0].partition(".")[0])
    except (ImportError, ValueError):  # the job will fail to import it and say why
        return []
    if spec is None:
        return []
    return _outside(list(spec.submodule_search_locations or ()) or ([spec.origin] if spec.has_location else []),
                    covered)


def _outside(locations: list[str], covered: Iterable[str]) -> list[str]:
    """``locations`` not beneath ``covered``, resolved, existing and not a checkout root."""
    covered = tuple(covered)
    outside = [os.path.realpath(p) for p in dict.fromkeys(locations) if not _beneath(os.path.abspath(p), covered)]
    return [p for p in dict.fromkeys(outside) if not _beneath(p, covered) and os.path.exists(p) and not is_checkout(p)]


def allowed_paths(workdir: str, sys_path: Iterable[str], modules: Mapping[str, ModuleType] | None = None,
                  target: str | None = None, pid: int | None = None) -> Allowed:
    """What a job may open: the runtime, the system, its /proc entry, ``workdir``, and ``sys_path``,
    where an entry ``too_broad`` to read whole (a checkout) is reachable only through the packages
    imported from it: those in ``modules`` (this process's, by default) and the ``target`` module's.

    Paths are resolved and deduplicated; those that do not exist are left out.
    """
    if modules is None:  # computed once per fork server: each job would otherwise touch every module object
        read, devices = _shared(tuple(sys_path))
    else:
        read, devices = _everyones(tuple(sys_path), modules)
    own = [f"/proc/{os.getpid() if pid is None else pid}", *(_target_package(target, read) if target else ())]
    read += tuple(path for path in _existing(own) if not _beneath(path, read))
    return Allowed(read=tuple(sorted(read)), write=_existing([workdir]), devices=devices)


def with_programs(allowed: Allowed, programs: Iterable[str]) -> Allowed:
    """``allowed`` with ``programs`` (files, or folders of them) executable, and no other; the dynamic
    loader too, which the kernel opens for execution whenever it starts a dynamically linked program."""
    found = _existing([*programs, *glob.glob("/lib*/ld-linux*.so*"), *glob.glob("/lib*/ld64.so*")])
    return Allowed(read=allowed.read, write=allowed.write, devices=allowed.devices, listable=allowed.listable,
                   programs=found)


def without(allowed: Allowed, hidden: Iterable[str]) -> Allowed:
    """``allowed`` with each ``hidden`` path carved out of what it may read: a folder that holds one is
    replaced by its entries, down the branch that leads to it, so everything else beneath stays
    readable and it does not; the folders on that branch stay listable (imports look names up there).

    Landlock only grants; this is how a file inside an allowed tree (held-out data shipped with the
    runtime) is kept out of reach."""
    hidden = [os.path.realpath(h) for h in hidden if os.path.exists(h)]
    read, listable = _carve(allowed.read, tuple(sorted(hidden)))
    return Allowed(read=read, write=allowed.write, devices=allowed.devices, listable=allowed.listable + listable,
                   programs=allowed.programs)


@functools.lru_cache(maxsize=16)
def _carve(read: tuple[str, ...], hidden: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    out: list[str] = []
    listable: list[str] = []
    pending = list(read)
    while pending:
        root = pending.pop()
        if not any(_beneath(h, [root]) for h in hidden):
            out.append(root)
        elif root not in hidden and os.path.isdir(root):
            try:
                pending += [os.path.join(root, name) for name in os.listdir(root)]
            except OSError:
                continue
            listable.append(root)
    return tuple(sorted(out)), tuple(sorted(listable))


def _everyones(sys_path: tuple[str, ...], modules: Mapping[str, ModuleType]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What every job of this process may read and use as devices: all but its /proc entry and target."""
    runtime = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
               os.path.dirname(os.path.realpath(sys.executable)), *SYSTEM_PATHS]
    runtime += [os.path.realpath(p) for p in runtime]
    entries = [os.path.abspath(p) for p in sys_path if p]
    libraries = [p for p in entries if _beneath(p, runtime) or not too_broad(os.path.realpath(p))]
    read = [*runtime, *libraries, *(os.path.realpath(p) for p in libraries)]
    read += imported_packages(modules, covered=read)
    read += [*PROC_PATHS, "/sys", *DEVICES_READ]
    return _existing(read), _existing([*DEVICES_READ_WRITE, *_gpu_devices()])


@functools.lru_cache(maxsize=4)
def _shared(sys_path: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``_everyones`` for the modules this process had imported when first asked: a fork server's, after its preload."""
    return _everyones(sys_path, sys.modules)


def _gpu_devices() -> list[str]:
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return [f"/dev/{name}" for name in sorted(names) if name.startswith(GPU_DEVICE_PREFIXES)]


def _existing(paths: Iterable[str]) -> tuple[str, ...]:
    """Existing paths, resolved, once each, dropping any beneath another one kept."""
    resolved = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)}, key=lambda p: (p.count("/"), p))
    kept: list[str] = []
    for path in resolved:
        if not _beneath(path, kept):
            kept.append(path)
    return tuple(sorted(kept))


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args) -> int:
    return _libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def restrict(allowed: Allowed, tcp: bool = False) -> str:
    """Enforce ``allowed`` on this process and everything it starts; returns what is in force.

    ``tcp``: the job may use the network (``Limits.network``), so TCP is not restricted.
    Needs no_new_privs (or CAP_SYS_ADMIN). Applies to the calling thread and its future children
    only, so it must run while the process has a single thread. Raises ``LandlockUnavailable``
    when the kernel has no Landlock, ``OSError`` when a step fails.
    """
    abi = abi_version()
    handled = _FS_RIGHTS.get(abi, _ALL_FS_RIGHTS)
    attr = _RulesetAttr(handled_access_fs=handled)
    size = ctypes.sizeof(ctypes.c_uint64)
    if abi >= 4:
        attr.handled_access_net = 0 if tcp else NET_BIND_TCP | NET_CONNECT_TCP
        size += ctypes.sizeof(ctypes.c_uint64)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size += ctypes.sizeof(ctypes.c_uint64)
    ruleset = _check(_syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
                     "landlock_create_ruleset")
    unreachable: list[str] = []
    try:
        for paths, rights in ((allowed.read, READ), (allowed.listable, READ_DIR), (allowed.programs, READ | EXECUTE),
                              (allowed.write, READ_WRITE),
                              (allowed.devices, READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV)):
            for path in paths:
                try:
                    _add_rule(ruleset, path, rights & handled)
                except PermissionError:
                    # This user cannot even reach the path (a parent folder it may not search, such as
                    # a 0700 one of another user that the launching cwd lies in): a rule would grant
                    # nothing, and the file permissions deny it already. Its own folder must work.
                    if paths is allowed.write:
                        raise
                    unreachable.append(path)
        _check(_syscall(_SYS_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    denied = [f"execution of all but {len(allowed.programs)} programs" if allowed.programs else "execution"]
    if abi >= 4 and not tcp:
        denied.append("TCP bind and connect")
    if abi >= 6:
        denied.append("abstract unix sockets and signals outside the job")
    skipped = f" ({len(unreachable)} more out of this user's reach: {', '.join(unreachable)})" if unreachable else ""
    return (f"abi {abi}: read-only beneath {len(allowed.read) - len(unreachable)} paths{skipped}, read-write beneath "
            f"the working directory; denied: {', '.join(denied)}")


def _add_rule(ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _check(_syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0),
               f"landlock_add_rule {path}")
    finally:
        os.close(fd)


# The fork server imports this module after its preload (``runner``): computed here, the slow part of
# each job's allow-list is inherited by every job it forks.
_shared(tuple(sys.path))
