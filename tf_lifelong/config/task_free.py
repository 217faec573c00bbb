"""The task-free fields of the run's configuration (method.md section 9; detection.py).

`Config` inherits them (config/__init__.py); they are declared here with `setting`, like
every other field, and generate their flags the same way.
"""

from __future__ import annotations

import dataclasses

from tf_lifelong.config.fields import BOUNDARIES, setting


@dataclasses.dataclass(frozen=True)
class TaskFreeFields:
  """`--boundaries=detect`: the chunks, the decision's thresholds, the open interval's bound."""

  boundaries: str = setting(
    "given",
    "given: the stream says where each interval ends and whether it is new (the paper). "
    "detect: a task-free stream, cut into chunks of --chunk_size examples with no signal; "
    "before training on a chunk the learner decides same / return to a component / new "
    "(method.md section 9); decisions in W/boundaries.jsonl, a metrics row per interval.",
    section="task_free",
    choices=BOUNDARIES,
  )
  chunk_size: int = setting(
    1000,
    "detect: examples per chunk (at least --batch_size); the last chunk of each stretch of "
    "one distribution takes the remainder (up to twice --chunk_size).",
    section="task_free",
  )
  chunk_steps: int = setting(
    100,
    "detect: training steps on the interval's data after each chunk joins it (counted in "
    "--max_steps_per_interval); the early-stopped training follows when the interval ends.",
    section="task_free",
  )
  shift_threshold: float = setting(
    5.0,
    "detect: a chunk stays in the current interval while its shift statistic (the largest "
    "standard score of its -ELBO profile's change against the interval's held-out share) "
    "is at most this.",
    section="task_free",
  )
  screen_mass: float = setting(
    0.02,
    "detect: a chunk is first scored only under the components the encoder sends at least "
    "this share of it or of the interval's held-out share to; when these columns show no "
    "shift and no cut it is *same*, else it is scored under every component "
    "(train/screening.py: the decisions' cost at large J); 0: every chunk in full.",
    section="task_free",
  )
  return_threshold: float = setting(
    1.5,
    "detect: a changed chunk returns to component j (the component most of its posterior "
    "goes to) when its -ELBO profile (under j, KL_c, against the other components) is within this "
    "many standard deviations of j's reference everywhere (detection.choose_return).",
    section="task_free",
  )
  return_mass: float = setting(
    0.0,
    "detect: the share of a chunk's mean posterior q(z_d = j | x) a return to j needs, in "
    "[0, 1]; 0: none (the largest share picks the candidate j; look-alike components split "
    "it).",
    section="task_free",
  )
  return_ratio: float = setting(
    1.10,
    "detect: a return to j also needs the chunk's nearest-sample ratio (its distance to j's "
    "fresh samples and its cover of them, in units of each sample's own spread, against j's "
    "held-out images' when j's reference was made: train/neighbours.py) at most this, plus "
    "--return_ratio_growth * ln(1 + age) for a reference made age intervals before; 0: not "
    "tested.",
    section="task_free",
  )
  return_ratio_growth: float = setting(
    0.02,
    "detect: how much --return_ratio's bound grows with ln(1 + the reference's age in "
    "intervals): a forgotten component's samples blur, and under long drift (rotated MNIST) "
    "its returns lie a little farther even in units of the samples' spread.",
    section="task_free",
  )
  interval_buffer: int = setting(
    10000,
    "detect: the most examples the open interval keeps (its training and held-out shares "
    "together, a uniform reservoir sample of all its chunks: train/interval_buffer.py), so "
    "that memory, disk and the time per chunk stay flat over an endless stretch of one "
    "distribution. Each class of the MNIST-like streams fits whole.",
    section="task_free",
  )
