"""TRL's GRPOTrainer trained on an aipo env with consults through AipoRollout (TRL's rollout_func):
two steps on CPU with the tiny model. Guided episodes consult the Reasoning agent at a cost, so the
env's returns differ within a group and the update has a signal even with random weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("trl")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from tool_templates import tool_model  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from aipo.integrations.trl import AipoRollout, env_reward  # noqa: E402
from algorithms.rollout import Guide  # noqa: E402
from policies.tiny import build_tiny_model, build_tokenizer  # noqa: E402

GROUP = 4


class Recording(GRPOTrainer):
    """Keeps what each rollout returned and the batch TRL built from it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[dict[str, Any]] = []

    def _generate_and_score_completions(self, inputs: Any) -> Any:
        output = super()._generate_and_score_completions(inputs)
        self.batches.append(output)
        return output


class Kept(AipoRollout):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.returned: list[dict[str, list[Any]]] = []

    def __call__(self, prompts: Any, trainer: Any) -> dict[str, list[Any]]:
        fields = super().__call__(prompts, trainer)
        self.returned.append(fields)
        return fields


# protocol -> (the written consult, the helper's reply), as they appear in the completion
MARKERS = {
    "text": ('<consult agent="reasoning">', '<feedback agent="reasoning">'),
    "tools": ('<tool_call>\n{"name": "reasoning"', "<|im_start|>user\n<tool_response>"),
}


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["text", "tools"])
def test_two_grpo_steps_on_consult_episodes_with_helper_replies_masked_out(
    tmp_path: Path, protocol: str
) -> None:
    torch.manual_seed(0)
    if protocol == "tools":  # a tiny model whose chat template renders tools (Qwen2.5's format)
        model, tokenizer = tool_model("qwen")
    else:
        tokenizer = build_tokenizer()
        model = build_tiny_model(tokenizer, seed=0)
    tokenizer.padding_side = "left"
    rollout = Kept(
        "aipo/Arithmetic-v0",
        {"level": 1, "max_turns": 2, "consult_cost": 0.25},
        problems=range(8),
        max_new_tokens=12,
        chat_template=protocol == "tools",
        protocol=protocol,
        guide=Guide(per_group=2),
    )
    consult, reply = MARKERS[protocol]
    config = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        max_steps=2,
        per_device_train_batch_size=GROUP,
        num_generations=GROUP,
        max_completion_length=12,
        learning_rate=1e-2,
        beta=0.0,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        bf16=False,
        gradient_checkpointing=False,
        seed=0,
    )
    before = [parameter.detach().clone() for parameter in model.parameters()]
    trainer = Recording(
        model=model,
        reward_funcs=env_reward,
        args=config,
        train_dataset=rollout.dataset(),
        processing_class=tokenizer,
        rollout_func=rollout,
    )
    trainer.train()

    assert len(rollout.returned) == 2
    for fields, batch in zip(rollout.returned, trainer.batches, strict=True):
        # the first two episodes of the group consulted, were answered, and paid for it
        assert fields["consults"] == [1, 1, 0, 0]
        assert fields["env_reward"][:2] == [-0.25, -0.25] and fields["env_reward"][2:] == [0.0, 0.0]
        # the env's returns are the rewards TRL's advantages come from
        assert float(batch["advantages"][0]) < 0 < float(batch["advantages"][3])
        # the written consult and the helper's reply are in the completion, masked out of the loss
        mask = batch["tool_mask"] * batch["completion_mask"]
        for row, env_mask in enumerate(fields["env_mask"]):
            ids = batch["completion_ids"][row][: len(env_mask)]
            assert mask[row][: len(env_mask)].tolist() == env_mask
            masked = tokenizer.decode(ids[torch.tensor(env_mask) == 0].tolist())
            if row < 2:
                assert consult in masked and reply in masked
                assert reply not in tokenizer.decode(ids[torch.tensor(env_mask) == 1].tolist())
            else:
                assert masked == ""
    logged = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    assert logged == [pytest.approx(-0.125), pytest.approx(-0.125)]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_without_trl_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from aipo_env.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(MissingExtraError, match=r'pip install "aipo\[bench\]"'):
        AipoRollout("aipo/Arithmetic-v0")


def test_the_dataset_is_the_envs_prompts_and_foreign_prompts_are_refused() -> None:
    rollout = AipoRollout("aipo/Arithmetic-v0", {"level": 1}, problems=[3, 5])
    rows = rollout.dataset().to_list()
    assert [row["problem"] for row in rows] == [3, 5]
    assert "To consult a helper" in rows[0]["prompt"]

    class Trainer:
        class args:  # noqa: N801  (a stand-in for GRPOConfig)
            use_vllm = False

    with pytest.raises(ValueError, match="not this AipoRollout's"):
        rollout(["What is 1 + 1?"], Trainer())


def test_envs_grown_for_a_larger_batch_share_the_first_envs_agents() -> None:
    from policies.hf import HFPolicy
    from policies.tiny import build_tiny_model, build_tokenizer

    tokenizer = build_tokenizer()
    policy = HFPolicy(build_tiny_model(tokenizer), tokenizer, max_new_tokens=4)
    rollout = AipoRollout("aipo/Arithmetic-v0", {"level": 1}, problems=range(8))
    first = rollout.envs(policy, 2)[0].unwrapped.agents
    grown = rollout.envs(policy, 5)
    assert len(grown) == 5 and all(env.unwrapped.agents["verify"] is first["verify"] for env in grown)
    rollout.close()
    assert rollout.envs(policy, 1)[0].unwrapped.agents["verify"] is not first["verify"]
    rollout.close()
