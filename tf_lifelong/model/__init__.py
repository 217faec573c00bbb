"""The model layer: latents, networks, objectives, student, hand-over, evaluation.

method.md sections 2-5 and 8. Never imports tf_lifelong.data, lifelong or cli.
The hand-over is `tf_lifelong.model.handover.handover` (the module keeps the
name `handover` here; the function is not re-exported over it).
"""

from tf_lifelong.model.inference import (
  iwae_log_likelihood,
  neg_elbo,
  posterior_argmax,
  reconstruct,
)
from tf_lifelong.model.latents import continuous_posterior, discrete_posterior, temperature
from tf_lifelong.model.lifelong_vae import LifelongVAE
from tf_lifelong.model.networks import build_networks
from tf_lifelong.model.student import compile_student, new_student

__all__ = [
  "LifelongVAE",
  "build_networks",
  "compile_student",
  "continuous_posterior",
  "discrete_posterior",
  "iwae_log_likelihood",
  "neg_elbo",
  "new_student",
  "posterior_argmax",
  "reconstruct",
  "temperature",
]
