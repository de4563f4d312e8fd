"""Multiple choice: the GPQA adapter on fixture files, option shuffling, letter extraction, the env."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.tasks.choice_extraction import extract_choice
from aipo_env.tasks.loading import DataError
from aipo_env.tasks.multiple_choice import multiple_choice_task, option_order

FIXTURES = Path(__file__).parent / "fixtures"
GPQA_FILES = [FIXTURES / "gpqa_sample.csv", FIXTURES / "gpqa_sample.jsonl"]
CHOICES = ["10 m/s", "14 m/s", "200 m/s", "20 m/s"]


def source_rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- the GPQA adapter -------------------------------------------------------------------------


@pytest.mark.parametrize("path", GPQA_FILES, ids=lambda path: path.suffix)
def test_gpqa_file_gives_lettered_options_and_tracks_the_correct_one(path):
    task = multiple_choice_task("gpqa", data_path=str(path))
    rows = source_rows(path)
    assert len(task) == len(rows)
    for index, row in enumerate(rows):
        problem = task.problem(index)
        choices = problem.metadata["choices"]
        options = [row["Correct Answer"], *(row[f"Incorrect Answer {k}"] for k in (1, 2, 3))]
        assert sorted(choices) == sorted(option.strip() for option in options)
        assert choices["ABCD".index(problem.answer)] == row["Correct Answer"].strip()
        assert problem.question.startswith(row["Question"].strip())
        listed = [line for line in problem.question.splitlines() if line[:3] in {"(A)", "(B)", "(C)", "(D)"}]
        assert listed == [f"({letter}) {choice}" for letter, choice in zip("ABCD", choices, strict=True)]
        assert problem.id == f"gpqa-{row['Record ID']}" and problem.source == "gpqa"
        assert bool(problem.steps) == bool(row.get("Explanation", "").strip())
        assert problem.metadata["domain"] == row["High-level domain"]
        json.dumps(dict(problem.metadata))
        assert task.score(problem, f"\\boxed{{{problem.answer}}}").reward == 1.0
        wrong = next(letter for letter in "ABCD" if letter != problem.answer)
        assert task.score(problem, f"Answer: {wrong}").reward == 0.0


def test_parquet_file_reads_like_jsonl(tmp_path):
    path = tmp_path / "gpqa.parquet"
    pq.write_table(pa.Table.from_pylist(source_rows(GPQA_FILES[1])), path)
    from_parquet = multiple_choice_task("gpqa", data_path=str(path), shuffle_seed=5)
    from_jsonl = multiple_choice_task("gpqa", data_path=str(GPQA_FILES[1]), shuffle_seed=5)
    assert from_parquet.problems == from_jsonl.problems


def test_steps_come_from_the_explanation():
    problem = multiple_choice_task("gpqa", data_path=str(GPQA_FILES[0])).problem(0)
    assert problem.steps[-1] == "So T = 2 * 300 K = 600 K."
    assert len(problem.steps) == 3


def test_limit_keeps_the_first_questions():
    task = multiple_choice_task("gpqa", data_path=str(GPQA_FILES[1]), limit=2)
    assert [task.problem(i).id for i in range(len(task))] == ["gpqa-fx-seq", "gpqa-fx-light"]


# -- shuffling --------------------------------------------------------------------------------


def orders(shuffle_seed: int) -> list[list[str]]:
    task = multiple_choice_task("builtin", shuffle_seed=shuffle_seed)
    return [list(task.problem(i).metadata["choices"]) for i in range(len(task))]


def test_shuffle_is_deterministic_and_depends_on_seed_and_row():
    assert orders(7) == orders(7)
    assert orders(7) != orders(8)
    permutations = {tuple(option_order(4, 7, row)) for row in range(12)}
    assert len(permutations) > 3, "rows with the same seed should not share one order"


def test_the_correct_answer_lands_on_every_letter():
    letters = {
        multiple_choice_task("builtin", shuffle_seed=seed).problem(i).answer
        for seed in range(3)
        for i in range(12)
    }
    assert letters == set("ABCD")


def test_shuffle_does_not_depend_on_the_hash_seed():
    code = "from aipo_env.tasks.multiple_choice import option_order; print([option_order(4, 3, r) for r in range(6)])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert outputs == {f"{[option_order(4, 3, r) for r in range(6)]}\n"}


# -- letter extraction ------------------------------------------------------------------------

STATED_C = [
    "\\boxed{C}",
    "Therefore the answer is $\\boxed{\\text{C}}$.",
    "\\boxed{(C)}",
    "$\\boxed{\\textbf{(C)}}$",
    "Answer: C",
    "ANSWER: (C)",
    "Working through the kinematics gives 200 m/s.\nSo the answer is (C).",
    "The correct answer is option C, since the others fail.",
    "**Answer:** C",
    "**Final Answer**: C",
    "Final answer: **C**",
    "Let me compare the options carefully.\n\n**C**",
    "Putting it together: (C)",
    "C.",
    "C",
    "So, C.",
    "I'd pick (C)",
    "Answer: A\nWait, that ignores the height. The answer is \\boxed{C}.",
    "The answer is \\boxed{A}.\nHmm, no: v^2 = 2gh, so it must be (C).",
    "\\boxed{200 m/s}",
    "The answer is 200 m/s.",
    "200 m/s",
    "(C) 200 m/s",
    "Answer: C\nFor comparison, (A) and (B) are far too small.",
    "My final choice is **(C)**.",
    "Is the answer (C)?",
    "A careful estimate gives (C)",
]

NOT_AN_ANSWER = [
    "",
    "I am not sure which option is right.",
    "I think it's between (A) and (C).",
    "It could be (B) or (D).",
    "The answer is not (B).",
    "Options A, B, C and D all look plausible at first.",
    "(A) seems too small, (B) ignores gravity, and (C) is far too large.",
    "The answer choices (A) to (D) are all plausible.",
    "Let me check (A) first.\n(B) is wrong because of the units.",
    "B) is wrong because the units do not match",
    "This reminds me of how much we need vitamin C.",
    "Answer: E",
    "\\boxed{E}",
    "\\boxed{}",
    "The answer is D-glucose",
    "answer: c",
    "B is wrong, so C.",
]


@pytest.mark.parametrize("response", STATED_C)
def test_a_stated_answer_is_read(response):
    assert extract_choice(response, CHOICES)[0] == "C"


@pytest.mark.parametrize("response", NOT_AN_ANSWER)
def test_mentions_without_a_statement_are_not_an_answer(response):
    assert extract_choice(response, CHOICES) == (None, None)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ABCDE()*:.\\{}$ \nanswerisboxedtx")), max_size=120)
    | st.text(max_size=80)
)
def test_any_text_gives_a_letter_or_none_without_raising(response):
    letter, how = extract_choice(response, CHOICES)
    assert (letter is None) == (how is None)
    assert letter is None or letter in "ABCD"


def test_option_text_with_latex_matches():
    choices = ["H$_2$S", "CO$_2$", "BeCl$_2$", "CH$_4$"]
    assert extract_choice("The molecule is bent, so the answer is H_2S.", choices)[0] == "A"
    assert extract_choice("\\boxed{\\text{CO}_2}", ["x", "\\text{CO}_2", "y", "z"])[0] == "B"


def test_score_reports_letter_and_rule():
    task = multiple_choice_task("builtin")
    problem = task.problem(0)
    score = task.score(problem, f"Working... the answer is ({problem.answer}).")
    assert (score.reward, score.correct, score.extracted) == (1.0, True, problem.answer)
    assert score.details["matched_by"] in {"stated", "final_line"}
    assert task.score(problem, "No idea.").extracted is None


# -- bad input --------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_missing_field_names_file_row_and_field(tmp_path):
    rows = source_rows(GPQA_FILES[0])[:3]
    rows[1]["Incorrect Answer 2"] = ""
    path = write_csv(tmp_path / "broken.csv", rows)
    with pytest.raises(DataError, match=r"broken\.csv, row 2: missing field 'Incorrect Answer 2'"):
        multiple_choice_task("gpqa", data_path=str(path))


def test_missing_column_in_jsonl_names_the_field(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps({"question": "lower-case keys", "Correct Answer": "1"}) + "\n")
    with pytest.raises(DataError, match=r"broken\.jsonl, row 1: missing field 'Question'"):
        multiple_choice_task("gpqa", data_path=str(path))


def test_missing_file_and_unknown_dataset_are_explained(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        multiple_choice_task("gpqa", data_path=str(tmp_path / "absent.csv"))
    with pytest.raises(ValueError, match="builtin, gpqa"):
        multiple_choice_task("mmlu")
    with pytest.raises(ValueError, match="dataset='gpqa'"):
        multiple_choice_task("builtin", data_path=str(GPQA_FILES[0]))


# -- the env ----------------------------------------------------------------------------------


def test_check_env_with_defaults():
    env = gym.make("aipo/MultipleChoice-v0")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_verify_agent_judges_a_candidate_letter_through_step():
    env = gym.make("aipo/MultipleChoice-v0", dataset="gpqa", data_path=str(GPQA_FILES[1]), reveal_answer=True)
    obs, info = env.reset(options={"index": 2})
    correct = info["problem"]["answer"]
    wrong = next(letter for letter in "ABCD" if letter != correct)
    obs, reward, terminated, _, _ = env.step(
        f'Maybe ({wrong}). <consult agent="verify">Is the answer \\boxed{{{wrong}}}?</consult>'
    )
    assert not terminated and f"Incorrect: {wrong} is not the right answer." in obs
    obs, reward, terminated, _, _ = env.step(
        f'<consult agent="verify">My answer is ({correct}). Right?</consult>'
    )
    assert f"Correct: {correct} is the right answer." in obs
    obs, reward, terminated, _, info = env.step(f"Final answer: {correct}")
    assert terminated and reward == 1.0 and info["correct"] and info["extracted_answer"] == correct
    env.close()


def test_knowledge_agent_sees_the_task_entries():
    env = gym.make("aipo/MultipleChoice-v0")
    env.reset(options={"index": 0})
    obs, *_ = env.step(
        '<consult agent="knowledge">How fast does a dropped stone fall from a height?</consult>'
    )
    assert "v^2 = 2 g h" in obs
    env.close()
