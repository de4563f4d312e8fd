"""The test harness that runs inside the sandbox: the candidate program, then each test.

It is the sandboxed ``main.py`` of every code execution (standard library only; never imported
by the package). Its standard input is a :mod:`marshal`-encoded dict (``json`` would cost as
much start-up time as the rest of the run)::

    {"nonce": "...", "program": "...", "setup": "...", "tests": [{"source": "...", "probe": ...}],
     "test_timeout": 4.0}

It runs ``program`` and then ``setup`` (imports of the tests, or HumanEval's helpers) in one
namespace whose ``__name__`` is ``"__candidate__"`` (so ``if __name__ == "__main__":`` demos
do not run), then every test in that namespace with its own timer. Reports go to the original
standard output as lines ``@@aipo <nonce> <record>``, where ``<record>`` is a Python literal
tuple, one per event, written as soon as it happens (a killed run keeps what it reported):

* ``("loaded",)`` or ``("load_error", detail)``;
* ``("test", index, outcome, detail)`` with outcome ``passed``, ``failed`` (an assertion did not
  hold; ``detail`` is ``"returned X"`` when the test has a probe), ``error`` (any other
  exception, ``SystemExit`` included) or ``timeout``;
* ``("done",)``.

Defences against a program that games its tests: its own output goes to standard error, so
printed fake reports carry no nonce; the nonce and every function and class the harness
needs are bound before the program runs, so replacing ``builtins`` or module attributes does
not change the harness; a program that exits early leaves its tests unreported (not passed);
and the harness ends with ``os._exit`` so ``atexit`` hooks and threads cannot add anything.
What it cannot stop is a program that reads the nonce out of the harness's own frames:
such deliberate introspection is contained by the sandbox but could forge a report.
"""

import _signal as signal  # the C module: `signal` would import enum, a tenth of the start-up
import builtins
import marshal
import os
import sys


class _TestTimeout(BaseException):
    """Raised by the per-test timer; a BaseException so that ``except Exception`` misses it."""


def _describe(exc, _type=type, _str=str, _base=BaseException):
    try:
        message = _str(exc)
    except _base:
        message = ""
    name = _type(exc).__name__
    return (f"{name}: {message}" if message else name)[:300]


def main():
    payload = marshal.loads(sys.stdin.buffer.read())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    report_fd = os.dup(1)
    os.dup2(2, 1)  # the program's prints join its standard error
    nonce = payload["nonce"]
    _run(payload, nonce, report_fd)


def _run(
    payload,
    nonce,
    report_fd,
    _write=os.write,
    _exit=os._exit,
    _repr=repr,
    _compile=compile,
    _exec=exec,
    _eval=eval,
    _enumerate=enumerate,
    _assertion=AssertionError,
    _timeout=_TestTimeout,
    _base=BaseException,
    _signal=signal.signal,
    _setitimer=signal.setitimer,
    _alarm=signal.SIGALRM,
    _real=signal.ITIMER_REAL,
    _describe=_describe,
):
    def report(*record):
        _write(report_fd, f"@@aipo {nonce} {_repr(record)}\n".encode())

    def on_alarm(signum, frame):
        raise _timeout()

    seconds = float(payload["test_timeout"])
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        _exec(_compile(payload["program"], "solution.py", "exec"), namespace)
        _exec(_compile(payload["setup"], "<test setup>", "exec"), namespace)
    except _base as exc:
        report("load_error", _describe(exc))
        _exit(0)
    report("loaded")
    for index, test in _enumerate(payload["tests"]):
        outcome, detail = "passed", ""
        try:
            _signal(_alarm, on_alarm)
            _setitimer(_real, seconds)
            try:
                _exec(_compile(test["source"], f"<test {index + 1}>", "exec"), namespace)
            except _assertion:
                outcome, detail = "failed", "the assertion did not hold"
                if test.get("probe"):
                    try:
                        detail = f"returned {_repr(_eval(test['probe'], namespace))[:200]}"
                    except _timeout:
                        raise
                    except _base as exc:
                        detail = f"raised {_describe(exc)}"
            except _timeout:
                raise
            except _base as exc:
                outcome, detail = "error", _describe(exc)
            _setitimer(_real, 0)
        except _timeout:
            outcome, detail = "timeout", f"took longer than {seconds:g} s"
        except _base as exc:  # the timer fired between the handlers, or something stranger
            outcome, detail = "error", _describe(exc)
        _setitimer(_real, 0)
        report("test", index, outcome, detail)
    report("done")
    _exit(0)


if __name__ == "__main__":
    main()
