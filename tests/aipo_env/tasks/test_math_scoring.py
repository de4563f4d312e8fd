"""math-verify scoring: equivalent answers, answer spellings, and a time limit on every thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipo_env.tasks.math_scoring import MathVerifier, WorkerPool, answer_text, judge

# sympy expands (x+1)^2000 while comparing it with a number: far longer than any time limit
SLOW_RESPONSE = "so the answer is \\boxed{(x+1)^{2000}}"


@pytest.mark.parametrize(
    ("gold", "response", "extracted"),
    [
        ("\\frac{14}{3}", "Hence $\\boxed{\\frac{28}{6}}$.", "\\frac{28}{6}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "$\\boxed{(3, \\pi/2)}$", "(3, \\pi/2)"),
        ("1234", "She earns 1,234 dollars.\n#### 1,234", "1234"),
        ("1234", "\\boxed{1,234}", "1,234"),
        ("073", "so $d = \\boxed{\\textbf{(073)}}.$", "073"),
        ("25\\pi", "The area is $\\boxed{25\\pi}$.", "25\\pi"),
    ],
)
def test_equivalent_answers_are_correct(gold, response, extracted):
    verdict = judge(gold, response, timeout=5)
    assert verdict.correct and not verdict.timed_out
    assert verdict.extracted == extracted


@pytest.mark.parametrize(
    ("gold", "response"),
    [("\\frac{14}{3}", "\\boxed{\\frac{14}{5}}"), ("18", "#### 81"), ("3", "no answer at all"), ("9", "")],
)
def test_wrong_or_missing_answers_are_incorrect(gold, response):
    assert not judge(gold, response, timeout=5).correct


def test_each_gold_answer_is_parsed_once(monkeypatch):
    import math_verify

    parsed_texts: list[str] = []
    original = math_verify.parse

    def counting_parse(text, **kwargs):
        parsed_texts.append(text)
        return original(text, **kwargs)

    monkeypatch.setattr(math_verify, "parse", counting_parse)
    gold = "\\frac{3}{7}"  # used by no other test, so not cached yet
    for response in ("\\boxed{3/7}", "\\boxed{0.5}", "#### 3"):
        judge(gold, response, timeout=5)
    assert parsed_texts.count(f"${gold}$") == 1 and len(parsed_texts) == 4


def test_box_takes_precedence_over_gsm8k_marker():
    assert answer_text("#### 5 but really \\boxed{6}").endswith("\\boxed{6}")
    assert answer_text("lots of work\n#### -2,500") == "\\boxed{-2500}"


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("\\{}$^_()[]#0123456789x=+-*/ abc,.")) | st.characters(), max_size=200
    )
)
def test_any_text_is_judged_without_raising(response):
    verdict = judge("\\frac{1}{2}", response, timeout=2)
    assert isinstance(verdict.correct, bool)


def test_main_thread_time_limit_holds_on_slow_sympy():
    start = time.monotonic()
    verdict = judge("5", SLOW_RESPONSE, timeout=1)
    assert verdict.timed_out and not verdict.correct
    assert time.monotonic() - start < 3.0


def test_off_main_thread_calls_are_judged_in_a_worker_within_the_limit():
    verifier = MathVerifier(timeout=1, grace=5.0, workers=2)
    try:
        with ThreadPoolExecutor(max_workers=1) as threads:
            # the first call starts the workers; start-up does not count against the limit
            warm = threads.submit(verifier.verify, "\\frac{1}{2}", "\\boxed{0.5}").result()
            assert warm.correct
        with ThreadPoolExecutor(max_workers=3) as threads:
            started = time.monotonic()
            slow = threads.submit(verifier.verify, "5", SLOW_RESPONSE)
            fast = [threads.submit(verifier.verify, "7", f"\\boxed{{{answer}}}") for answer in (7, 8)]
            slow_verdict = slow.result()
            elapsed = time.monotonic() - started
            assert [future.result().correct for future in fast] == [True, False]
        assert slow_verdict.timed_out and not slow_verdict.correct
        assert elapsed < 1 + 5.0  # the timeout plus the grace, at most
    finally:
        verifier.close()


def test_judge_refuses_to_run_off_the_main_thread():
    errors: list[BaseException] = []

    def call() -> None:
        try:
            judge("1", "\\boxed{1}", 1)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


def test_hung_worker_is_killed_and_the_pool_restarted():
    pool = WorkerPool(workers=1)
    try:
        assert pool.run(abs, -3, limit=30) == 3
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            pool.run(time.sleep, 60, limit=1.0)  # sleeps through no alarm: only the backstop stops it
        assert time.monotonic() - started < 5
        assert pool.run(abs, -4, limit=30) == 4  # a fresh pool serves the next job
    finally:
        pool.close()


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": -1.0}, {"timeout": True}, {"workers": 0}])
def test_bad_verifier_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MathVerifier(**kwargs)
