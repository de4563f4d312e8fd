"""ILR: interactive co-learning of two policies ("Interactive Learning for LLM Reasoning", arXiv 2509.26306).

What we know of the method comes from secondary sources (the issue that asked for it, summarising
the paper's abstract and reviews); we have not read the paper's full text, so every detail below is
our reading and each choice is named where it is made:

* **Dynamic interaction** (:mod:`algorithms.ilr.irt`). For question ``q`` and model ``i``,
  ``P = 1 / (1 + exp(-1.7 (gamma_i - D_q)))`` with ability ``gamma_i`` and difficulty ``D_q``
  estimated item-response-theory style (here: fitted to the models' solve rates on a validation
  set). Model ``i`` cooperates when ``P < 0.5`` and competes otherwise.
* **Idea3** (:class:`aipo_env.idea3.Idea3Env`). Idea Sharing (each model gives its solution),
  Idea Analysis (each critiques the other's), Idea Fusion (each writes its own final solution
  using what it learned); each final answer is scored on its own. Cooperative and competitive
  modes differ only in how the exchange is framed.
* **Perception calibration** (:mod:`algorithms.ilr.calibration`). Model ``i``'s GRPO reward for
  sample ``k`` becomes ``R_ik + sum_{l != i} clip((R_ik - mean R_l) / (max R_l - min R_l),
  -1/(m-1), 1/(m-1))``.
* After co-training each model is **used alone** (evaluated with :mod:`algorithms.evaluation`).

The co-training loop (:mod:`algorithms.ilr.cotrain`) reuses the learners' GRPO update
(:meth:`algorithms.trainer.Trainer.update`); partner and system text is masked out of the loss.
"""

from algorithms.ilr.calibration import calibrated_rewards
from algorithms.ilr.irt import IRTFit, fit_irt, interaction_mode, solve_probability

__all__ = ["IRTFit", "calibrated_rewards", "fit_irt", "interaction_mode", "solve_probability"]
