"""``aipo demo``: the pipeline runs end to end on a small budget and writes complete, well-formed outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from aipo.cli import app
from aipo.demo.config import EXAMPLES, ablation_config, arm_config, load_demo_config
from aipo_env.tasks.base import Problem, written_solution
from policies.demonstrations import solution_turns, warmup_demonstrations

TINY_BUDGET = [
    "warmup.demonstrations=40",
    "warmup.steps=3",
    "warmup.batch_size=8",
    "eval.problems=3",
    "eval.shifted_problems=3",
    "eval.samples=16",
    "eval.easy_problems=2",
    "eval.curve_every=1",
    "eval.curve_problems=2",
    "eval.curve_samples=1",
    "rl_overrides=[steps=2, rollout.problems_per_step=2, rollout.group_size=2, rollout.max_new_tokens=24]",
    "progress=false",
]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


ARMS = {"grpo_alone", "grpo", "aipo", "trajectory", "raw", "aipo_rloo", "aipo_own_voice", "sft"}


@pytest.mark.slow
def test_quick_demo_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", *TINY_BUDGET, f"output_dir={out}", "--seeds", "3"])
    assert result.exit_code == 0, result.output
    for name in ("demo.json", "results.md", "learning_curves.png", "pass_at_k.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "demo.json").read_text())
    assert set(saved["seeds"]) == {"3"}
    assert set(saved["summary"]) == {"warm-up", *ARMS}
    arms = saved["settings"]["arms"]
    assert arms["grpo"]["loss"]["agent_mode"] == "mask" and arms["aipo"]["loss"]["agent_mode"] == "aipo"
    assert arms["trajectory"]["rollout"]["reference_per_group"] == 1
    assert arms["aipo_rloo"]["loss"]["advantage_scale"] == "loo"
    assert saved["settings"]["demo"]["eval_env"] == {
        "id": "aipo/ArithmeticRule-v0",
        "kwargs": {**arms["grpo_alone"]["env"]["kwargs"], "split": "test"},  # the first arm
    }
    shifted_env = saved["settings"]["demo"]["shifted_env"]
    assert shifted_env["kwargs"] == {**saved["settings"]["demo"]["eval_env"]["kwargs"], "operations": 3}
    for model, numbers in saved["summary"].items():
        assert set(numbers["pass_at_k"]) == {str(k) for k in range(1, 17)}, model
        curve = [numbers["pass_at_k"][str(k)]["mean"] for k in range(1, 17)]
        assert all(0.0 <= value <= 1.0 for value in curve) and curve == sorted(curve)
        assert numbers["accuracy"]["values"] == [saved["seeds"]["3"][model]["accuracy"]]
    seed = saved["seeds"]["3"]
    assert set(saved["paired"]) == {"warm-up", *ARMS} - {"aipo"}
    assert saved["paired"]["grpo"]["mean"] == pytest.approx(
        seed["aipo"]["accuracy"] - seed["grpo"]["accuracy"]
    )
    # every model played the same problems of both splits; each has an interval around its accuracy
    assert len({tuple(seed[model]["problems"]) for model in seed}) == 1
    assert len({tuple(seed[model]["shifted"]["problems"]) for model in seed}) == 1
    assert len(seed["aipo"]["shifted"]["per_problem_correct"]) == 3
    intervals = saved["intervals"]
    assert intervals["held_out"]["problems"] == 3 and intervals["shifted"]["samples"] == 16
    for split, numbers in (("held_out", lambda run: run), ("shifted", lambda run: run["shifted"])):
        for model in ("warm-up", *ARMS):
            accuracy = intervals[split]["models"][model]["accuracy"]
            assert accuracy["estimate"] == pytest.approx(numbers(seed[model])["accuracy"])
            assert 0.0 <= accuracy["low"] <= accuracy["estimate"] <= accuracy["high"] <= 1.0
        paired = intervals[split]["paired"]["grpo"]["accuracy"]
        assert paired["estimate"] == pytest.approx(
            numbers(seed["aipo"])["accuracy"] - numbers(seed["grpo"])["accuracy"]
        )
        assert paired["distinguishable"] == (paired["low"] > 0 or paired["high"] < 0)
        assert paired["verdict"] == (
            "distinguishable from 0" if paired["distinguishable"] else "not distinguishable"
        )
    assert arms["aipo_own_voice"]["loss"]["agent_mode"] == "own_voice"
    for arm in ("aipo", "aipo_own_voice"):  # the key tokens alone and in a reply, for both contexts' learners
        curve = seed[arm]["curve"]
        assert [point["step"] for point in curve] == [0, 1, 2]
        assert all("key_logprob_alone" in point and "key_logprob_in_reply" in point for point in curve)
    run = seed["aipo"]
    assert [row["step"] for row in run["training"]] == [1, 2]
    assert all("charts/agent_tokens_learned" in row for row in run["training"])
    learned = sum(row["charts/agent_tokens_learned"] for row in run["training"])
    control = seed["sft"]
    assert control["matched_helper_tokens"] == round(learned)
    assert learned <= control["solution_tokens"] < learned + 32 * 60  # within one batch of 32 solutions
    for arm in ARMS:
        assert (out / "seed-3" / arm / "final" / "config.json").is_file(), arm
    table = (out / "results.md").read_text()
    assert all(f"| {model} |" in table for model in ("warm-up", *ARMS))
    assert "pass@16" in table and "aipo − grpo " in table and "wall time" in result.output
    assert "shifted accuracy" in table and "| aipo − baseline, shifted |" in table
    assert "distinguishable" in table and "distinguishable" in result.output

    # a saved model re-evaluated with `aipo eval` on other problems of the recorded split
    held_out = saved["settings"]["demo"]["eval_env"]
    evaluated = CliRunner().invoke(
        app,
        [
            "eval", str(EXAMPLES / "eval_rule.yaml"), f"model.name_or_path={out / 'seed-3' / 'sft' / 'final'}",
            f"env.id={held_out['id']}", f"env.kwargs={json.dumps(held_out['kwargs'])}", "problems=2",
            "samples=2", f"output_dir={tmp_path / 'eval'}", "progress=false",
        ],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output

    again = CliRunner().invoke(
        app, ["demo", "--quick", *TINY_BUDGET, f"output_dir={out}", "--seeds", "3", "reuse_seeds=true"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads((out / "demo.json").read_text())["summary"] == saved["summary"]


@pytest.mark.slow
def test_the_earlier_experiment_runs_with_a_fresh_warmup(tmp_path: Path) -> None:
    out = tmp_path / "arithmetic"
    result = CliRunner().invoke(
        app, ["demo", "--task", "arithmetic", "--warmup", "fresh", *TINY_BUDGET, f"output_dir={out}"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "demo.json").read_text())
    assert saved["settings"]["demo"]["warmup"]["source"] == "fresh"
    assert saved["settings"]["demo"]["eval_env"]["id"] == "aipo/Arithmetic-v0"
    assert (out / "seed-0" / "warmup" / "config.json").is_file()  # trained here, not the shipped one
    assert set(saved["summary"]) == {"warm-up", "grpo", "aipo"}


def test_every_model_plays_300_held_out_problems_and_a_shifted_split_that_no_arm_trains_on(
    tmp_path: Path,
) -> None:
    import gymnasium as gym

    from aipo.demo.config import eval_splits, rl_arms
    from algorithms.evaluation import spread_problems

    def questions(env: dict) -> list[str]:
        task = gym.make(env["id"], **env["kwargs"]).unwrapped.task
        return [task.problem(index).question for index in range(len(task))]

    demo = load_demo_config(EXAMPLES / "demo.yaml")
    (held_out, problems), (shifted, shifted_problems) = eval_splits(demo).values()
    assert held_out["id"] == "aipo/ArithmeticRule-v0" and held_out["kwargs"]["split"] == "test"
    test = questions(held_out)
    assert len(spread_problems(held_out["id"], held_out["kwargs"], problems)) == len(test) >= 300  # all
    assert shifted["kwargs"] == {**held_out["kwargs"], "operations": 3}
    assert len(spread_problems(shifted["id"], shifted["kwargs"], shifted_problems)) >= 300
    shifted_test = set(questions(shifted))
    for arm in rl_arms(demo):
        train = arm_config(demo, arm, 0, tmp_path)
        assert train.env.id == held_out["id"] and train.env.kwargs["split"] == "train", arm
        asked = set(questions({"id": train.env.id, "kwargs": train.env.kwargs}))
        assert not set(test) & asked and not shifted_test & asked, arm


def test_the_arms_differ_only_in_what_they_test(tmp_path: Path) -> None:
    demo = load_demo_config(EXAMPLES / "demo_full.yaml")
    configs = {
        arm: arm_config(demo, arm, 0, tmp_path).model_dump()
        for arm in ("grpo", "aipo", "raw", "aipo_rloo", "aipo_own_voice", "trajectory")
    }
    for config in configs.values():
        config.pop("output_dir")
    aipo = configs["aipo"]

    def differences(arm: str) -> dict:
        flat = {}
        for section, values in configs[arm].items():
            for key, value in values.items() if isinstance(values, dict) else [(None, values)]:
                base = aipo[section][key] if key is not None else aipo[section]
                if value != base:
                    flat[f"{section}.{key}" if key else section] = value
        return flat

    assert differences("grpo") == {"loss.agent_mode": "mask"}
    assert differences("raw") == {"loss.agent_mode": "raw"}
    assert differences("aipo_rloo") == {"loss.advantage_scale": "loo"}
    assert differences("aipo_own_voice") == {"loss.agent_mode": "own_voice"}
    trajectory = differences("trajectory")
    assert trajectory["loss.agent_mode"] == "luffy" and trajectory["rollout.reference_per_group"] == 1
    assert trajectory["env.kwargs"]["consult"] == "off"
    ablation = ablation_config(demo, ["mask", "raw", "luffy", "aipo", "own_voice"])
    modes = {arm: arm_config(ablation, arm, 0, tmp_path).loss.agent_mode for arm in ablation.arms}
    assert modes == {"mask": "mask", "raw": "raw", "luffy": "luffy", "aipo": "aipo", "own_voice": "own_voice"}


def test_a_control_arm_must_match_an_earlier_rl_arm() -> None:
    with pytest.raises(ValueError, match="match='aipo' must name an earlier rl arm"):
        load_demo_config(
            EXAMPLES / "demo.yaml", ["arms={grpo: {config: demo_rule.yaml}, sft: {kind: sft, match: aipo}}"]
        )


def test_bad_demo_settings_exit_with_the_key_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--quick", "warmup.stepz=3", f"output_dir={tmp_path}"])
    assert result.exit_code == 2 and "warmup.stepz" in result.output


def test_demonstrations_ask_for_the_steps_they_do_not_write() -> None:
    turns = solution_turns(("7 + 5 = 12", "12 * 3 = 36"), "36", consulted=[2])
    assert turns == ['Step 1: 7 + 5 = 12\n<consult agent="reasoning">next step</consult>', "\\boxed{36}"]
    records = warmup_demonstrations({"level": [1, 2], "max_turns": 4, "max_consults": 3}, 30, 0.5, seed=1)
    assert all(record.correct for record in records)
    consulting = [record for record in records if record.consults["reasoning"] > 0]
    assert 0 < len(consulting) < len(records)


def test_a_demonstration_without_consults_is_the_written_solution() -> None:
    problem = Problem("p", "question", "36", "arithmetic", steps=("7 + 5 = 12", "12 * 3 = 36"))
    assert solution_turns(problem.steps, problem.answer, ()) == [written_solution(problem)]
    assert written_solution(problem) == "Step 1: 7 + 5 = 12\nStep 2: 12 * 3 = 36\n\\boxed{36}"


def test_until_done_demonstrations_ask_until_the_agent_says_every_step_is_written() -> None:
    turns = solution_turns(("7 + 5 = 12", "12 * 3 = 36"), "36", consulted=[2], confirm=True)
    consult = '<consult agent="reasoning">next step</consult>'
    assert turns == [f"Step 1: 7 + 5 = 12\n{consult}", consult, "\\boxed{36}"]
    kwargs = {"level": [1, 2], "max_turns": 4, "max_consults": 3}
    records = warmup_demonstrations(kwargs, 40, 0.5, seed=2, style="until_done")
    assert all(record.correct for record in records)
    consulting = [record for record in records if record.consults["reasoning"] > 0]
    assert consulting and len(consulting) < len(records)
    for record in consulting:  # the last reply before the answer is the agent's "all steps written"
        replies = [segment.text for segment in record.segments if segment.source == "agent"]
        assert "All steps of the solution are already written" in replies[-1]
    with pytest.raises(ValueError, match="style"):
        warmup_demonstrations(kwargs, 4, 0.5, style="sometimes")


def test_a_hard_share_adds_hard_train_problems_solved_alone_and_continues_a_saved_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aipo.demo import run as demo

    seen: dict = {}

    def record(policy, records, settings):
        seen["records"], seen["weights"] = records, next(policy.model.parameters()).detach().clone()
        return []

    monkeypatch.setattr(demo, "supervised_warmup", record)
    config = load_demo_config(
        EXAMPLES / "demo_quick.yaml", ["warmup.demonstrations=40", "warmup.hard_share=0.1"]
    )
    demo.warm_up(config, 0, tmp_path / "first", hard_level=3)
    levels = [record.problem_id.split("-")[2] for record in seen["records"]]
    assert levels.count("L3") == 4 and set(levels) == {"L1", "L2", "L3"}
    hard = [record for record in seen["records"] if "-L3-" in record.problem_id]
    assert all(r.correct and not r.consults.get("reasoning") and "-train-" in r.problem_id for r in hard)
    assert "*" in "".join(record.transcript for record in hard)  # the hard skill is shown

    saved = dict(seen)
    later = load_demo_config(EXAMPLES / "demo_quick.yaml", [f"model.name_or_path={tmp_path / 'first'}"])
    demo.warm_up(later, 1, tmp_path / "second", hard_level=3)
    assert all("-L3-" not in record.problem_id for record in seen["records"])  # hard_share 0: none
    assert torch.equal(seen["weights"], saved["weights"])  # started from the saved model, not a fresh one
    provenance = yaml.safe_load((tmp_path / "second" / "warmup.yaml").read_text())
    assert provenance["started_from"] == str(tmp_path / "first") and provenance["hard_share"] == 0.0
    with pytest.raises(ValueError, match="hard_share"):
        load_demo_config(EXAMPLES / "demo_quick.yaml", ["warmup.hard_share=1.5"])


def test_every_example_config_loads() -> None:
    """Each examples/*.yaml loads under the schema of the command its header runs it with."""
    from algorithms.config import EvalConfig, TrainConfig, load_config

    loaded = set()
    for path in sorted(EXAMPLES.glob("*.yaml")):
        header = path.read_text().split("\n#   ", 1)[1]
        if header.startswith("aipo demo"):
            config = load_demo_config(path)
            assert all(arm.config.is_file() for arm in config.arms.values() if arm.kind == "rl"), path
        else:
            load_config(EvalConfig if header.startswith("aipo eval") else TrainConfig, path)
        loaded.add(path.name)
    assert {"demo.yaml", "demo_full.yaml", "demo_quick.yaml", "demo_arithmetic.yaml", "demo_rule.yaml",
            "demo_rare.yaml", "eval_rule.yaml"} <= loaded  # fmt: skip


def test_key_token_contexts_are_the_tokens_a_consulting_rollout_sees() -> None:
    import gymnasium as gym

    from aipo.demo.curve import CONSULT, key_contexts
    from algorithms.rollout import tokenize_episode
    from policies import HFPolicy
    from policies.base import Action

    policy = HFPolicy.from_pretrained("warmup:arithmetic", device="cpu", max_new_tokens=8)
    kwargs = {"operations": 2, "max_turns": 4, "max_consults": 3, "instructions": False}
    item = key_contexts(kwargs, 1)[0]
    env = gym.make("aipo/ArithmeticRule-v0", **{**kwargs, "split": "test"})
    task = env.unwrapped.task
    index = next(i for i in range(len(task)) if task.problem(i).question in item["prompt"])
    env.reset(options={"index": index})
    env.step(CONSULT)
    *_, info = env.step("\\boxed{0}")
    episode = tokenize_episode(policy, info["episode"], [Action(CONSULT), Action("\\boxed{0}")], group=0)
    context = policy.encode_prompt(item["prompt"])
    for segment in item["in_reply"]:
        context = context + policy.encode_text(segment)
    key = policy.encode_text(item["key"])
    assert item["key"] == task.problem(index).steps[0].split(" =")[0]
    assert episode.token_ids[: len(context) + len(key)] == context + key


def test_the_control_matches_the_helper_tokens_an_arm_learned_from_or_saw(tmp_path: Path) -> None:
    from aipo.demo.control import helper_tokens
    from algorithms.run_log import RunLog

    demo = load_demo_config(EXAMPLES / "demo.yaml", [f"output_dir={tmp_path}"])
    run = arm_config(demo, "aipo", 0, "warmup:arithmetic")
    log = RunLog(run.output_dir)
    log.log(1, {"rollout/agent_tokens": 10.0, "charts/agent_tokens_learned": 120.0})
    log.log(2, {"rollout/agent_tokens": 20.5, "charts/agent_tokens_learned": 0.0})
    log.close()
    episodes = run.rollout.problems_per_step * run.rollout.group_size
    assert helper_tokens(run, "learned") == 120
    assert helper_tokens(run, "seen") == round(30.5 * episodes)


def test_the_demo_runs_where_its_config_says_cpu_by_default(tmp_path: Path) -> None:
    demo = load_demo_config(EXAMPLES / "demo_quick.yaml")
    assert demo.device == "cpu" and arm_config(demo, "aipo", 0, tmp_path).device == "cpu"
    on_gpu = load_demo_config(EXAMPLES / "demo_quick.yaml", ["device=auto"])
    assert all(arm_config(on_gpu, arm, 0, tmp_path).device == "auto" for arm in ("aipo", "grpo"))
    with pytest.raises(ValueError, match="device"):
        load_demo_config(EXAMPLES / "demo_quick.yaml", ["device=tpu"])


def test_a_shared_warmup_is_trained_once_and_every_seed_starts_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aipo.demo import run as demo

    trained: list[tuple[int, Path]] = []

    def train(config, seed, directory, hard_level):
        trained.append((seed, directory))
        directory.mkdir(parents=True)
        (directory / "config.json").write_text("{}")
        return [{"loss": 1.0}]

    monkeypatch.setattr(demo, "warm_up", train)
    config = load_demo_config(
        EXAMPLES / "demo_quick.yaml",
        ["warmup.source=shared", "warmup.shared_seed=4", f"output_dir={tmp_path}"],
    )
    first, history = demo.warmup_model(config, 1, log=lambda _: None)
    again, none = demo.warmup_model(config, 2, log=lambda _: None)
    assert first == again == tmp_path / "warmup" and history and not none
    assert trained == [(4, tmp_path / "warmup")]  # once, with its own seed, not the first run's
    # a run elsewhere (e.g. one seed in a parallel process) takes it from warmup_from
    elsewhere = config.model_copy(update={"output_dir": tmp_path / "other", "warmup_from": tmp_path})
    assert demo.warmup_model(elsewhere, 3, log=lambda _: None)[0] == tmp_path / "warmup"
    assert len(trained) == 1
    fresh = config.model_copy(update={"warmup": config.warmup.model_copy(update={"source": "fresh"})})
    assert demo.warmup_model(fresh, 3, log=lambda _: None)[0] == tmp_path / "seed-3" / "warmup"
    assert trained[-1] == (3, tmp_path / "seed-3" / "warmup")  # per seed, with that seed


def test_a_warmup_is_saved_whole_and_a_parallel_runs_copy_is_kept(tmp_path: Path) -> None:
    from aipo.demo.run import save_whole

    def write(text: str):
        def into(partial: Path) -> None:
            partial.mkdir(parents=True)
            (partial / "config.json").write_text(text)

        return into

    def interrupted(partial: Path) -> None:
        partial.mkdir(parents=True)
        (partial / "config.json").write_text("{}")
        raise KeyboardInterrupt

    target = tmp_path / "run" / "warmup"
    with pytest.raises(KeyboardInterrupt):
        save_whole(target, interrupted)
    assert not target.exists()  # nothing a later run would take for a finished warm-up
    save_whole(target, write("first"))
    save_whole(target, write("second"))  # a parallel run finished first: its model stays
    assert (target / "config.json").read_text() == "first"
    assert sorted(path.name for path in target.parent.iterdir()) == ["warmup"]


def test_the_control_saves_a_plain_model_that_loads_after_its_run_moves(tmp_path: Path) -> None:
    from aipo.demo.control import train_control
    from algorithms.config import LoraConfig, ModelConfig
    from algorithms.models import load_policy

    warmup = tmp_path / "run" / "warmup"
    load_policy(ModelConfig(name_or_path="tiny"), torch.device("cpu"), trainable=False).save_pretrained(
        warmup
    )
    run = arm_config(load_demo_config(EXAMPLES / "demo_quick.yaml"), "aipo", 0, warmup)
    run = run.model_copy(update={"model": run.model.model_copy(update={"lora": LoraConfig(r=4, alpha=8)})})
    train_control(
        run,
        warmup,
        tokens=10,
        lr=1e-3,
        batch_size=2,
        directory=tmp_path / "run" / "sft",
        progress=False,
        steps=1,
    )
    final = tmp_path / "run" / "sft" / "final"
    assert (final / "config.json").is_file() and not (final / "adapter_config.json").exists()
    (tmp_path / "run").rename(tmp_path / "moved")
    moved = ModelConfig(name_or_path=str(tmp_path / "moved" / "sft" / "final"))
    assert load_policy(moved, torch.device("cpu"), trainable=False).model is not None
