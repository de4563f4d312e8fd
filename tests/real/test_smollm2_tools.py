"""SmolLM2-135M-Instruct's chat template has no tool support: protocol='tools' is refused, saying why."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from policies.tool_calls import tool_protocol


def test_smollm2s_template_ignores_tools_so_the_tool_protocol_is_refused(smollm2_dir: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    with pytest.raises(ValueError, match="does not render tools.*protocol='text'"):
        tool_protocol(tokenizer)
