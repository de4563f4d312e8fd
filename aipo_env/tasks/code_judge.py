"""The trusted judge of a code execution: the tests run here, the program's calls in the sandbox.

The sandboxed process (:mod:`aipo_env.tasks.code_harness`) only loads the candidate program and
answers calls on it. The tests, their expected values and their assertions stay in this process,
which runs each test with every name that the program defines (and the test uses) replaced by a
proxy: calling it sends the call's arguments into the sandbox and returns the value that came
back, decoded by :mod:`aipo_env.tasks.code_values` into exact builtin types. So

* an object with an ``__eq__`` that is always true, an ``int`` subclass, a truthy stand-in:
  none can cross; a value that is not plain data stays in the sandbox as a
  :class:`~aipo_env.tasks.code_values.Handle`, which equals only itself;
* rewriting the tests, forging a pass report, reading the expected values: there is nothing of
  the kind in the sandbox to rewrite, forge or read;
* exiting early, or ending the process in any other way, leaves the remaining tests ``not_run``.

Every test shape works this way, since the test's own code runs unchanged here: MBPP's
``assert f(x) == y``, HumanEval's split ``check`` (``candidate`` is a proxy), ``math.isclose``,
loops that call the candidate many times, ``check(candidate)`` as a whole. What a test cannot do
is pass the program something that is not plain data (a lambda, an object of the test's own),
or read an attribute of the program's function objects; such a test is an ``error``.

Test code comes from the data set, which is trusted as the data set is: it runs in this process
(never the program's code), and so do the task's own helper functions (``helpers``: what a
HumanEval prompt defines besides the function to write), so that a test that calls one gets the
task's definition, not the program's. Each test has ``timeout`` seconds of the program's time; a
program that stops answering ends the execution, and its remaining tests are ``not_run``.

**Nothing from the program can make the judge raise, hang or grow.** Its values are bounded and
checked before anything is built from them (:mod:`aipo_env.tasks.code_values`: nodes, depth,
integer bits, range lengths, hash collisions, JSON parsing); the Python lines of the test code
and the helpers stop at the test's deadline (a trace function on this thread; C-level work is
bounded by the value bounds); an error of the judge's own on a strange reply becomes an
``error`` outcome, never an exception out of the dialogue.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import marshal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aipo_env.sandbox.dialogue import Channel, ChannelClosed, NoAnswer
from aipo_env.tasks.code_values import BadReply, Handle, decode, encode, parse_reply

_GRACE_SECONDS = 0.5
_HELPERS = "<task helpers>"
#: the code whose Python lines stop at a test's deadline: the tests, the setup and the helpers
_BOUNDED_FILES = ("<test", _HELPERS)
_BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass
class Verdict:
    """What the judge found.

    Attributes:
        loaded: ``True``, ``False`` (the program never said it loaded) or the load error.
        outcomes: ``(outcome, detail)`` per test: ``passed``, ``failed``, ``error``,
            ``timeout`` or ``not_run``.
    """

    loaded: bool | str
    outcomes: list[tuple[str, str]]


class ProgramError(Exception):
    """The program raised an exception that is not a builtin one."""


class _Timeout(BaseException):
    """The program's time for this test ran out (a BaseException: tests must not catch it)."""


class _Gone(BaseException):
    """The program ended or stopped answering; nothing more can be asked of it."""


def judge(
    program: str,
    setup: str,
    tests: Sequence[str],
    *,
    targets: frozenset[str],
    timeout: float,
    load_seconds: float,
    helpers: str = "",
) -> Callable[[Channel], Verdict]:
    """The dialogue (for :func:`~aipo_env.sandbox.dialogue.converse`) that judges ``program``.

    Args:
        program: the candidate's code.
        setup: code the tests need first (imports, HumanEval's helpers and ``candidate = f``);
            only its import statements are also run in the sandbox, after the program.
        tests: each test's source.
        targets: the names under test (what the reference solution defines), which the program
            provides even when they shadow a builtin (MBPP has a function named ``sum``).
        timeout: seconds of the program's time per test.
        load_seconds: seconds the program may take to load.
        helpers: the task's own definitions that tests may call (run here, never the program's).
    """

    def dialogue(channel: Channel) -> Verdict:
        remote = _Remote(channel)
        outcomes = [("not_run", "")] * len(tests)
        first_frame = {"program": program, "setup": imports_of(setup), "seconds": load_seconds}
        loaded = _load(channel, first_frame, load_seconds)
        if not isinstance(loaded, list):
            return Verdict(loaded, outcomes)
        trusted = defined_names(helpers)
        namespace = _namespace(setup, tests, set(loaded) - trusted, targets, remote)
        try:
            exec(_compiled(helpers, _HELPERS), namespace)
            exec(_compiled(setup, "<test setup>"), namespace)
        except Exception as exc:  # the data set's own setup is broken: no test can pass
            return Verdict(True, [("error", f"the test setup failed: {_describe(exc)}")] * len(tests))
        with _judged(outcomes):
            for index, source in enumerate(tests):
                outcomes[index] = remote.run_test(source, index, namespace, timeout)
                if remote.gone:
                    break
        remote.end()
        return Verdict(True, outcomes)

    return dialogue


def judge_output(
    program: str, cases: Sequence[tuple[str, str]], *, timeout: float, load_seconds: float
) -> Callable[[Channel], Verdict]:
    """The dialogue that judges a whole program by what it prints (LiveCodeBench's stdin tests).

    Each case is ``(standard input, expected standard output)``; the program runs once per case
    in the sandbox, and its output is compared here under :func:`same_output`.
    """

    def dialogue(channel: Channel) -> Verdict:
        remote = _Remote(channel)
        outcomes = [("not_run", "")] * len(cases)
        loaded = _load(
            channel, {"program": program, "setup": "", "seconds": load_seconds, "stdio": True}, load_seconds
        )
        if not isinstance(loaded, list):
            return Verdict(loaded, outcomes)
        with _judged(outcomes):
            _judge_cases(remote, cases, outcomes, timeout)
        remote.end()
        return Verdict(True, outcomes)

    return dialogue


def _judge_cases(remote: _Remote, cases: Sequence[tuple[str, str]], outcomes: list, timeout: float) -> None:
    """Run each stdin case and compare what the program printed, in place in ``outcomes``."""
    for index, (given, expected) in enumerate(cases):
        remote.start_test(timeout)
        try:
            printed = remote.stdio(given.encode("utf-8"))
            if type(printed) is not str:
                outcomes[index] = ("error", "the program's output could not be read")
            elif same_output(printed, expected):
                outcomes[index] = ("passed", "")
            else:
                outcomes[index] = ("failed", f"printed {_shorten(printed)}")
        except _Timeout:
            outcomes[index] = ("timeout", f"took longer than {timeout:g} s")
        except _Gone:
            return
        except Exception as exc:  # the program raised
            outcomes[index] = ("error", _describe(exc))


@contextlib.contextmanager
def _judged(outcomes: list[tuple[str, str]]) -> Iterator[None]:
    """Turn an error of the judge's own (a bug met by a strange reply) into ``error`` outcomes
    for the tests it left unjudged: ``env.step`` must never raise on a program's output."""
    try:
        yield
    except Exception as exc:
        for index, (outcome, _) in enumerate(outcomes):
            if outcome == "not_run":
                outcomes[index] = (
                    "error",
                    f"the judge could not use the program's reply ({type(exc).__name__})",
                )


def _load(channel: Channel, first_frame: dict[str, Any], load_seconds: float) -> list[str] | bool | str:
    """Send the program and wait for it to load: the names it defined, else ``False`` (nothing
    readable came back) or its load error."""
    try:
        channel.send(marshal.dumps(first_frame))
        first = parse_reply(channel.receive(load_seconds + _GRACE_SECONDS))
    except (ChannelClosed, BadReply):
        return False
    if first[0] == "load_error" and len(first) == 2 and type(first[1]) is str:
        return first[1][:300]
    if first[0] != "loaded" or len(first) != 2 or type(first[1]) is not list:
        return False
    return [name for name in first[1] if type(name) is str]


def same_output(printed: str, expected: str) -> bool:
    """Whether two outputs are the same up to whitespace: the same lines once blank lines at
    either end are dropped, each line compared as its whitespace-separated tokens."""
    return _lines(printed) == _lines(expected)


def _lines(text: str) -> list[list[str]]:
    lines = [line.split() for line in text.strip().splitlines()]
    return lines


def _shorten(text: str, limit: int = 200) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


@lru_cache(maxsize=4096)
def defined_names(source: str) -> frozenset[str]:
    """The names that the top level of ``source`` defines by ``def``, ``class`` or assignment."""
    try:
        body = _parse(source).body
    except SyntaxError:
        return frozenset()
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return frozenset(names)


def imports_of(setup: str) -> str:
    """The top-level import statements of ``setup`` (all the sandbox gets of it)."""
    try:
        body = _parse(setup).body
    except SyntaxError:
        return ""
    kept = [node for node in body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return ast.unparse(ast.Module(body=kept, type_ignores=[]))


class _Remote:
    """Calls into the sandbox, one at a time, under the current test's clock."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.gone = False
        self.last: Any = _NOTHING
        self._handles: dict[int, Handle] = {}
        self._counter = 0
        self._deadline = 0.0

    def start_test(self, timeout: float) -> None:
        self.last = _NOTHING
        self._deadline = time.monotonic() + timeout

    def stdio(self, given: bytes) -> Any:
        return self._ask("stdio", given)

    def run_test(self, source: str, index: int, namespace: dict, timeout: float) -> tuple[str, str]:
        self.start_test(timeout)
        try:
            with _deadline(self._deadline + _GRACE_SECONDS):
                exec(_compiled(source, f"<test {index + 1}>"), namespace)
        except AssertionError:
            if self.last is _NOTHING:
                return "failed", "the assertion did not hold"
            return "failed", f"returned {_safe_repr(self.last)[:200]}"
        except _Timeout:
            return "timeout", f"took longer than {timeout:g} s"
        except _Gone:
            return "not_run", ""
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the program's exception, or the test's own error
            return "error", _describe(exc)
        return "passed", ""

    def call(self, target: int | str, args: tuple, kwargs: dict) -> Any:
        encoded_args = [encode(arg) for arg in args]
        encoded_kwargs = [(str(key), encode(value)) for key, value in kwargs.items()]
        return self._ask("call", target, encoded_args, encoded_kwargs)

    def getattr(self, target: int | str, name: str) -> Any:
        return self._ask("getattr", target, name)

    def end(self) -> None:
        """Tell a program that still answers to exit."""
        if not self.gone:
            with contextlib.suppress(ChannelClosed):
                self.channel.send(marshal.dumps(("end",)))

    def handle(self, number: int) -> Handle:
        if number not in self._handles:
            self._handles[number] = Handle(number, self)
        return self._handles[number]

    def _ask(self, operation: str, target: int | str, *fields: Any) -> Any:
        if self.gone:
            raise _Gone()
        seconds = self._deadline - time.monotonic()
        if seconds <= 0:
            raise _Timeout()
        self._counter += 1
        number = self._counter
        try:
            self.channel.send(marshal.dumps((operation, number, target, *fields, seconds)))
            reply = parse_reply(self.channel.receive(seconds + _GRACE_SECONDS))
        except NoAnswer as exc:  # the program blocked its own timer: it is stuck for good
            self.gone = True
            raise _Timeout() from exc
        except ChannelClosed as exc:
            self.gone = True
            raise _Gone() from exc
        except BadReply as exc:
            self.gone = True
            raise _Gone() from exc
        if len(reply) < 2 or reply[1] != number:
            self.gone = True  # a reply out of turn: the program writes on its reply stream itself
            raise _Gone()
        kind = reply[0]
        if kind == "value" and len(reply) == 3:
            try:
                self.last = decode(reply[2], self.handle)
            except BadReply as exc:
                self.gone = True
                raise _Gone() from exc
            return self.last
        if kind == "timeout" and len(reply) == 2:
            raise _Timeout()
        if kind == "raised" and len(reply) == 4 and type(reply[2]) is str and type(reply[3]) is str:
            raise _exception(reply[2], reply[3])
        self.gone = True
        raise _Gone()


@contextlib.contextmanager
def _deadline(deadline: float) -> Iterator[None]:
    """Raise :class:`_Timeout` in the trusted test code (and the task's helpers) at its next
    Python line after ``deadline``: a test that loops over a program's value cannot hold the
    judge. Only this thread is traced, and only frames of that code get line events."""

    def line(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _Timeout()
        return line

    def call(frame: Any, event: str, arg: Any) -> Any:
        return line if frame.f_code.co_filename.startswith(_BOUNDED_FILES) else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        yield
    finally:
        sys.settrace(previous)


_NOTHING = object()
#: raised in the test's own code these would steer it: a StopIteration from the program inside
#: ``all(map(f, xs))`` ends the iteration early and makes ``all`` true
_NOT_RERAISED = (AssertionError, StopIteration, StopAsyncIteration)


def _exception(name: str, message: str) -> Exception:
    """The program's exception as this process can raise it: a builtin exception of that name
    (so that a test's ``except ValueError`` works), anything else a :class:`ProgramError`."""
    kind = getattr(builtins, name, None) if name in _BUILTIN_NAMES else None
    detail = message.partition(": ")[2] if message.startswith(f"{name}: ") else message
    if isinstance(kind, type) and issubclass(kind, Exception) and kind not in _NOT_RERAISED:
        try:
            return kind(detail)
        except Exception:  # an exception whose constructor wants other arguments
            pass
    return ProgramError(message)


def _namespace(
    setup: str, tests: Sequence[str], defined: set[str], targets: frozenset[str], remote: _Remote
) -> dict[str, Any]:
    """The judge's globals: builtins and a proxy for each program name the tests or setup use.

    Apart from the ``targets``, a program's name that shadows a builtin or a standard module
    gets no proxy: a program that defines ``sorted`` or ``math`` must not change what the
    test's own ``sorted`` or ``math`` do.
    """
    namespace: dict[str, Any] = {"__name__": "__judge__", "__builtins__": builtins}
    for name in sorted(_free_names(setup, tuple(tests)) & defined):
        if name in targets:
            namespace[name] = Handle(name, remote)
        elif name in sys.stdlib_module_names:  # a test that uses the program's `import math`
            with contextlib.suppress(ImportError):
                namespace[name] = importlib.import_module(name)  # gets the real one
        elif name not in _BUILTIN_NAMES:
            namespace[name] = Handle(name, remote)
    return namespace


@lru_cache(maxsize=4096)
def _compiled(source: str, filename: str) -> Any:
    with warnings.catch_warnings():  # a data set's `"\w"` is its own business
        warnings.simplefilter("ignore")
        return compile(source, filename, "exec")


@lru_cache(maxsize=1024)
def _free_names(setup: str, tests: tuple[str, ...]) -> frozenset[str]:
    names: set[str] = set()
    for source in (setup, *tests):
        try:
            tree = _parse(source)
        except SyntaxError:
            continue
        names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return frozenset(names)


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # a KeyError of an int past the digit limit
        message = ""
    name = type(exc).__name__
    return (f"{name}: {message}" if message else name)[:300]


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a value too big to show (an int past the digit limit)
        return f"a {type(value).__name__}"


def _parse(source: str) -> ast.Module:
    with warnings.catch_warnings():  # a data set's `"\w"` is its own business
        warnings.simplefilter("ignore")
        return ast.parse(source)
