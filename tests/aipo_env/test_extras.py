"""A missing extra is reported in one line that names the pip install to run.

``sys.modules[name] = None`` makes ``import name`` fail as if the library were not installed.
"""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from aipo_env.extras import MissingExtraError, missing_extra_message, needs_extra, require_extra

TRAIN_LINE = 'needs the training extra: pip install "aipo[train]"'


def _hide(monkeypatch: pytest.MonkeyPatch, library: str, *packages: str) -> None:
    """Make ``library`` look uninstalled and forget ``packages`` so that importing them runs again."""
    monkeypatch.setitem(sys.modules, library, None)
    for name in [name for name in sys.modules if name.split(".")[0] in packages]:
        monkeypatch.delitem(sys.modules, name)


def test_message_names_the_pip_install():
    assert missing_extra_message("train", "aipo train") == f"aipo train {TRAIN_LINE}"
    assert missing_extra_message("sb3", "aipo bench consult") == (
        'aipo bench consult needs the Stable-Baselines3 extra: pip install "aipo[sb3]"'
    )


def test_require_extra_checks_without_importing(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtraError, match=re.escape(f"aipo train {TRAIN_LINE}")):
        require_extra("train", "aipo train")


def test_only_a_missing_library_of_the_extra_is_translated(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError) as caught, needs_extra("train", "this test"):
        import torch  # noqa: F401
    assert isinstance(caught.value, ImportError) and caught.value.name == "torch"
    with pytest.raises(ModuleNotFoundError) as other, needs_extra("train", "this test"):
        import aipo_no_such_module  # noqa: F401
    assert not isinstance(other.value, MissingExtraError)


def test_policies_work_without_torch_until_a_model_is_asked_for(monkeypatch):
    _hide(monkeypatch, "torch", "policies")
    policies = importlib.import_module("policies")
    assert policies.NeverConsult().act(["Problem: 1 + 1?"])[0].text
    with pytest.raises(MissingExtraError, match=re.escape(f"policies.HFPolicy {TRAIN_LINE}")):
        policies.HFPolicy  # noqa: B018
    with pytest.raises(MissingExtraError, match=re.escape(f"policies.tiny {TRAIN_LINE}")):
        importlib.import_module("policies.tiny")


def test_algorithms_without_torch_say_which_extra(monkeypatch):
    _hide(monkeypatch, "torch", "algorithms")
    with pytest.raises(MissingExtraError, match=re.escape(f"algorithms {TRAIN_LINE}")):
        importlib.import_module("algorithms")


def test_a_torchvision_built_for_another_torch_is_one_line_with_the_fix(tmp_path, monkeypatch):
    # what vLLM's CPU wheels leave beside the CPU torch: transformers imports torchvision, whose
    # compiled operators fail to register (reproduced for real with torchvision 0.29.1 on torch 2.13)
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    with pytest.raises(MissingExtraError) as caught, needs_extra("train", "policies.HFPolicy"):
        raise ModuleNotFoundError("Could not import module 'PreTrainedModel'.")
    message = str(caught.value)
    assert "\n" not in message and "torchvision::nms does not exist" in message
    assert message.endswith("pip uninstall -y torchvision torchaudio torchcodec")


def test_other_import_errors_still_propagate(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # not installed: no mismatch to report
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match="cannot import name 'x'"), needs_extra("train", "thing"):
        raise ImportError("cannot import name 'x'")
