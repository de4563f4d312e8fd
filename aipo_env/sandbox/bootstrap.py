"""The first code that runs inside the sandbox: limits, privileges, then the program.

The parent starts ``python -I -S -c <this file's source> MAIN UID NAME=VALUE...``, where ``UID``
is ``-`` when the program keeps the parent's user and each ``NAME=VALUE`` is a ``resource.RLIMIT_*``
limit; it is never imported. Standard library only, since the sandboxed interpreter runs without
site-packages, and no ``json`` (importing it costs more than the rest of the start-up). In order:

1. When it is process 1 of a fresh PID namespace (the ``unshare`` mode), it forks and stays
   behind as a minimal init that reaps orphans and exits with the program's status
   (``128 + signal`` when the program was killed), as bubblewrap's own init does; the kernel
   ignores default-action signals sent to a namespace's init, which would defeat
   ``RLIMIT_CPU``.
2. It sets every resource limit with soft = hard (CPU: hard = soft + 1 s, so ``SIGXCPU`` comes
   first), so that the program cannot raise them again.
3. When the config names a ``uid`` (the parent runs as root), it switches to that unprivileged
   user and group; root ignores ``RLIMIT_NPROC``, so without this a fork bomb is not contained.
4. It runs ``main.py`` from the working directory as ``__main__``.
"""

import os
import resource
import sys


def _be_init() -> None:
    """Fork; the parent waits for the program, reaping every orphan, and exits like it."""
    child = os.fork()
    if child == 0:
        return
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def _limit(uid: str, limits: list[str]) -> None:
    for setting in limits:
        name, value = setting.split("=")
        hard = int(value) + 1 if name == "RLIMIT_CPU" else int(value)
        resource.setrlimit(getattr(resource, name), (int(value), hard))
    if uid != "-":
        os.setgroups([])
        os.setgid(int(uid))
        os.setuid(int(uid))
        if os.getuid() != int(uid) or os.geteuid() != int(uid):
            raise SystemExit("sandbox bootstrap: could not drop privileges")
    os.umask(0o077)


def main() -> None:
    path, uid, *limits = sys.argv[1:]
    if os.getpid() == 1:
        _be_init()
    _limit(uid, limits)
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    sys.argv = [path]
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    try:
        exec(compile(source, path, "exec"), namespace)
    except SystemExit:
        raise
    except BaseException as exc:  # report it like Python would, without this file's frame
        if exc.__traceback__ is not None:
            exc.__traceback__ = exc.__traceback__.tb_next
        sys.excepthook(type(exc), exc, exc.__traceback__)
        sys.exit(1)


if __name__ == "__main__":
    main()
