"""Rollouts from an OpenAI-compatible server, and keeping its weights in step with the learner's.

With ``rollout.server`` set, episodes are sampled by :class:`~policies.completions.CompletionsPolicy`
on the server; the learner trains its own copy of the model (``model.name_or_path``, which must
start from the served weights) and the server samples with whatever weights it holds.

Every ``sync_every`` steps the learner writes its model (LoRA adapters merged) with
``save_pretrained`` to ``output_dir/served`` and POSTs ``{"model_path": DIR}`` to ``reload_url``,
the request SGLang's ``/update_weights_from_disk`` takes; the server then samples with the new
weights. Between syncs the server's policy lags by up to ``sync_every - 1`` updates. The loss's
importance ratio ``pi_theta / pi_behaviour`` takes ``pi_behaviour`` from the server's log-probs
of what it sampled (unless ``optim.recompute_behaviour_logprobs``), so the lag is corrected, and
clipped, as in PPO. Without ``reload_url`` the server keeps its weights for the whole run:
learning off-policy from a fixed behaviour policy. A failed sync is logged
(``perf/weight_sync_failed``) and tried again at the next one; training goes on.

With ``reload_api: vllm`` the server is ``vllm serve`` started with ``VLLM_SERVER_DEV_MODE=1``,
and ``reload_url`` is its ``http://HOST:PORT/collective_rpc``. The learner writes its whole state
dict (tied weights included, each as its own tensor) to ``output_dir/served/model.safetensors``
and POSTs ``{"method": "reload_weights", "kwargs": {"weights_path": DIR}}``: every worker reloads
the weights in place and re-runs each layer's post-loading step; then ``/reset_prefix_cache``
drops the keys and values computed with the old weights. A ``save_pretrained`` directory would not
do: it omits tied weights, and vLLM then keeps its old packed output layer
(docs/vllm_weight_sync.md). ``rollout/logprob_gap_max`` shows the sync is exact.

What is not supported: pushing weights over NCCL or CUDA IPC (vLLM's weight-transfer API, TRL's
``vllm-serve``), and several learner processes feeding one server.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from safetensors.torch import save_file

from algorithms.config import RolloutConfig
from algorithms.models import merged_state, save_merged
from policies.completions import CompletionsPolicy
from policies.hf import HFPolicy


class WeightSyncError(RuntimeError):
    """The server did not take the new weights."""


class ServerWeights:
    """Writes the learner's model to ``directory`` and asks the server at ``reload_url`` to load it.

    Args:
        reload_url: the server's reload endpoint (SGLang: ``http://HOST:PORT/update_weights_from_disk``;
            vLLM in dev mode: ``http://HOST:PORT/collective_rpc``).
        directory: where the weights are written (overwritten at each sync).
        every: sync after every ``every``-th step.
        timeout_s: how long the server may take to load them.
        api: ``"sglang"`` (a ``save_pretrained`` directory, ``{"model_path": DIR}``) or ``"vllm"``
            (the whole state dict, ``reload_weights`` through ``/collective_rpc``).
    """

    def __init__(
        self, reload_url: str, directory: Path, every: int = 1, timeout_s: float = 600.0, api: str = "sglang"
    ) -> None:
        self.reload_url, self.directory, self.every, self.timeout_s = (
            reload_url.rstrip("/"),
            directory,
            every,
            timeout_s,
        )
        self.api = api

    def after_step(self, step: int, policy: HFPolicy) -> float | None:
        """Sync if ``step`` is due; returns the seconds it took, ``None`` when not due.

        Raises:
            WeightSyncError: the server refused or could not be reached; the learner's own weights
                and checkpoints are untouched, and the next sync tries again.
        """
        if step % self.every:
            return None
        started = time.perf_counter()
        where = str(self.directory.resolve())
        if self.api == "vllm":
            write_state(policy, self.directory)
            self._post(self.reload_url, {"method": "reload_weights", "kwargs": {"weights_path": where}})
            root = self.reload_url.removesuffix("/collective_rpc")
            self._post(root + "/reset_prefix_cache", None)
        else:
            save_merged(policy, self.directory)  # LoRA adapters merged: the server loads a plain model
            self._post(self.reload_url, {"model_path": where})
        return time.perf_counter() - started

    def _post(self, url: str, payload: dict | None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = _json(response.read())
        except urllib.error.HTTPError as error:
            details = _json(error.read())
            message = details.get("message") or details.get("detail") or error.reason
            if error.code == 404 and self.api == "vllm":
                message = f"{message}; vllm serve has /collective_rpc only with VLLM_SERVER_DEV_MODE=1"
            raise WeightSyncError(
                f"{url} refused the weights in {self.directory} (HTTP {error.code}: {message})"
            ) from error
        except (urllib.error.URLError, OSError) as error:
            raise WeightSyncError(f"could not reach {url} to reload the weights: {error}") from error
        if answer.get("success") is False:
            raise WeightSyncError(
                f"{url} did not load the weights in {self.directory}: {answer.get('message')}"
            )


def write_state(policy: HFPolicy, directory: Path) -> None:
    """``directory/model.safetensors``: every named weight (LoRA merged), tied ones as separate copies."""
    directory.mkdir(parents=True, exist_ok=True)
    state, seen = {}, set()
    for name, tensor in merged_state(policy).items():
        shared = tensor.data_ptr() in seen
        seen.add(tensor.data_ptr())
        state[name] = (tensor.clone() if shared else tensor).detach().contiguous().cpu()
    save_file(state, str(directory / "model.safetensors"))


def _json(raw: bytes) -> dict:
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def connect(
    rollout: RolloutConfig, policy: HFPolicy, output_dir: Path
) -> tuple[CompletionsPolicy, ServerWeights | None]:
    """The server's sampler for ``rollout.server`` (set), and its weight sync if ``reload_url`` is set."""
    server = rollout.server
    assert server is not None
    sampler = CompletionsPolicy(
        policy,
        server.model,
        base_url=server.base_url,
        api_key_env=server.api_key_env,
        max_new_tokens=rollout.max_new_tokens,
        temperature=rollout.temperature,
        top_k=rollout.top_k,
        top_p=rollout.top_p,
        stop=policy.stop,
        max_concurrency=server.max_concurrency,
        timeout_s=server.timeout_s,
    )
    if server.reload_url is None:
        return sampler, None
    return sampler, ServerWeights(
        server.reload_url, output_dir / "served", server.sync_every, api=server.reload_api
    )
