"""How a sandboxed program is kept away from the host: bubblewrap, ``unshare``, or limits only.

Three modes, strongest first. :func:`detect_isolation` probes them at run time and uses the
first that works; anything weaker than ``bwrap`` is announced once with a
:class:`SandboxWarning` that says what is missing and how to get it.

=========  ============================================  ===========  ============================
mode       file system                                   network      processes
=========  ============================================  ===========  ============================
bwrap      read-only allowlist (``/usr``, the loader's   none (own    own PID namespace, killed
           ``/etc`` files, the Python installation       network      with the program; process
           with its ``site-packages`` emptied: the       namespace)   limit counted per sandbox;
           program runs on the standard library, and                  system-call filter (below)
           must not read a package's data, such as
           the code problems' tests); writable: the
           working directory, a private ``/tmp`` and
           ``/dev/shm`` (tmpfs mounts of ``disk_mb``
           each)
unshare    the host's, with the sandbox user's rights    none         own PID namespace
none       the host's, with the sandbox user's rights    the host's   process-group kill only: a
                                                                      process that calls
                                                                      ``setsid()`` can outlive it
=========  ============================================  ===========  ============================

Memory, per mode (the numbers are :class:`~aipo_env.sandbox.limits.Limits` fields):

=========  ===================================================================================
mode       what bounds it
=========  ===================================================================================
bwrap      the execution's memory cgroup where there is one (:mod:`~aipo_env.sandbox.cgroup`):
           ``total_memory_mb`` for its processes, its tmpfs files, shared memory and kernel
           memory together; the system-call filter (:mod:`~aipo_env.sandbox.seccomp`, x86_64
           and aarch64) refuses SysV shared memory, semaphores and message queues, memfds and
           nested user namespaces (so no tmpfs of the program's own) with or without one.
           Without a cgroup: ``memory_mb`` of address space per process, ``max_processes``
           processes, and three tmpfs mounts (``/tmp``, ``/dev/shm``, the working directory) of
           ``disk_mb`` of data each; **not bounded without a cgroup**: the kernel memory of the
           files' inodes (300,000 empty files took about 300 MiB of slab in under a second).
unshare    the memory cgroup where there is one; without one, the per-process bound and the
           ``/tmp`` tmpfs only: SysV shared memory, memfds and user namespaces stay open (there
           is no filter), so what they pin is not bounded.
none       as ``unshare``; files go to the host's disk (``max_file_mb`` each).
=========  ===================================================================================

Not counted in any mode: socket buffers (the kernel bounds each socket's, and ``max_open_files``
bounds the sockets) and the page cache of host files the program reads (shared, reclaimable).

Every mode applies the :class:`~aipo_env.sandbox.limits.Limits`, a scrubbed environment, a
fresh working directory and the group kill. ``bwrap`` needs the Debian package ``bubblewrap``
and either root or unprivileged user namespaces; ``unshare`` comes with util-linux.

Running as root, the program is switched to an unprivileged uid (root ignores
``RLIMIT_NPROC``), leased for the execution so that no other live execution on the machine, of
any process, has it (:mod:`~aipo_env.sandbox.uids`): in ``bwrap`` mode always (bubblewrap runs
privileged and lets the bootstrap keep ``CAP_SETUID``/``CAP_SETGID`` for exactly that), in the
other modes when the interpreter stays importable for that uid (a Python installed under
``/root`` is not). As an ordinary
user, ``bwrap`` and ``unshare`` run in a user namespace, where the process count starts at
zero; ``none`` shares the count with the user's other processes, so it allows that many more.

Per-uid kernel state that outlives a process (the user keyring above all) is refused by the
``bwrap`` filter (:mod:`~aipo_env.sandbox.seccomp`; x86_64 and aarch64 only, elsewhere
bubblewrap runs without one); in ``unshare`` and ``none`` modes, which have no filter, an
execution can leave keys for a later one that leases the same uid.
"""

from __future__ import annotations

import glob
import os
import platform
import shlex
import shutil
import site
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

from aipo_env.sandbox.limits import Limits
from aipo_env.sandbox.seccomp import filter_fd, filter_program

Mode = Literal["bwrap", "unshare", "none"]
MODES: tuple[Mode, ...] = ("bwrap", "unshare", "none")
#: where the working directory appears inside a bubblewrap sandbox
SANDBOX_DIR = "/sandbox"
#: the first uid that sandboxed programs run as when the parent is root
DEFAULT_UID = 64000
_BOOTSTRAP = Path(__file__).with_name("bootstrap.py").read_text(encoding="utf-8")
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf")
_TOP_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_PROBE = "import collections, json, math, re\nprint('sandbox-ok')\n"


class SandboxUnavailable(RuntimeError):
    """The requested isolation mode does not work on this machine."""


class SandboxWarning(UserWarning):
    """Code runs with weaker isolation than bubblewrap gives."""


@dataclass(frozen=True)
class Isolation:
    """One way of starting the sandboxed interpreter.

    Attributes:
        mode: ``bwrap``, ``unshare`` or ``none`` (see the module docstring).
        python: the interpreter that runs the programs (standard library only: ``-I -S``).
        drop_privileges: switch to an unprivileged uid inside the sandbox (parent is root).
    """

    mode: Mode
    python: str = sys.executable
    drop_privileges: bool = False

    def command(
        self, workdir: Path, limits: Limits, uid: int | None = None, seccomp_fd: int | None = None
    ) -> list[str]:
        """The argv that runs ``workdir/main.py`` under ``limits``, as ``uid`` when dropping privileges.

        ``seccomp_fd`` (``bwrap`` mode) is a descriptor the child inherits that holds the
        system-call filter (see :mod:`aipo_env.sandbox.seccomp`).
        """
        extra = _processes_of(os.getuid()) if self.mode == "none" and os.getuid() != 0 else 0
        user = str(DEFAULT_UID if uid is None else uid) if self.drop_privileges else "-"
        settings = [f"{name}={value}" for name, value in limits.rlimits(extra_processes=extra).items()]
        program = [self.python, "-I", "-S", "-c", _BOOTSTRAP, "main.py", user, *settings]
        if self.mode == "bwrap":
            mounts = [
                *_bwrap_mounts(workdir, limits),
                *self._bwrap_python,
                *self._bwrap_hidden,
                "--remount-ro",
                "/",
            ]
            seccomp = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
            return [*self._bwrap_prefix, *mounts, *seccomp, "--", *program]
        if self.mode == "unshare" and self.drop_privileges:
            return [
                *self._unshare_prefix,
                "--",
                *_unshare_as_user(self.python, workdir, limits, user, program),
            ]
        if self.mode == "unshare":
            return [*self._unshare_prefix, "--", *program]
        return program

    def workdir_inside(self, workdir: Path) -> str:
        """The working directory's path as the program sees it."""
        return SANDBOX_DIR if self.mode == "bwrap" else str(workdir)

    def signal_number(self, returncode: int) -> int | None:
        """The signal that killed the program, if one did.

        Subprocess reports ``-N``; bubblewrap's init and our bootstrap's init exit with ``128 + N``.
        """
        if returncode < 0:
            return -returncode
        if self.mode in ("bwrap", "unshare") and 128 < returncode < 128 + 65:
            return returncode - 128
        return None

    @cached_property
    def _bwrap_prefix(self) -> list[str]:
        args = ["bwrap", "--die-with-parent", "--new-session"]
        if os.getuid() == 0:
            # privileged bubblewrap without a user namespace, so that the program's uid is a real
            # unprivileged one and RLIMIT_NPROC applies; the bootstrap drops the two capabilities
            args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
            args += ["--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-all"]
        args += ["--ro-bind", "/usr", "/usr"]
        for top in _TOP_DIRS:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        for name in _ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        return args

    @cached_property
    def _bwrap_python(self) -> list[str]:
        """Binds of the Python installation, made after the private ``/tmp`` so that an
        interpreter or a venv that lives under ``/tmp`` stays visible at its real path."""
        args: list[str] = []
        created: set[str] = {"/tmp"}
        for root in python_roots(self.python):
            for ancestor in reversed(Path(root).parents[:-1]):
                if str(ancestor) not in created:
                    created.add(str(ancestor))
                    # bubblewrap creates missing parents as 0700, which the sandbox user could not traverse
                    args += ["--perms", "0755", "--dir", str(ancestor)]
            args += ["--ro-bind", root, root]
        return args

    @cached_property
    def _bwrap_hidden(self) -> list[str]:
        """Empty read-only mounts over the installation's third-party packages: the sandboxed
        interpreter runs ``-I -S`` (standard library only), and ``site-packages`` holds what a
        program must not read, such as the package's own data (the built-in code problems with
        their tests) and every library's files."""
        size = ["--size", "4096"] if _bwrap_has("--size") else []
        args: list[str] = []
        for directory in site_directories(self.python):
            args += [*size, "--perms", "0555", "--tmpfs", directory, "--remount-ro", directory]
        return args

    @cached_property
    def _unshare_prefix(self) -> list[str]:
        args = ["unshare", "--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc"]
        return args if os.getuid() == 0 else [*args, "--user", "--map-root-user"]


def _bwrap_mounts(workdir: Path, limits: Limits) -> list[str]:
    """The writable places: a private ``/tmp``, ``/dev/shm`` and the working directory, each a
    tmpfs of ``limits.disk_mb`` (so the total written is bounded), with the job's files bound
    read-only; bubblewrap's ``/dev`` itself (an unsized tmpfs) is read-only. (Without ``--size``,
    ``/dev/shm`` is a directory on that read-only ``/dev``.)"""
    if not _bwrap_has("--size"):  # bubblewrap < 0.6: no sized tmpfs, only the per-file limit
        args = [
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
            "--dev",
            "/dev",
            "--remount-ro",
            "/dev",
            "--proc",
            "/proc",
        ]
        return [*args, "--bind", str(workdir), SANDBOX_DIR, "--chdir", SANDBOX_DIR]
    size = str(limits.disk_mb * 1024 * 1024)
    args = ["--size", size, "--perms", "1777", "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"]
    # bubblewrap's /dev is an unsized tmpfs, the sandbox user's own when bubblewrap runs unprivileged:
    # read-only it is, but for a sized /dev/shm (multiprocessing's locks live there)
    args += ["--size", size, "--perms", "1777", "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    args += ["--size", size, "--perms", "0777", "--tmpfs", SANDBOX_DIR]
    for name in sorted(os.listdir(workdir)):
        args += ["--ro-bind", str(workdir / name), f"{SANDBOX_DIR}/{name}"]
    return [*args, "--chdir", SANDBOX_DIR]


#: mounted over in ``unshare`` mode as root: the host directories that anyone may write to
_SHARED_WRITABLE = ("/dev/shm", "/run/lock", "/home")


def _unshare_as_user(python: str, workdir: Path, limits: Limits, user: str, program: list[str]) -> list[str]:
    """The shell step that makes ``unshare`` mode safe for an unprivileged uid (run as root in
    the new mount namespace, before the bootstrap drops privileges):

    * the Python installation is bound read-only into the working directory and started from
      there, so the uid can read its standard library even when it lives under ``/root``;
    * ``/tmp`` and ``/var/tmp`` become private tmpfs mounts of ``limits.disk_mb``, the working
      directory a copy on one of them (so the total written is bounded), and the host's other
      world-writable directories and ``/home`` are covered by small empty tmpfs mounts.
    """
    real = os.path.realpath(python)
    root = os.path.dirname(os.path.dirname(real))
    inside = f"{workdir}/.python/{os.path.relpath(real, root)}"
    entries = " ".join(shlex.quote(name) for name in sorted(os.listdir(workdir)))
    size = limits.disk_mb * 1024 * 1024
    here = shlex.quote(str(workdir))
    lines = [
        "set -e",
        # /var/tmp becomes the private tmpfs that holds the working directory's copy and the
        # Python bind; both are then bound at the working directory's path on a private /tmp
        f"mount -t tmpfs -o size={size},mode=1777 tmpfs /var/tmp",
        "mkdir /var/tmp/work /var/tmp/work/.python",
        f"mount --bind -o ro {shlex.quote(root)} /var/tmp/work/.python",
        f"cp -a {entries} /var/tmp/work/" if entries else "true",  # names relative to the host's copy
        f"chown {user}:{user} /var/tmp/work",
        "chmod 0700 /var/tmp/work",
        f"mount -t tmpfs -o size={size},mode=1777 tmpfs /tmp",
        f"mkdir -p {here}",
        f"mount --rbind /var/tmp/work {here}",
        f"cd {here}",
        *(
            f"mount -t tmpfs -o size=1048576,mode=0755 tmpfs {path}"
            for path in _SHARED_WRITABLE
            if os.path.isdir(path)
        ),
        f'exec {shlex.quote(inside)} "$@"',
    ]
    return ["/bin/sh", "-c", "\n".join(lines), "sh", *program[1:]]


def python_roots(python: str) -> list[str]:
    """The directories of the Python installation outside ``/usr`` that the sandbox must see."""
    # the interpreter's own directory (a venv's bin/) and the installation its link leads to
    candidates = {
        os.path.dirname(os.path.dirname(path)) for path in (os.path.abspath(python), os.path.realpath(python))
    }
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        candidates |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots = sorted({os.path.realpath(path) for path in candidates})
    kept: list[str] = []
    for root in roots:
        inside_usr = root == "/usr" or root.startswith("/usr/")
        if not inside_usr and not any(root.startswith(f"{other}/") for other in kept):
            kept.append(root)
    return kept


def site_directories(python: str) -> list[str]:
    """The third-party package directories of ``python``'s installation (``site-packages``, and
    Debian's ``dist-packages`` under ``/usr``), as real paths."""
    roots = [*python_roots(python), "/usr", "/usr/local"]
    patterns = ("lib*/python3*/site-packages", "lib*/python3*/dist-packages", "lib/python3/dist-packages")
    found = {
        os.path.realpath(path)
        for root in roots
        for pattern in patterns
        for path in glob.glob(f"{root}/{pattern}")
    }
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        found |= {os.path.realpath(path) for path in site.getsitepackages()}
    return sorted(path for path in found if os.path.isdir(path))


def detect_isolation(
    requested: Mode | Literal["auto"] = "auto",
    python: str | None = None,
    *,
    unsafe_run_as_root: bool = False,
) -> Isolation:
    """The strongest working isolation (``"auto"``), or the requested mode if it works.

    The probe runs a tiny program through each candidate once per process; the result is cached.
    As root, model code runs as an unprivileged uid or not at all: only
    ``unsafe_run_as_root=True`` lets a mode that cannot drop privileges run it as root.

    Raises:
        SandboxUnavailable: no mode (or not the requested one) works here; the message says why
            and what to install or change.
        ValueError: ``requested`` is not a known mode.
    """
    if requested != "auto" and requested not in MODES:
        raise ValueError(f"isolation must be 'auto' or one of {', '.join(MODES)}, got {requested!r}")
    return _detect(requested, python or sys.executable, bool(unsafe_run_as_root))


_DETECT_LOCK = threading.Lock()


@cache
def _detect_cached(requested: str, python: str, unsafe_root: bool) -> Isolation:
    modes = MODES if requested == "auto" else (requested,)
    as_root = os.getuid() == 0
    failures: list[str] = []
    for mode in modes:
        # as root, bwrap always drops privileges; the others drop them, or (only when asked to
        # be unsafe) keep them
        drops = [True] if mode == "bwrap" and as_root else ([True, False] if as_root else [False])
        if as_root and not unsafe_root:
            drops = [True]
        for drop in drops:
            isolation = Isolation(mode, python, drop)
            problem = _probe(isolation)
            if problem is None:
                if requested == "auto" and mode != "bwrap":
                    _warn(isolation, failures)
                if mode == "bwrap" and filter_program() is None:
                    warnings.warn(
                        f"Sandbox: no system-call filter for {platform.machine()} (x86_64 and aarch64 "
                        "only): programs can use the keyring, SysV shared memory, memfds and user "
                        "namespaces",
                        SandboxWarning,
                        stacklevel=4,
                    )
                return isolation
            failures.append(f"{mode}{' as an unprivileged user' if drop else ''}: {problem}")
    advice = ""
    if as_root and not unsafe_root:
        advice = (
            ". Model code is never run as root by default: install bubblewrap (Debian: apt-get install "
            "bubblewrap) so that it runs as an unprivileged user, or pass unsafe_run_as_root=True to run "
            "it as root anyway"
        )
    raise SandboxUnavailable(f"isolation={requested!r} does not work here: {'; '.join(failures)}{advice}")


def _detect(requested: str, python: str, unsafe_root: bool = False) -> Isolation:
    with _DETECT_LOCK:  # concurrent first calls probe once
        return _detect_cached(requested, python, unsafe_root)


def _probe(isolation: Isolation) -> str | None:
    """Why ``isolation`` cannot run a tiny program, or ``None`` if it can."""
    if isolation.mode != "none" and shutil.which(isolation.mode) is None:
        hint = " (Debian: apt-get install bubblewrap)" if isolation.mode == "bwrap" else ""
        return f"{isolation.mode} is not installed{hint}"
    with tempfile.TemporaryDirectory(prefix="aipo-sandbox-probe-") as directory:
        workdir = Path(directory)
        (workdir / "main.py").write_text(_PROBE, encoding="utf-8")
        if isolation.drop_privileges:
            os.chown(workdir, DEFAULT_UID, DEFAULT_UID)
            os.chown(workdir / "main.py", DEFAULT_UID, DEFAULT_UID)
        with filter_fd() as seccomp:
            seccomp = seccomp if isolation.mode == "bwrap" else None
            command = isolation.command(workdir, Limits(wall_seconds=30), seccomp_fd=seccomp)
            try:
                done = subprocess.run(
                    command,
                    cwd=workdir,
                    capture_output=True,
                    timeout=30,
                    env={"PATH": "/usr/bin:/bin"},
                    pass_fds=() if seccomp is None else (seccomp,),
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{type(exc).__name__}: {exc}"
    if done.returncode == 0 and b"sandbox-ok" in done.stdout:
        return None
    message = done.stderr.decode(errors="replace").strip().splitlines()
    return f"exit status {done.returncode}: {message[-1] if message else 'no output'}"


def _warn(isolation: Isolation, failures: list[str]) -> None:
    lost = {
        "unshare": "code runs in its own network and PID namespaces but sees the host's files with the "
        "sandbox user's rights",
        "none": "code runs with resource limits, a scrubbed environment and a private working directory "
        "only: it can use the network and read or write any file the sandbox user can",
    }[isolation.mode]
    if os.getuid() == 0 and not isolation.drop_privileges:
        lost += "; it runs as root, so the process-count limit (fork bombs) is not enforced"
    warnings.warn(
        f"Sandbox: bubblewrap isolation is unavailable ({'; '.join(failures)}), using mode "
        f"{isolation.mode!r}: {lost}. Install bubblewrap (Debian: apt-get install bubblewrap) and allow "
        "user namespaces (or run as root) for full isolation.",
        SandboxWarning,
        stacklevel=4,
    )


@cache
def _bwrap_has(option: str) -> bool:
    try:
        usage = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return f" {option} " in usage


def _processes_of(uid: int) -> int:
    """How many processes ``uid`` owns now (the unisolated mode shares RLIMIT_NPROC with them)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count
