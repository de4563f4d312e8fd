"""The math task: adapters on small fixture files, data errors, the bundled set, real benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gymnasium.utils.env_checker import check_env

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.tasks.loading import DataError
from aipo_env.tasks.math import DATASETS, MathTask, math_task

MATH500_ROWS = [
    {
        "problem": "What is $\\frac{28}{6}$ in lowest terms?",
        "solution": "Divide by 2.\n[asy]\ndraw((0,0)--(1,1));\n[/asy]\nSo it is $\\boxed{\\frac{14}{3}}$.",
        "answer": "\\frac{14}{3}",
        "subject": "Prealgebra",
        "level": "Level 2",
    },
    {"problem": "Find $x$ if $x+1=3$.", "solution": "$x=\\boxed{2}$.", "answer": "2", "level": "Level ?"},
]
GSM8K_ROWS = [
    {
        "question": "Ann has 1,200 apples and buys 34 more. How many now?",
        "answer": "She has 1200+34=<<1200+34=1234>>1234 apples.\nThat is all.\n#### 1,234",
    },
    {"question": "What is 2 times 3?", "answer": "2*3=<<2*3=6>>6\n#### 6"},
]
AIME_ROWS = [
    {
        "id": 60,
        "problem": "Find 7 * 11.",
        "solution": "$7 \\cdot 11 = \\boxed{077}$",
        "answer": "077",
        "url": "u",
    },
    {"id": 61, "problem": "Find 5 + 5.", "solution": "It is $\\boxed{10}$.", "answer": "10"},
]
BUILTIN_ROWS = [
    {"id": "mine-1", "problem": "What is 2+2?", "answer": "4", "steps": ["2 + 2 = 4."], "difficulty": 1},
]
ROWS = {"math500": MATH500_ROWS, "gsm8k": GSM8K_ROWS, "aime": AIME_ROWS, "builtin": BUILTIN_ROWS}


def write_rows(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("dataset", sorted(ROWS))
def test_each_adapter_reads_its_format_and_scores_the_reference(tmp_path, dataset, suffix):
    task = math_task(dataset, data_path=write_rows(tmp_path / f"{dataset}{suffix}", ROWS[dataset]))
    assert len(task) == len(ROWS[dataset])
    for index in range(len(task)):
        problem = task.problem(index)
        assert problem.source == dataset and problem.steps
        assert task.score(problem, f"The answer is $\\boxed{{{problem.answer}}}$.").reward == 1.0
        assert task.score(problem, "The answer is $\\boxed{999}$.").reward == 0.0
    task.close()


def test_adapter_fields(tmp_path):
    math500 = math_task("math500", data_path=write_rows(tmp_path / "m.jsonl", MATH500_ROWS))
    first = math500.problem(0)
    assert (first.id, first.difficulty, first.metadata["subject"]) == ("math500-1", 2, "Prealgebra")
    assert not any("draw(" in step for step in first.steps)  # Asymptote figures are not steps
    assert math500.problem(1).difficulty is None  # MATH writes "Level ?" for a few problems
    as_int = math_task(
        "math500", data_path=write_rows(tmp_path / "i.jsonl", [{**MATH500_ROWS[1], "level": 4}])
    )
    assert as_int.problem(0).difficulty == 4

    gsm8k = math_task("gsm8k", data_path=write_rows(tmp_path / "g.jsonl", GSM8K_ROWS))
    problem = gsm8k.problem(0)
    assert problem.answer == "1234" and problem.id == "gsm8k-1"
    assert problem.steps == ("She has 1200+34=1234 apples.", "That is all.")
    reasoning = GSM8K_ROWS[0]["answer"]
    assert gsm8k.score(problem, reasoning).correct  # GSM8K's own "#### N" style
    assert gsm8k.score(problem, "#### 1,243").reward == 0.0

    aime = math_task("aime", data_path=write_rows(tmp_path / "a.jsonl", AIME_ROWS))
    assert [aime.problem(i).id for i in range(2)] == ["aime-60", "aime-61"]
    assert aime.score(aime.problem(0), "\\boxed{77}").correct


def test_limit_keeps_the_first_problems(tmp_path):
    task = math_task("gsm8k", data_path=write_rows(tmp_path / "g.jsonl", GSM8K_ROWS), limit=1)
    assert len(task) == 1 and task.problem(0).answer == "1234"
    with pytest.raises(IndexError):
        task.problem(1)


def test_missing_field_names_file_row_and_field(tmp_path):
    rows = [MATH500_ROWS[0], {key: value for key, value in MATH500_ROWS[1].items() if key != "answer"}]
    path = write_rows(tmp_path / "broken.parquet", rows)
    with pytest.raises(DataError, match=r"broken\.parquet, row 2: missing field 'answer'"):
        math_task("math500", data_path=path)


def test_gsm8k_answer_without_final_number_names_file_row_and_field(tmp_path):
    path = write_rows(tmp_path / "g.jsonl", [GSM8K_ROWS[0], {"question": "q", "answer": "no marker"}])
    with pytest.raises(DataError, match=r"g\.jsonl, row 2: field 'answer' must end with a '#### <number>'"):
        math_task("gsm8k", data_path=path)


def test_bad_json_and_missing_file_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(AIME_ROWS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, row 2: not valid JSON"):
        math_task("aime", data_path=path)
    with pytest.raises(DataError, match=r"nowhere\.jsonl: no such data file"):
        math_task("aime", data_path=tmp_path / "nowhere.jsonl")


def test_repeated_ids_are_refused(tmp_path):
    path = write_rows(tmp_path / "a.jsonl", [AIME_ROWS[0], AIME_ROWS[0]])
    with pytest.raises(DataError, match=r"row 2: field 'id' repeats problem id 'aime-60'"):
        math_task("aime", data_path=path)


def test_unknown_dataset_lists_the_accepted_ones():
    with pytest.raises(ValueError, match="math500") as error:
        math_task("math5000")
    assert all(name in str(error.value) for name in DATASETS)


def test_builtin_set_is_varied_and_its_solutions_are_right():
    task = math_task()
    assert 10 <= len(task) <= 20 and len({task.problem(i).id for i in range(len(task))}) == len(task)
    assert len({task.problem(i).metadata["topic"] for i in range(len(task))}) >= 5
    for index in range(len(task)):
        problem = task.problem(index)
        assert len(problem.steps) >= 2
        # the last step states the answer; boxed, it must score 1
        worked = "\n".join(problem.steps) + f"\nSo the answer is $\\boxed{{{problem.answer}}}$."
        assert task.score(problem, worked).correct, problem.id


def test_math_env_defaults_pass_check_env_and_play_offline():
    env = gym.make("aipo/Math-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(options={"index": 8})
    assert "196" in obs and info["problem"]["source"] == "builtin"
    obs, reward, terminated, _, info = env.step(
        '<consult agent="verify">Is the answer \\boxed{12}?</consult>'
    )
    assert not terminated and "Incorrect" in obs
    obs, reward, terminated, _, info = env.step("So there are \\boxed{9} divisors.")
    assert terminated and reward == 1.0 and info["correct"] and info["score_details"] == {"timed_out": False}
    env.close()


def test_math_env_scores_from_a_thread(tmp_path):
    """Scoring from a worker thread (a threaded rollout loop) goes through the worker process."""
    from concurrent.futures import ThreadPoolExecutor

    env = gym.make("aipo/Math-v0", dataset="aime", data_path=write_rows(tmp_path / "a.jsonl", AIME_ROWS))
    env.reset(options={"index": 0})
    with ThreadPoolExecutor(max_workers=1) as thread:
        _, reward, terminated, _, info = thread.submit(env.step, "\\boxed{77}").result()
    assert terminated and reward == 1.0 and info["extracted_answer"] == "77"
    env.close()


def test_math_task_needs_problems():
    with pytest.raises(ValueError):
        MathTask([])


# -- the real benchmarks --------------------------------------------------------------------------


def own_and_other_rewards(task: MathTask, responses: list[str]) -> tuple[int, int]:
    """How many problems its own response solves, and how many the next problem's response does."""
    own = sum(task.score(task.problem(i), responses[i]).correct for i in range(len(task)))
    other = sum(task.score(task.problem(i), responses[(i + 1) % len(task)]).correct for i in range(len(task)))
    return own, other


@pytest.mark.slow
def test_math500_reference_solutions_through_the_env(shared_data):
    env = gym.make("aipo/Math-v0", dataset="math500", data_path=str(shared_data / "math500.jsonl"))
    solutions = [json.loads(line)["solution"] for line in (shared_data / "math500.jsonl").open()]
    assert len(solutions) == 500

    def reward(index: int, response: str) -> float:
        env.reset(options={"index": index})
        return env.step(response)[1]

    own = sum(reward(i, solutions[i]) for i in range(500))
    other = sum(reward(i, solutions[(i + 1) % 500]) for i in range(500))
    assert own >= 499
    assert other <= 0.02 * 500
    env.close()


@pytest.mark.slow
def test_gsm8k_reference_reasoning_and_final_number(shared_data):
    task = math_task("gsm8k", data_path=shared_data / "gsm8k_test.jsonl")
    boxed = [
        "\n".join(task.problem(i).steps) + f"\nThe answer is \\boxed{{{task.problem(i).answer}}}."
        for i in range(len(task))
    ]
    native = [json.loads(line)["answer"] for line in (shared_data / "gsm8k_test.jsonl").open()]
    for responses in (boxed, native):
        own, other = own_and_other_rewards(task, responses)
        assert own >= 0.998 * len(task)
        assert other <= 0.02 * len(task)


@pytest.mark.slow
def test_aime_reference_solutions(shared_data):
    task = math_task("aime", data_path=shared_data / "aime2024.jsonl")
    solutions = [json.loads(line)["solution"] for line in (shared_data / "aime2024.jsonl").open()]
    own, other = own_and_other_rewards(task, solutions)
    assert own == len(task) == 30
    assert other <= 0.02 * 30
