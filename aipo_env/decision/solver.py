"""Fixed solvers that write the text while a decision policy chooses when to consult.

:class:`Solver` is what :class:`~aipo_env.decision.consult_decision.ConsultDecisionEnv` needs
from a solver: write the next step, phrase a consult, read a helper's reply, state an answer,
and report confidence signals. :class:`NoisyArithmeticSolver` is a scripted solver for the
built-in arithmetic family whose slips grow with difficulty and which the right helper can
correct, so that *when* and *whom* to consult is a real decision.

The noisy solver's model of one step at difficulty ``d`` (``t = (d - 1) / (D - 1)`` clipped to
``[0, 1]``, ``D = max_difficulty``; ``t = 0.5`` when the difficulty is unknown):

    P(wrong step)   = (p_easy + (p_hard - p_easy) * t) * k      (k = knowledge_factor right
                                                                 after a Knowledge consult, else 1)
    confidence      = sigmoid(z),  z ~ Normal(mu, sigma)
                      mu = mu_right - drop * t  for a right step,  mu = mu_wrong  for a wrong one
    self-check      passes with probability q_right (right step) or q_wrong (wrong step)
    mean log-prob   = mean over the written steps of log(confidence)

A wrong step is off by a small slip (``+-1..3``, or ``+-operand`` for a product) and later steps
build on the wrong value. The helpers correct it as follows:

* **Reasoning** reveals the first reference step missing from the transcript: the solver adopts
  it (dropping its own steps from there on) and marks it confirmed. So a Reasoning consult
  repairs the first wrong step, or gives the next step for free when there is none.
* **Verify** checks the last written step. "Correct" confirms the chain so far; "Incorrect"
  makes the solver redo that step; "holds, but not a step of the solution" (an earlier slip)
  makes it redo every unconfirmed step. Redone steps are fresh draws, so they may slip again.
* **Knowledge** returns a textbook rule; it lowers the chance of a slip on the next step only by
  ``knowledge_factor`` (it helps little).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from aipo_env.tasks.arithmetic import apply_operation
from aipo_env.tasks.base import Problem

_STEP = re.compile(r"Step\s+(\d+):\s*(-?\d+)\s*([-+*])\s*(-?\d+)\s*=\s*(-?\d+)")
_SLIPS = (-3, -2, -1, 1, 2, 3)
_VERBS = {"+": "add", "-": "subtract", "*": "multiply"}


@dataclass(frozen=True)
class SolverSignals:
    """What the solver can tell about its own work (the decision policy sees these).

    Attributes:
        steps_written: steps in the current chain.
        steps_total: steps the problem needs, when the solver knows.
        step_confidence: confidence in the last step, in ``[0, 1]`` (1 when nothing is written).
        min_confidence: lowest confidence over unconfirmed steps (1 when there are none).
        mean_logprob: mean log-confidence over the written steps (``<= 0``; 0 when none).
        self_check_failed: whether re-checking the last step disagreed with it.
        last_step_confirmed: whether a helper confirmed or supplied the last step.
        has_candidate: whether the chain is complete, i.e. a candidate answer exists.
    """

    steps_written: int
    steps_total: int | None
    step_confidence: float
    min_confidence: float
    mean_logprob: float
    self_check_failed: bool
    last_step_confirmed: bool
    has_candidate: bool


class Solver(ABC):
    """A fixed solver: it writes the reasoning; a decision policy decides when it consults."""

    @abstractmethod
    def start(self, problem: Problem, rng: np.random.Generator) -> None:
        """Begin ``problem``; all randomness comes from ``rng`` (the env's, so seeds reproduce)."""

    @abstractmethod
    def write_step(self) -> None:
        """Write the next step of the solution (a no-op when the chain is complete)."""

    @abstractmethod
    def query(self, agent: str) -> str:
        """The question this solver would ask ``agent`` now."""

    @abstractmethod
    def read_feedback(self, agent: str, reply: str) -> None:
        """Take a helper's reply into account."""

    @abstractmethod
    def take_text(self) -> str:
        """The text written since the last call (it goes into the next turn)."""

    @abstractmethod
    def answer(self) -> str:
        """The final response, stating the current candidate answer."""

    @abstractmethod
    def signals(self) -> SolverSignals:
        """The current confidence signals."""

    @property
    def errors(self) -> int:
        """Wrong steps written so far (ground truth for analysis; never shown to the policy)."""
        return 0


@dataclass
class _Step:
    operator: str
    operand: int
    left: int
    result: int
    right: bool
    confidence: float
    self_check: bool
    confirmed: bool = False

    @property
    def text(self) -> str:
        return f"{self.left} {self.operator} {self.operand} = {self.result}"


class NoisyArithmeticSolver(Solver):
    """Scripted solver for the arithmetic family (see the module docstring for its model).

    It reads the chain from ``problem.metadata`` (``start`` and ``operations``, i.e. the
    question), never the reference answer or steps.

    Args:
        p_easy: chance of a wrong step at the lowest difficulty.
        p_hard: chance of a wrong step at ``max_difficulty``.
        max_difficulty: the difficulty at which ``p_hard`` applies.
        knowledge_factor: multiplies the chance of a slip on the step after a Knowledge consult.
        mu_right: mean confidence logit of a right step at the lowest difficulty.
        confidence_drop: how much that logit falls at ``max_difficulty``.
        mu_wrong: mean confidence logit of a wrong step.
        sigma: spread of the confidence logit.
        q_right: chance the self-check passes on a right step.
        q_wrong: chance the self-check passes on a wrong step.
    """

    def __init__(
        self,
        p_easy: float = 0.03,
        p_hard: float = 0.4,
        max_difficulty: float = 10.0,
        knowledge_factor: float = 0.8,
        mu_right: float = 2.5,
        confidence_drop: float = 1.0,
        mu_wrong: float = -0.5,
        sigma: float = 1.0,
        q_right: float = 0.9,
        q_wrong: float = 0.4,
    ) -> None:
        for name, value in {
            "p_easy": p_easy,
            "p_hard": p_hard,
            "knowledge_factor": knowledge_factor,
            "q_right": q_right,
            "q_wrong": q_wrong,
        }.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability or factor in [0, 1], got {value}")
        if max_difficulty <= 1 or sigma <= 0:
            raise ValueError(
                f"max_difficulty must exceed 1 and sigma be positive, got {max_difficulty}, {sigma}"
            )
        self.p_easy, self.p_hard, self.max_difficulty = p_easy, p_hard, max_difficulty
        self.knowledge_factor = knowledge_factor
        self.mu_right, self.confidence_drop, self.mu_wrong, self.sigma = (
            mu_right,
            confidence_drop,
            mu_wrong,
            sigma,
        )
        self.q_right, self.q_wrong = q_right, q_wrong
        self._rng = np.random.default_rng(0)
        self._start = 0
        self._operations: list[tuple[str, int]] = []
        self._hardness = 0.5
        self._steps: list[_Step] = []
        self._pending: list[str] = []
        self._careful = False
        self._errors = 0

    # -- Solver API ----------------------------------------------------------------------------

    def start(self, problem: Problem, rng: np.random.Generator) -> None:
        metadata = problem.metadata
        if "start" not in metadata or "operations" not in metadata:
            raise ValueError(
                f"problem {problem.id!r} has no 'start'/'operations' metadata: NoisyArithmeticSolver "
                "solves the built-in arithmetic family (aipo_env.tasks.arithmetic.ArithmeticTask); "
                "pass a Solver of your own for other tasks"
            )
        self._rng = rng
        self._start = int(metadata["start"])
        self._operations = [(str(op), int(operand)) for op, operand in metadata["operations"]]
        self._hardness = self.hardness(problem.difficulty)
        self._steps, self._pending = [], []
        self._careful, self._errors = False, 0

    def write_step(self) -> None:
        if len(self._steps) < len(self._operations):
            self._steps.append(self._draw_step(len(self._steps)))
            self._pending.append(self._steps[-1].text)

    def query(self, agent: str) -> str:
        if agent == "verify":
            if not self._steps:
                return f"Is it right to start with {self._start}?"
            return f"Is {self._steps[-1].text} correct?"
        if agent == "knowledge":
            index = min(len(self._steps), len(self._operations) - 1)
            operator = self._operations[index][0] if self._operations else "+"
            return f"How do I {_VERBS[operator]} numbers correctly?"
        return "What is the next step?"

    def read_feedback(self, agent: str, reply: str) -> None:
        if agent == "reasoning":
            self._adopt_step(reply)
        elif agent == "verify" and self._steps:
            self._apply_verdict(reply)
        elif agent == "knowledge":
            self._careful = True

    def take_text(self) -> str:
        text = "\n".join(self._pending)
        self._pending = []
        return text

    def answer(self) -> str:
        return f"The answer is \\boxed{{{self._value()}}}."

    def signals(self) -> SolverSignals:
        unconfirmed = [step.confidence for step in self._steps if not step.confirmed]
        last = self._steps[-1] if self._steps else None
        logprobs = [math.log(max(step.confidence, 1e-6)) for step in self._steps]
        return SolverSignals(
            steps_written=len(self._steps),
            steps_total=len(self._operations),
            step_confidence=1.0 if last is None else last.confidence,
            min_confidence=min(unconfirmed, default=1.0),
            mean_logprob=sum(logprobs) / len(logprobs) if logprobs else 0.0,
            self_check_failed=last is not None and not last.self_check,
            last_step_confirmed=last is not None and last.confirmed,
            has_candidate=len(self._steps) == len(self._operations),
        )

    @property
    def errors(self) -> int:
        return self._errors

    # -- the noise model -----------------------------------------------------------------------

    def hardness(self, difficulty: object) -> float:
        """``t = (d - 1) / (D - 1)`` clipped to ``[0, 1]``; 0.5 for an unknown difficulty."""
        if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float)):
            return 0.5
        return float(np.clip((difficulty - 1) / (self.max_difficulty - 1), 0.0, 1.0))

    def error_rate(self, difficulty: object) -> float:
        """``P(wrong step) = p_easy + (p_hard - p_easy) * t`` (before any Knowledge consult)."""
        return self.p_easy + (self.p_hard - self.p_easy) * self.hardness(difficulty)

    def _draw_step(self, index: int) -> _Step:
        operator, operand = self._operations[index]
        left = self._steps[-1].result if self._steps else self._start
        true_result = apply_operation(left, operator, operand)
        p_wrong = self.p_easy + (self.p_hard - self.p_easy) * self._hardness
        if self._careful:
            p_wrong *= self.knowledge_factor
            self._careful = False
        right = bool(self._rng.random() >= p_wrong)
        result = true_result
        if not right:
            slips = (*_SLIPS, -operand, operand) if operator == "*" else _SLIPS
            result += int(self._rng.choice(slips))
            self._errors += 1
        mu = self.mu_right - self.confidence_drop * self._hardness if right else self.mu_wrong
        confidence = 1.0 / (1.0 + math.exp(-float(self._rng.normal(mu, self.sigma))))
        passes = self.q_right if right else self.q_wrong
        return _Step(operator, operand, left, result, right, confidence, bool(self._rng.random() < passes))

    # -- reading the helpers -------------------------------------------------------------------

    def _adopt_step(self, reply: str) -> None:
        """Take a revealed ``Step n: a op b = c`` as step ``n``, dropping own steps from there."""
        found = _STEP.search(reply)
        if found is None:
            if "already written" in reply:
                for step in self._steps:
                    step.confirmed = True
            return
        number = int(found.group(1))
        left, operator, operand, result = (
            int(found.group(2)),
            found.group(3),
            int(found.group(4)),
            int(found.group(5)),
        )
        if not 1 <= number <= len(self._operations):
            return
        del self._steps[number - 1 :]
        self._steps.append(_Step(operator, operand, left, result, True, 1.0, True, confirmed=True))

    def _apply_verdict(self, reply: str) -> None:
        verdict = reply.strip().lower()
        if verdict.startswith("correct"):
            for step in self._steps:
                step.confirmed = True
        elif verdict.startswith("incorrect"):
            self._redo_from(len(self._steps) - 1)
        elif "not a step" in verdict:
            first = next((i for i, step in enumerate(self._steps) if not step.confirmed), None)
            if first is not None:
                self._redo_from(first)

    def _redo_from(self, index: int) -> None:
        count = len(self._steps) - index
        del self._steps[index:]
        for _ in range(count):
            self.write_step()

    def _value(self) -> int:
        return self._steps[-1].result if self._steps else self._start
