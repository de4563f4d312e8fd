"""The registered environments: one class per problem family, documented the Gymnasium way.

Every class takes its family's options and passes the rest (``agents``, ``consult``,
``max_turns``, ...) to :class:`~aipo_env.core.ReasoningEnv`, whose docstring lists them. Task
modules are imported when an env is built, so ``import aipo_env`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aipo_env.core import ReasoningEnv

if TYPE_CHECKING:
    from aipo_env.sandbox import Limits


class ArithmeticEnv(ReasoningEnv):
    """## Description

    The built-in step-by-step family: chains of arithmetic operations ("Start with 7. Add 5,
    then multiply by 3, then subtract 4. What number do you get?") with a reference solution of
    one step per operation. Needs no data and no model; the Reasoning agent reveals one step per
    consult, the Verify agent checks steps and answers exactly.

    ## Action Space

    ``Transcript(max_action_chars)``: the policy's text for one turn. A turn ending in
    ``<consult agent="verify|knowledge|reasoning">query</consult>`` is a consult; any other turn
    is the final response (see :mod:`aipo_env.protocol` for malformed actions).

    ## Observation Space

    ``Transcript``: the whole transcript so far, i.e. the prompt, every action, and every
    ``<feedback agent="...">`` reply, concatenated.

    ## Rewards

    1 for a final ``\\boxed{N}`` equal to the chain's value, else 0; minus ``consult_cost`` per
    answered consult and ``invalid_action_penalty`` per invalid consult.

    ## Episode End

    Terminates on a final response or on the ``max_turns``-th turn (scored as final). Never
    truncates.

    ## Arguments

    * ``level``: 1 (one addition of digits) to 10 (ten operations on four-digit numbers), or an
      inclusive range ``(low, high)``. Default ``(1, 3)``.
    * ``size``: number of problems (default 10000), ``split``: ``"train"`` or ``"test"``,
      ``seed``: generator seed.
    * every :class:`~aipo_env.core.ReasoningEnv` keyword.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        level: int | tuple[int, int] = (1, 3),
        size: int = 10_000,
        split: str = "train",
        seed: int = 0,
        **env_kwargs: Any,
    ) -> None:
        from aipo_env.tasks.arithmetic import ArithmeticTask

        super().__init__(ArithmeticTask(level=level, size=size, split=split, seed=seed), **env_kwargs)


class ArithmeticRuleEnv(ReasoningEnv):
    """## Description

    Arithmetic chains with a new operation, "double it" ("Start with 7. Double it, then add 3.
    What number do you get?"), whose reference steps write doubling as ``7 + 7 = 14``. The easy
    levels of :class:`ArithmeticEnv` teach everything but that rule; the Reasoning agent shows
    it, one step per consult. The splits ask disjoint questions (see
    :mod:`aipo_env.tasks.arithmetic_rule`), so held-out success alone means the rule was learned.

    ## Action Space, Observation Space, Rewards, Episode End

    As :class:`ArithmeticEnv`.

    ## Arguments

    * ``operations``: 1, 2 (default) or 3 operations per chain, at least one of them doubling.
    * ``split``: ``"train"`` or ``"test"``; ``test_share``: the test split's share (default 1/3).
    * ``max_start``: the largest start value (default 9: start digits). ``aipo demo`` takes
      ``max_start=18, test_share=0.5`` for 345 held-out problems with 2 operations.
    * ``verb``: the operation's name, ``"double"`` (default) or a made-up word ("blick") that
      only the Knowledge agent defines (and the Reasoning agent's steps show).
    * every :class:`~aipo_env.core.ReasoningEnv` keyword.

    ## Version History

    * v0: initial version. ``max_start`` was added later; its default asks the same questions in
      the same splits as before, so the id was kept. ``verb`` was added the same way (its
      default asks the same questions).
    """

    def __init__(
        self,
        operations: int = 2,
        split: str = "train",
        test_share: float = 1 / 3,
        max_start: int = 9,
        verb: str = "double",
        **env_kwargs: Any,
    ) -> None:
        from aipo_env.tasks.arithmetic_rule import ArithmeticRuleTask

        task = ArithmeticRuleTask(operations, split, test_share, max_start, verb)
        super().__init__(task, **env_kwargs)


class MathEnv(ReasoningEnv):
    """## Description

    Free-form competition and grade-school math. The final response is scored with math-verify
    against the reference answer (``\\boxed{}`` answers; GSM8K's ``#### N`` is accepted too).

    ## Action Space

    ``Transcript(max_action_chars)``; see :class:`ArithmeticEnv`.

    ## Observation Space

    ``Transcript``: the transcript so far.

    ## Rewards

    1 if math-verify judges the final answer equal to the reference, else 0 (a verifier time-out
    scores 0 and is reported in ``info["score_details"]``); minus consult costs and penalties.

    ## Episode End

    As :class:`ArithmeticEnv`.

    ## Arguments

    * ``dataset``: ``"builtin"`` (a dozen bundled problems, offline), ``"math500"``, ``"gsm8k"``
      or ``"aime"``.
    * ``data_path``: a local JSONL, JSON or Parquet file in that dataset's format; without it the
      Hugging Face hub is used.
    * ``split``: the hub split; ``limit``: keep the first N problems; ``verify_timeout``:
      seconds math-verify may spend on one response.
    * every :class:`~aipo_env.core.ReasoningEnv` keyword.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        dataset: str = "builtin",
        data_path: str | None = None,
        split: str | None = None,
        limit: int | None = None,
        verify_timeout: int = 5,
        **env_kwargs: Any,
    ) -> None:
        from aipo_env.tasks.math import math_task

        task = math_task(dataset, data_path=data_path, split=split, limit=limit, timeout=verify_timeout)
        super().__init__(task, **env_kwargs)


class MultipleChoiceEnv(ReasoningEnv):
    """## Description

    Multiple-choice questions in the GPQA format: the question is shown with options (A)-(D),
    shuffled deterministically per ``shuffle_seed`` and row, and the correct letter is tracked.

    ## Action Space

    ``Transcript(max_action_chars)``; see :class:`ArithmeticEnv`.

    ## Observation Space

    ``Transcript``: the transcript so far.

    ## Rewards

    1 if the letter read from the final response (``\\boxed{C}``, ``Answer: C``, ``(C)``) is
    the correct one, else 0; minus consult costs and penalties.

    ## Episode End

    As :class:`ArithmeticEnv`.

    ## Arguments

    * ``dataset``: ``"builtin"`` (bundled questions, offline) or ``"gpqa"``.
    * ``data_path``: a local CSV, JSONL or Parquet file in the GPQA format; without it the hub.
    * ``split``, ``limit``, ``shuffle_seed``.
    * every :class:`~aipo_env.core.ReasoningEnv` keyword.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        dataset: str = "builtin",
        data_path: str | None = None,
        split: str | None = None,
        limit: int | None = None,
        shuffle_seed: int = 0,
        **env_kwargs: Any,
    ) -> None:
        from aipo_env.tasks.multiple_choice import multiple_choice_task

        task = multiple_choice_task(
            dataset, data_path=data_path, split=split, limit=limit, shuffle_seed=shuffle_seed
        )
        super().__init__(task, **env_kwargs)


class ProceduralEnv(ReasoningEnv):
    """## Description

    Any reasoning-gym task by name (``basic_arithmetic``, ``chain_sum``, ``leg_counting``, ...),
    with its own generator settings and its own scorer.

    ## Action Space

    ``Transcript(max_action_chars)``; see :class:`ArithmeticEnv`.

    ## Observation Space

    ``Transcript``: the transcript so far.

    ## Rewards

    reasoning-gym's ``score_answer`` of the extracted answer (``<answer>...</answer>``, else the
    last ``\\boxed{}``, else the last line), in ``[0, 1]``; ``correct`` means a score of 1.
    Minus consult costs and penalties.

    ## Episode End

    As :class:`ArithmeticEnv`.

    ## Arguments

    * ``task``: the reasoning-gym dataset name; ``size``: problems generated; ``seed``.
    * ``config``: a dict of that dataset's settings (e.g. ``{"min_terms": 2, "max_terms": 4}``).
    * ``level``: a curriculum level of that dataset (0 = easiest), where reasoning-gym defines a
      curriculum; it sets the difficulty attributes before ``config`` is applied.
    * every :class:`~aipo_env.core.ReasoningEnv` keyword.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        task: str = "basic_arithmetic",
        size: int = 500,
        seed: int = 0,
        config: dict[str, Any] | None = None,
        level: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        from aipo_env.tasks.procedural import ProceduralTask

        super().__init__(ProceduralTask(task, size=size, seed=seed, config=config, level=level), **env_kwargs)


class CodeEnv(ReasoningEnv):
    """## Description

    Python programming problems in the MBPP and HumanEval formats. The final response's code (its
    last fenced ``python`` block, or the whole response if it has none) runs against the
    problem's tests in a sandbox: its own process under wall, CPU, memory, process-count,
    output and file-size limits, in a fresh working directory, with a scrubbed environment and,
    where bubblewrap works, no network and a read-only view of the system (see
    :mod:`aipo_env.sandbox.isolation` for the weaker modes used when it does not). The tests
    themselves run outside the sandbox, in a trusted judge that only sends the program calls
    and gets plain data back (:mod:`aipo_env.tasks.code_judge`), so a program cannot game its
    reward. As root, model code runs as an unprivileged uid or not at all. The first test
    is visible (shown in the prompt, run by the Verify agent); the others are hidden (see
    :mod:`aipo_env.tasks.code_formats`). The Verify agent runs the policy's latest code on the
    visible tests and reports the first failure; the Reasoning agent reveals the reference
    solution line by line.

    ## Action Space

    ``Transcript(max_action_chars)``; see :class:`ArithmeticEnv`.

    ## Observation Space

    ``Transcript``: the transcript so far.

    ## Rewards

    1 if every test passes, else 0; with ``partial=True``, the fraction of tests passed.
    ``correct`` means every test passed. ``info["score_details"]`` lists each test's outcome
    (hidden tests without their details), the execution status, the isolation mode and the end
    of standard error. Minus consult costs and penalties.

    ## Episode End

    As :class:`ArithmeticEnv`.

    ## Arguments

    * ``dataset``: ``"builtin"`` (eight bundled problems in the MBPP format, offline), ``"mbpp"``,
      ``"humaneval"``, ``"livecodebench"`` (stdin and functional problems; a sample ships as
      ``aipo_env/data/livecodebench_sample.jsonl``) or ``"stdin_stdout"`` (whole programs
      judged by their printed output, up to whitespace).
    * ``data_path``: a local JSONL, JSON, Parquet or CSV file in that format; without it the
      Hugging Face hub.
    * ``split``, ``limit``: the hub split and the first N problems.
    * ``partial``: reward the fraction of tests passed. ``visible_tests``: how many tests are
      visible (default 1).
    * ``timeout``: seconds per test (default 4). ``limits``: a :class:`~aipo_env.sandbox.Limits`
      for memory, processes, output and files. ``isolation``: ``"auto"``, ``"bwrap"``,
      ``"unshare"`` or ``"none"``. ``workers``: parallel executions for ``task.score_many``.
    * ``unsafe_run_as_root``: run model code as root where no mode can drop privileges
      (default off: ``gym.make`` then fails with what to install).
    * every :class:`~aipo_env.core.ReasoningEnv` keyword.

    ## Version History

    * v0: initial version. Since 2026-12 the tests are judged outside the sandbox: rewards of
      honest programs are unchanged, programs that gamed the old in-sandbox harness score 0.
    """

    def __init__(
        self,
        dataset: str = "builtin",
        data_path: str | None = None,
        split: str | None = None,
        limit: int | None = None,
        partial: bool = False,
        visible_tests: int = 1,
        timeout: float = 4.0,
        limits: Limits | None = None,
        isolation: str = "auto",
        workers: int = 2,
        unsafe_run_as_root: bool = False,
        **env_kwargs: Any,
    ) -> None:
        from aipo_env.tasks.code import code_task

        task = code_task(
            dataset,
            data_path=data_path,
            split=split,
            limit=limit,
            visible_tests=visible_tests,
            partial=partial,
            timeout=timeout,
            limits=limits,
            isolation=isolation,
            workers=workers,
            unsafe_run_as_root=unsafe_run_as_root,
        )
        super().__init__(task, **env_kwargs)
