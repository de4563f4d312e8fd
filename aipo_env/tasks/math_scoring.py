"""Judging free-form math answers with math-verify, under a time limit that holds on any thread.

One response is judged by :func:`judge` in three steps, after a cheap screen: an answer that
would keep math-verify busy for seconds (deep nesting, exponent towers, huge formulas; see
:mod:`aipo_env.tasks.math_limits`) scores 0 unjudged.

1. **Read the answer.** math-verify finds the last ``\\boxed{}`` (or a "final answer is"
   phrase, or the last expression). Two spellings are normalised first: a GSM8K-style final
   line ``#### N`` counts as ``\\boxed{N}`` when the response has no box, and a number set in
   text font (``\\textbf{(073)}``, as some AIME solutions write it) counts as that number.
2. **Parse.** The gold answer is parsed once per distinct answer (cached; wrapped in ``$...$``
   unless it is already LaTeX-delimited) and the response with ``math_verify.parse``.
3. **Compare.** ``correct = any(math_verify.verify(g, r) for g in gold for r in response)``,
   math-verify's own comparison (strings, numbers to 6 decimals, sympy equality, sets,
   intervals, matrices, ``x = 5`` against ``5``).

**Time limit.** A judgement runs under one deadline on the main thread: an interval timer
(``signal.setitimer``) raises ``TimeoutException`` ``timeout`` seconds after the start and then
again every ``0.25`` s until the judgement ends. The repeat matters: Python swallows an
exception raised inside a finaliser or a garbage-collector callback, so a single alarm (what
math-verify's own ``signal.alarm`` gives) can be lost, and sympy then runs on for many seconds
(seen with a large heap). math-verify's own per-operation alarms are switched off so the two
never share the timer. Signals only reach the main thread, so :class:`MathVerifier` runs
:func:`judge` in-process on the main thread, and from any other thread sends it to a lazily
started worker process (spawn context). Code that ignores signals (a long computation inside a
C extension) is caught by a backstop: the calling thread waits at most ``timeout + grace``
seconds for the worker, then kills and restarts the pool.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, TypeVar

import math_verify
from math_verify.errors import TimeoutException

from aipo_env.tasks.base import last_boxed
from aipo_env.tasks.math_limits import costly_answer

logger = logging.getLogger(__name__)
T = TypeVar("T")

_GSM8K_FINAL = re.compile(r"####\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_TEXT_NUMBER = re.compile(
    r"\\(?:text|textbf|textrm|mathrm|mathbf)\s*\{\s*\(?\s*(-?\d[\d,]*(?:\.\d+)?)\s*\)?\s*\}"
)
_MATH_DOLLAR = re.compile(r"(?<!\\)\$")
_GOLD_CACHE_SIZE = 65_536
_STARTUP_LIMIT_S = 180.0


@dataclass(frozen=True)
class MathVerdict:
    """The judgement of one response.

    Attributes:
        correct: math-verify found the response's answer equal to the gold answer.
        extracted: the answer as written in the response (``None`` if none was found).
        timed_out: the time limit cut the judgement short (it then counts as incorrect).
        error: why the judgement could not run at all (a crashed worker), else ``None``.
        screened: why the response was scored 0 without asking math-verify (an answer that
            would take it seconds; see :mod:`aipo_env.tasks.math_limits`), else ``None``.
    """

    correct: bool
    extracted: str | None
    timed_out: bool = False
    error: str | None = None
    screened: str | None = None


def gold_text(answer: str) -> str:
    """The gold answer as math-verify should read it: ``$answer$`` unless already delimited.

    An escaped dollar (``\\$18.90``) is a currency sign, not a delimiter.
    """
    answer = answer.strip()
    if _MATH_DOLLAR.search(answer) or "\\boxed" in answer or answer.startswith(("\\(", "\\[")):
        return answer
    return f"${answer}$"


def answer_text(response: str) -> str:
    """The response with the two spellings of step 1 of :func:`judge` normalised."""
    text = _TEXT_NUMBER.sub(lambda match: match.group(1), response)
    if last_boxed(text) is None:
        finals = _GSM8K_FINAL.findall(text)
        if finals:
            return f"\\boxed{{{finals[-1].replace(',', '')}}}"
    return text


class _Deadline:
    """Raise ``TimeoutException`` after ``seconds``, and every ``repeat`` seconds after that.

    Only on the main thread; see the module docstring for why the alarm repeats.
    """

    def __init__(self, seconds: float, repeat: float = 0.25) -> None:
        self.seconds, self.repeat = seconds, repeat
        self._active = False
        self._previous: Any = None

    def __enter__(self) -> _Deadline:
        self._active = True
        self._previous = signal.signal(signal.SIGALRM, self._expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds, self.repeat)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)

    def _expire(self, signum: int, frame: object) -> None:
        if self._active:
            raise TimeoutException("math-verify judgement timed out")


# gold answer -> its parse; one cache per process (each worker process keeps its own), filled
# on the main thread only, so it needs no lock
_parsed_golds: dict[str, list[Any]] = {}


def judge(gold: str, response: str, timeout: float) -> MathVerdict:
    """Judge ``response`` against the reference answer ``gold`` (see the module docstring).

    Must run on a main thread (the deadline is a signal); :class:`MathVerifier` takes care of
    that. Never raises on any response text: parse errors count as no answer, comparison
    errors as not equal.

    Raises:
        RuntimeError: called off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("judge() needs the main thread (signal timer); use MathVerifier from threads")
    costly = costly_answer(response)
    if costly is not None:
        return MathVerdict(False, None, screened=costly)
    extracted = None
    try:
        with _Deadline(timeout):
            gold_parsed = _parse_gold(gold)
            parsed = _parse_or_nothing(answer_text(response))
            extracted = _as_written(parsed)
            for gold_item in gold_parsed:
                for item in parsed:
                    if _equal(gold_item, item):
                        return MathVerdict(True, extracted)
    except TimeoutException:
        return MathVerdict(False, extracted, timed_out=True)
    return MathVerdict(False, extracted)


def _parse_or_nothing(text: str) -> list[Any]:
    """math-verify's parse without its own alarm; a parse error means "no answer"."""
    try:
        return math_verify.parse(text, parsing_timeout=None, raise_on_error=True)
    except TimeoutException:
        raise
    except Exception:
        return []


def _equal(gold: Any, item: Any) -> bool:
    """math-verify's comparison without its own alarm; a failing comparison means "not equal"."""
    try:
        return bool(math_verify.verify(gold, item, timeout_seconds=None, raise_on_error=True))
    except TimeoutException:
        raise
    except Exception:
        return False


def _parse_gold(gold: str) -> list[Any]:
    """The parsed gold answer, cached once parsing has finished."""
    cached = _parsed_golds.get(gold)
    if cached is not None:
        return cached
    parsed = _parse_or_nothing(gold_text(gold))
    if not parsed:
        logger.warning("math-verify could not parse the gold answer %r; no response can match it", gold)
    if len(_parsed_golds) >= _GOLD_CACHE_SIZE:
        _parsed_golds.clear()
    _parsed_golds[gold] = parsed
    return parsed


def _as_written(parsed: list[Any]) -> str | None:
    """The answer text math-verify matched (its string fallback), else the parsed value."""
    for item in parsed:
        if isinstance(item, str):
            return item
    return str(parsed[0]) if parsed else None


class MathVerifier:
    """Judges responses with :func:`judge` on any thread, within ``timeout`` (+ ``grace`` backstop).

    Args:
        timeout: seconds one judgement may take.
        grace: extra seconds a calling thread waits for a worker before it declares the worker
            hung, kills it and restarts the pool.
        workers: worker processes for calls from non-main threads (started on first such call).
    """

    def __init__(self, timeout: float = 5, *, grace: float = 5.0, workers: int = 2) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if grace < 0 or workers < 1:
            raise ValueError(f"grace must be >= 0 and workers >= 1, got grace={grace}, workers={workers}")
        self.timeout, self.grace = timeout, grace
        self._pool = WorkerPool(workers)

    def verify(self, gold: str, response: str) -> MathVerdict:
        """Judge ``response`` against ``gold``; never raises on any response text."""
        if threading.current_thread() is threading.main_thread():
            return judge(gold, response, self.timeout)
        try:
            return self._pool.run(judge, gold, response, self.timeout, limit=self.timeout + self.grace)
        except TimeoutError:
            logger.warning("math-verify worker overran %ss and was restarted", self.timeout + self.grace)
            return MathVerdict(False, None, timed_out=True)
        except BrokenProcessPool as exc:
            return MathVerdict(False, None, error=f"math-verify worker crashed: {exc}"[:300])

    def close(self) -> None:
        """Stop the worker processes, if any were started. Safe to call twice."""
        self._pool.close()


class WorkerPool:
    """A lazily started process pool (spawn context) whose hung workers are killed and replaced.

    At most ``workers`` jobs run at once (a semaphore), so a submitted job always finds an idle
    worker and the limit in :meth:`run` measures the job itself, not time spent in a queue.

    Args:
        workers: number of worker processes.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def run(self, function: Callable[..., T], *args: Any, limit: float) -> T:
        """``function(*args)`` in a worker, waiting at most ``limit`` seconds for it.

        A job lost because another thread's hung job brought the pool down is tried once more.

        Raises:
            TimeoutError: the job overran ``limit``; its worker was killed and the pool restarted.
            BrokenProcessPool: a worker died twice under this job.
            RuntimeError: the workers could not start.
        """
        with self._slots:
            for attempt in range(2):
                executor = self._started()
                future = executor.submit(function, *args)
                try:
                    return future.result(timeout=limit)
                except FutureTimeout:
                    self._restart(executor)
                    raise TimeoutError(f"worker job overran {limit:.1f}s") from None
                except BrokenProcessPool:
                    self._restart(executor)
                    if attempt == 1:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Shut the workers down. Safe to call twice."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _started(self) -> ProcessPoolExecutor:
        """The running pool, started (and every worker warmed up) if there is none."""
        with self._lock:
            if self._executor is not None:
                return self._executor
            executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=get_context("spawn"), initializer=_warm_up
            )
            # one trivial job per worker starts them all now, so start-up never counts
            # against a job's limit (spawned workers import sympy: seconds on a busy machine)
            warm = [executor.submit(_ready) for _ in range(self.workers)]
            try:
                for future in warm:
                    future.result(timeout=_STARTUP_LIMIT_S)
            except (BrokenProcessPool, FutureTimeout) as exc:
                _kill_workers(executor)
                raise RuntimeError(
                    "math-verify worker processes could not start. A script that scores math from "
                    "threads must guard its entry point with `if __name__ == '__main__':` "
                    f"(workers are spawned and re-import the main module). Cause: {exc!r}"
                ) from exc
            self._executor = executor
            return executor

    def _restart(self, executor: ProcessPoolExecutor) -> None:
        """Kill ``executor``'s workers; the next job starts a fresh pool."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        _kill_workers(executor)


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """Kill every worker of ``executor`` (its pending jobs fail with BrokenProcessPool)."""
    kill = getattr(executor, "kill_workers", None)  # public from Python 3.14
    if kill is not None:
        kill()
    else:
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.kill()
    executor.shutdown(wait=False, cancel_futures=True)


def _warm_up() -> None:
    """Worker initializer: the first parse loads the LaTeX grammar (about a second)."""
    judge("1", "\\boxed{1}", 5)


def _ready() -> bool:
    return True
