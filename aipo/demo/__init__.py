"""The main job, ``aipo demo``: can RL learn from helpers a skill the warm-up lacks, and then
reason alone (README, docs/experiments.md)?

* :mod:`~aipo.demo.run`: the pipeline: warm-up, the arms, evaluation alone, the report;
* :mod:`~aipo.demo.config`: its options (one YAML plus the arms' train configs);
* :mod:`~aipo.demo.command`: the command line;
* :mod:`~aipo.demo.control`: the SFT learnability control;
* :mod:`~aipo.demo.curve`: the key-token diagnostics during training;
* :mod:`~aipo.demo.intervals` and :mod:`~aipo.demo.report`: intervals, table and plots;
* :mod:`~aipo.demo.warmups`: how the shipped warm-up was made (``python -m aipo.demo.warmups``).

Nothing is imported here: the command line loads :mod:`~aipo.demo.command` without torch (the
light install's ``aipo envs``), and the pipeline imports torch only when it runs.
"""
