"""The consult benchmark, ``aipo bench consult``: Stable-Baselines3 learners of *when to consult*
against fixed rules (:mod:`~aipo.bench_consult.benchmark`), and its table and frontier plot
(:mod:`~aipo.bench_consult.report`)."""

from aipo.bench_consult.benchmark import BASELINES, ConsultBenchConfig, command, run_benchmark

__all__ = ["BASELINES", "ConsultBenchConfig", "command", "run_benchmark"]
