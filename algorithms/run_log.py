"""Where training metrics go: ``metrics.jsonl`` always, TensorBoard and W&B on request, a PNG at the end.

Metric names live in namespaces, as in cleanrl: ``rollout/`` (what the episodes did),
``losses/`` (the objective's terms and clip fractions), ``charts/`` (learning rate, gradient
norm, entropy), ``perf/`` (seconds and tokens per second).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger("algorithms.run_log")

PLOTTED = ("rollout/reward", "rollout/accuracy", "rollout/consult_rate", "losses/loss")


class RunLog:
    """Appends one JSON line per logged step and mirrors it to the optional backends.

    Args:
        directory: the run's output directory.
        tensorboard: also write TensorBoard events to ``directory/tensorboard``.
        wandb_project: also log to this Weights & Biases project.
        config: the run's config, stored with W&B.
    """

    def __init__(
        self,
        directory: Path,
        *,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "metrics.jsonl"
        drop_torn_line(self.path)  # a resumed run appends to the killed run's log
        self.directory = directory
        self._tensorboard = _tensorboard_writer(directory) if tensorboard else None
        self._wandb = _wandb_run(wandb_project, directory, config) if wandb_project else None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` of training step ``step``."""
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self._tensorboard is not None:
            for name, value in metrics.items():
                self._tensorboard.add_scalar(name, value, step)
        if self._wandb is not None:
            self._wandb.log(dict(metrics), step=step)

    def close(self) -> Path | None:
        """Flush the backends and draw ``training.png``; returns the plot's path (None if nothing logged)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()
        return plot_metrics(self.path, self.directory / "training.png")


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The records of a ``metrics.jsonl`` (a resumed run's repeated steps keep the last record).

    A torn last line (the run was killed while writing it) is left out.

    Raises:
        ValueError: a line before the last is not JSON (the file is not a metrics log).
    """
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, float]] = {}
    for record in parse_metrics(path.read_text(), str(path)):
        by_step[int(record["step"])] = record
    return [by_step[step] for step in sorted(by_step)]


def parse_metrics(text: str, origin: str = "metrics.jsonl") -> list[dict[str, Any]]:
    """The JSON records of the lines of ``text``, in order, without a torn last line.

    Raises:
        ValueError: a line before the last is not JSON, naming ``origin`` and the line.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):  # cut off mid-write; the records before it are whole
                break
            raise ValueError(f"{origin}, line {number}: not valid JSON ({error.msg})") from error
    return records


def drop_torn_line(path: Path) -> bool:
    """Cut a torn last line off ``path`` so that new records start on a line of their own.

    A run killed (``kill -9``, out of memory) while appending a record leaves half a line with
    no newline; the next run's first record would be glued onto it. A whole last record that
    only lacks its newline gets one. Returns whether a line was dropped.
    """
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    head, newline, last = data.rpartition(b"\n")
    try:
        json.loads(last)
    except ValueError:
        with path.open("r+b") as handle:
            handle.truncate(len(head) + len(newline))
        logger.warning(
            "%s: dropped its torn last line %r (the run was stopped while writing it)", path, last[:60]
        )
        return True
    with path.open("ab") as handle:
        handle.write(b"\n")
    return False


def plot_metrics(path: Path, output: Path) -> Path | None:
    """Plot the main curves of a ``metrics.jsonl`` into ``output`` (PNG)."""
    records = read_metrics(path)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.2))
    steps = [record["step"] for record in records]
    for axis, name in zip(axes, PLOTTED, strict=True):
        values = [record.get(name, float("nan")) for record in records]
        axis.plot(steps, values, marker="." if len(steps) < 50 else None)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def _tensorboard_writer(directory: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            "tensorboard=true needs the tensorboard package: pip install tensorboard"
        ) from error
    return SummaryWriter(log_dir=str(directory / "tensorboard"))


def _wandb_run(project: str, directory: Path, config: Mapping[str, Any] | None) -> Any:
    try:
        import wandb
    except ImportError as error:
        raise ImportError("wandb_project needs the wandb package: pip install wandb") from error
    return wandb.init(project=project, dir=str(directory), config=dict(config or {}))
