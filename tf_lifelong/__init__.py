"""tf_lifelong: Lifelong Generative Modeling (Ramapuram, Gregorova, Kalousis) in TF2/Keras 3.

A VAE that learns a stream of distributions one at a time, keeps no past data,
and can still generate every distribution it has seen: a frozen teacher replays
synthetic samples of the past into the student's batches.
"""

__version__ = "0.1.0"

__all__ = ["Learner", "__version__"]


def __getattr__(name: str):
  """`from tf_lifelong import Learner`, without importing TensorFlow for the rest."""
  if name == "Learner":
    from tf_lifelong.train.learner import Learner  # noqa: PLC0415

    return Learner
  raise AttributeError(f"module 'tf_lifelong' has no attribute {name!r}")
