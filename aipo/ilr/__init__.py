"""The ILR experiment, ``aipo ilr``: two tiny models co-trained with ILR against each trained
alone (:mod:`~aipo.ilr.experiment`), and its table and plot (:mod:`~aipo.ilr.report`)."""

from aipo.ilr.experiment import ILRSettings, command, run

__all__ = ["ILRSettings", "command", "run"]
