"""The real-model experiment's diagnostics (key tokens, the helpers answering) read a finished run's saved models."""

import json
from pathlib import Path

import pytest
import torch

from aipo.demo.curve import key_contexts, key_logprobs
from aipo.real_rule.key_tokens import main, markdown, measure
from algorithms.config import ModelConfig
from algorithms.models import load_policy

RULE = {
    "operations": 2,
    "max_start": 18,
    "test_share": 0.5,
    "split": "test",
    "verb": "blick",
    "instructions": False,
}


def saved_run(run: Path, seeds: list[str]) -> ModelConfig:
    """A run directory as `aipo demo` leaves it, with fresh tiny models of different seeds."""
    base = ModelConfig(name_or_path="tiny")
    for number, place in enumerate(["warmup", *(f"seed-{seed}/aipo/final" for seed in seeds)], start=1):
        config = base.model_copy(update={"tiny": base.tiny.model_copy(update={"seed": number})})
        load_policy(config, torch.device("cpu"), trainable=False).save_pretrained(run / place)
    demo = {"model": base.model_dump(mode="json"), "eval_env": {"kwargs": RULE}, "arms": {"aipo": {}}}
    (run / "demo.json").write_text(json.dumps({"settings": {"demo": demo}, "seeds": {s: {} for s in seeds}}))
    return base


def test_every_model_of_the_run_is_measured_in_both_contexts(tmp_path: Path) -> None:
    base = saved_run(tmp_path, ["0", "1"])
    measured = measure(tmp_path, problems=3)
    assert measured["problems"] == 3 and set(measured["seeds"]) == {"0", "1"}
    contexts = key_contexts(RULE, 3)
    trained = load_policy(
        base, torch.device("cpu"), name_or_path=tmp_path / "seed-1/aipo/final", trainable=False
    )
    assert measured["seeds"]["1"]["aipo"] == pytest.approx(key_logprobs(trained, contexts))
    # the shared warm-up is the same model for both seeds; the arms' models differ
    assert measured["seeds"]["0"]["warm-up"] == measured["seeds"]["1"]["warm-up"]
    assert measured["summary"]["warm-up"]["key_logprob_alone"]["std"] == 0.0
    assert measured["seeds"]["0"]["aipo"] != measured["seeds"]["1"]["aipo"]
    assert measured["summary"]["aipo"]["key_logprob_in_reply"]["std"] > 0.0
    table = markdown(measured)
    assert "| warm-up |" in table and "| aipo |" in table and "2 seed(s)" in table


def test_the_controls_adapters_are_measured_on_the_warmup_they_were_trained_from(tmp_path: Path) -> None:
    base = saved_run(tmp_path, ["0"])
    results = json.loads((tmp_path / "demo.json").read_text())
    results["settings"]["demo"]["arms"]["sft"] = {"kind": "sft"}
    (tmp_path / "demo.json").write_text(json.dumps(results))
    lora = {"lora": {"r": 4, "alpha": 8}, "name_or_path": str(tmp_path / "warmup")}
    control = load_policy(ModelConfig.model_validate({**base.model_dump(), **lora}), torch.device("cpu"))
    with torch.no_grad():
        for name, weight in control.model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0.0, 0.5)
    control.save_pretrained(tmp_path / "seed-0/sft/final")  # adapters only, as the control saves them
    measured = measure(tmp_path, problems=2)
    contexts = key_contexts(RULE, 2)
    # as the run's own evaluation loads it: the directory as the model, its recorded base under it
    adapters = base.model_copy(update={"name_or_path": str(tmp_path / "seed-0/sft/final")})
    expected = key_logprobs(load_policy(adapters, torch.device("cpu"), trainable=False), contexts)
    assert measured["seeds"]["0"]["sft"] == pytest.approx(expected)
    assert measured["seeds"]["0"]["sft"] != measured["seeds"]["0"]["warm-up"]


def test_a_run_without_its_models_is_named(tmp_path: Path) -> None:
    saved_run(tmp_path, ["0"])
    (tmp_path / "demo.json").write_text(
        json.dumps({**json.loads((tmp_path / "demo.json").read_text()), "seeds": {"0": {}, "5": {}}})
    )
    with pytest.raises(SystemExit, match="seed-5/aipo/final"):
        main([str(tmp_path)])
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "nowhere")])


def test_the_command_writes_its_table_and_numbers_beside_the_run(tmp_path: Path) -> None:
    saved_run(tmp_path, ["0"])
    main([str(tmp_path), "2"])
    assert json.loads((tmp_path / "key_tokens.json").read_text())["problems"] == 2
    assert "| aipo |" in (tmp_path / "key_tokens.md").read_text()


def test_with_the_helpers_replays_the_runs_evaluation_with_consults_answered(tmp_path: Path) -> None:
    from aipo.real_rule.with_helpers import markdown as helped_table
    from aipo.real_rule.with_helpers import measure as with_helpers

    saved_run(tmp_path, ["0"])
    results = json.loads((tmp_path / "demo.json").read_text())
    results["settings"]["demo"]["eval_env"]["id"] = "aipo/ArithmeticRule-v0"
    results["settings"]["demo"]["eval"] = {"problems": 2, "samples": 2, "batch_size": 4}
    results["settings"]["arms"] = {"aipo": {"rollout": {"max_new_tokens": 8}}}
    results["seeds"]["0"] = {"warm-up": {"accuracy": 0.25}, "aipo": {"accuracy": 0.5}}
    (tmp_path / "demo.json").write_text(json.dumps(results))
    measured = with_helpers(tmp_path)
    assert measured["problems"] == 2 and measured["samples"] == 2
    assert measured["seeds"]["0"]["aipo"]["alone"] == 0.5  # the run's own number, not measured again
    for numbers in measured["seeds"]["0"].values():
        assert 0.0 <= numbers["with_helpers"] <= 1.0 and numbers["consults"] >= 0.0
    assert measured["summary"]["warm-up"]["alone"] == {"mean": 0.25, "std": 0.0}
    assert "| aipo | 0.500 ± 0.000 |" in helped_table(measured)
