"""Data-parallel training: 2 ranks with half the batch each make the update 1 process makes on all of it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from distributed_worker import CASES, one_update, run_rank

from algorithms.config import ConfigError, TrainConfig
from algorithms.distributed import Ranks, check_layout, local_problems, reduce_metrics
from algorithms.run_log import read_metrics

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_with_half_the_batch_each_equal_one_rank_with_all_of_it(tmp_path: Path) -> None:
    mp.spawn(run_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    distributed = torch.load(tmp_path / "results.pt")
    for case in CASES:
        single = one_update(tmp_path / f"{case}-single", case)
        got = distributed[case]
        assert got["loss"] == pytest.approx(single["loss"], abs=1e-6), case
        moved = 0
        for name, grad in single["grads"].items():
            torch.testing.assert_close(got["grads"][name], grad, atol=1e-6, rtol=1e-5, msg=f"{case} {name}")
            torch.testing.assert_close(got["params"][name], single["params"][name], atol=1e-6, rtol=0.0)
            moved += int(grad.abs().max() > 1e-4)
        assert moved > len(single["grads"]) // 2, case  # the gradients are not trivially zero


def torchrun(*overrides: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m aipo.cli train`` on the tiny model, 2 problems of 2 episodes per step."""
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "aipo.cli", "train", "steps=2", "device=cpu", "progress=false"),
        *("rollout.problems_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8"),
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_torchrun_trains_and_only_rank_zero_writes(tmp_path: Path) -> None:
    done = torchrun(f"output_dir={tmp_path}")
    assert done.stdout.count("done:") == 1  # the summary line, once for the job
    assert [record["step"] for record in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2  # not once per rank
    checkpoints = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["step-000002"]
    state = torch.load(tmp_path / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=False)
    assert len(state["rank_rng"]) == 2
    assert not torch.equal(state["rank_rng"][0]["torch"], state["rank_rng"][1]["torch"])
    assert (tmp_path / "final" / "config.json").is_file()


@pytest.mark.slow
def test_fsdp_run_resumed_on_two_ranks_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    # random tiny models never score: the entropy bonus makes the update depend on the samples
    common = ("distributed=fsdp", "loss.entropy_coef=0.01", "optim.lr=1e-3")
    torchrun(f"output_dir={tmp_path / 'straight'}", "save_every=1", *common)
    checkpoint = tmp_path / "straight" / "checkpoints" / "step-000001"
    torchrun(f"output_dir={tmp_path / 'resumed'}", f"resume_from={checkpoint}", *common)
    straight = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    halfway = load_file(checkpoint / "model" / "model.safetensors")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    assert any(not torch.equal(straight[name], halfway[name]) for name in straight)


def test_problems_must_split_evenly_over_ranks() -> None:
    config = TrainConfig.model_validate({"rollout": {"problems_per_step": 4}})
    check_layout(config, 2)
    with pytest.raises(ConfigError, match=r"problems_per_step \(4\).*divisible.*\(3\)"):
        check_layout(config, 3)


def test_minibatches_must_fit_the_episodes_of_one_rank() -> None:
    config = TrainConfig.model_validate(
        {"rollout": {"problems_per_step": 2, "group_size": 2}, "optim": {"minibatches": 4}}
    )
    check_layout(config, 1)
    with pytest.raises(ConfigError, match="episodes per rank"):
        check_layout(config, 2)


def test_fsdp_refuses_lora() -> None:
    config = TrainConfig.model_validate({"distributed": "fsdp", "model": {"lora": {"r": 4}}})
    with pytest.raises(ConfigError, match="distributed=ddp"):
        check_layout(config, 2)


def test_each_rank_plays_a_disjoint_contiguous_share() -> None:
    problems = [9, 3, 5, 1, 7, 2]
    shares = [local_problems(problems, Ranks(rank=rank, world_size=3)) for rank in range(3)]
    assert shares == [[9, 3], [5, 1], [7, 2]]


def test_metrics_are_unchanged_on_one_process() -> None:
    assert reduce_metrics({"rollout/reward": 0.5}, Ranks()) == {"rollout/reward": 0.5}


def test_failed_consult_counts_are_summed_over_ranks_and_means_averaged(monkeypatch) -> None:
    everyone = [
        {"rollout/reward": 1.0, "rollout/agent_failures": 3.0, "rollout/agent_failures/timeout": 3.0},
        {"rollout/reward": 0.0, "rollout/agent_failures": 2.0},
    ]
    monkeypatch.setattr("algorithms.distributed.gather_objects", lambda metrics, ranks: everyone)
    monkeypatch.setattr(Ranks, "grouped", property(lambda self: True))
    reduced = reduce_metrics(everyone[0], Ranks(world_size=2))
    assert reduced == {
        "rollout/reward": 0.5,
        "rollout/agent_failures": 5.0,
        "rollout/agent_failures/timeout": 3.0,
    }
