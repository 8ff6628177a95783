"""Confining the job's view of the file system, and who it runs as.

In a private mount namespace the job sees

- every home directory (``/root``, ``/home``, the user's own) replaced by an empty read-only
  tmpfs, with only the paths it needs to run (its ``sys.path`` and working directory) bound back
  in, so SSH keys, cloud credentials and shell histories are out of sight;
- every other mount read-only, except its own working directory (and ``/proc`` and ``/sys``,
  which are not file storage; device nodes such as ``/dev/null`` stay usable on a read-only
  mount), so it cannot write outside that directory.

A process started as root then drops to an unprivileged user id of its own (``JOB_UID_BASE`` +
its pid, so no two live jobs share one): the kernel enforces RLIMIT_NPROC only for non-root users
and counts it per user, so this is what stops a fork bomb without starving a neighbouring job,
file permissions become a second wall, and jobs cannot signal or trace each other. Each step
reports what it could and could not do; nothing here is silently skipped.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from pathlib import Path

_CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
# statvfs flags -> mount flags that a read-only remount must repeat (a mount inherited from a more
# privileged namespace keeps them locked, and dropping one is refused).
_KEEP_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
               (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
_LEAVE_WRITABLE = ("/proc", "/sys")
JOB_UID_BASE = 100_000  # above the ids distributions hand out to users and services

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)


class MountError(OSError):
    pass


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise MountError(errno, f"mount {target}: {os.strerror(errno)}")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def home_directories(uid: int) -> list[str]:
    """Where users keep secrets: /root, /home and the home of ``uid``, each once, existing only."""
    homes = ["/root", "/home"]
    try:
        import pwd

        homes.append(pwd.getpwuid(uid).pw_dir)
    except (KeyError, ImportError):
        pass
    found: list[str] = []
    for home in homes:
        real = os.path.realpath(home)
        if os.path.isdir(real) and real != "/" and not any(_under(real, h) for h in found):
            found = [h for h in found if not _under(h, real)] + [real]
    return found


def _hide(home: str, keep: list[str]) -> None:
    """An empty read-only tmpfs over ``home``, with each path of ``keep`` under it bound back in."""
    # O_PATH handles taken before the tmpfs covers them; binding from /proc/self/fd reaches the originals.
    handles = [(path, os.open(path, os.O_PATH)) for path in keep if _under(path, home) and os.path.exists(path)]
    _mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
    for path, fd in handles:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Path(path).touch()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    _mount(None, home, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            # field 5 is the mount point, with spaces and the like written as octal escapes
            points.append(line.split()[4].encode().decode("unicode_escape"))
    return list(dict.fromkeys(points))


def _read_only(point: str) -> None:
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    current = os.statvfs(point).f_flag
    for st_flag, ms_flag in _KEEP_FLAGS:
        if current & st_flag:
            flags |= ms_flag
    _mount(None, point, None, flags)


def confine_filesystem(workdir: str, keep: Iterable[str], uid: int) -> str:
    """Hide home directories and make everything but ``workdir`` read-only; returns what was done.

    Must run before capabilities are dropped (mounting needs CAP_SYS_ADMIN in this namespace: as
    root, or inside the user namespace the network confinement may have entered).
    """
    if _libc.unshare(_CLONE_NEWNS) != 0:
        return f"not in force: unshare(CLONE_NEWNS) failed ({os.strerror(ctypes.get_errno())})"
    workdir = os.path.realpath(workdir)
    keep = sorted({os.path.realpath(p) for p in (*keep, workdir) if p})
    homes = home_directories(uid)
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates to the host
        _mount(workdir, workdir, None, MS_BIND | MS_REC)  # its own mount, left writable below
        for home in homes:
            _hide(home, keep)
    except OSError as exc:
        return f"not in force: {exc}"
    failed = []
    for point in _mount_points():
        if _under(point, workdir) or any(_under(point, p) for p in _LEAVE_WRITABLE):
            continue
        try:
            _read_only(point)
        except OSError as exc:
            failed.append(f"{point} ({exc.strerror})")
    hidden = ", ".join(homes) or "none found"
    if failed:
        return f"homes hidden ({hidden}); read-only except the working directory, but not: {', '.join(failed)}"
    return f"homes hidden ({hidden}); read-only except the working directory"


def drop_to_unprivileged(workdir: str) -> str:
    """As root, become a user id of this job's own (owning ``workdir``), emptying every capability set.

    Call after the bounding set was cleared and the mounts were made; not root: nothing changes.
    """
    if os.getuid() != 0:
        return f"uid {os.getuid()} (not root: nothing to drop)"
    uid = JOB_UID_BASE + os.getpid()
    os.chown(workdir, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    return f"dropped from root to uid {uid}, this job's own"
