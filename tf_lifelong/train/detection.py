"""Task-free streams: deciding, for each chunk, *same*, *return to j* or *new* (method.md section 9).

The statistic. For an image x and a component j of the discrete latent,

    s_j(x) = -log p(x | z_d = e_j, z_c) + KL(q(z_c|x) || N(0, I)),
    z_c = mu(x) + sigma(x) * eps,   eps ~ N(0, I) shared by the J components,

the -ELBO of the conditional density p(x | z_d = j) (a hard one-hot z_d, as
method.md section 3's evaluation, without the z_d term, which does not depend
on j). `component_scores` gives [s_0 .. s_{J-1}, KL_c] per image: [N, J + 1],
nats. A chunk's statistic is S_j(c) = mean over x in c of s_j(x).

The decision (`decide`), with k = argmin_j S_j(H) the component that explains
the current interval's held-out share H best:

1. *same* when z <= `shift_threshold`: z is the largest Welch standard score
   (`shift_statistic`) of a change between the chunk and H in S_k, in KL_c,
   or in a difference s_j - s_k (another component explaining the chunk
   relatively better or worse than it explains H: a different distribution,
   even one whose level under k happens to be the same). Neither the chunk nor
   H was trained on, so under *same* each score is about N(0, 1).
2. Otherwise *return to j* (`choose_return`), for j != k the component with a
   `Reference` to which the encoder sends most of the chunk (the largest mean
   posterior q(z_d = j | x): the encoder was trained on the teacher's samples
   of j to send them there), when that share is at least `return_mass` (0 by
   default: the vote picks the candidate, and neighbours, a Shirt and a T-shirt
   component, split it), the chunk's profile (`profile`: S_j, KL_c and the
   differences S_i - S_j) lies within `return_threshold` sds of j's reference
   in every entry (the reference's level moved by how much the model's own
   samples of j moved since; KL_c as it was), and the chunk's nearest-sample
   ratio against j's fresh samples (neighbours.py: what tells a look-alike
   newcomer from a return) is within its bound, which grows with the age of
   j's reference (`--return_ratio`, `--return_ratio_growth`). Forgetting
   moves an old distribution's level by about one sd in a few intervals, hence
   the loose profile bound. Returns are judged with the teacher (the model as
   the last interval ended, like the references) where there is one
   (task_free.py).
3. Otherwise *new*.

No data of earlier intervals are kept: a `Reference` is a few numbers per
component, made when an interval of that component (the new one it added, or
the one it returned to) ends.

References: Rao et al. 2019 (CURL: new components seeded by poorly explained
data), Lee et al. 2020 (CN-DPM: routing by likelihood).
"""

from __future__ import annotations

import dataclasses
import math
import weakref

import numpy as np
import tensorflow as tf

from tf_lifelong.data import transforms
from tf_lifelong.model import batching, latents, objectives
from tf_lifelong.train import neighbours
from tf_lifelong.train.decision_record import Decision as Decision

SAME, RETURN, NEW = "same", "return", "new"
KINDS = (SAME, RETURN, NEW)
REFERENCE_SAMPLES = 128
"""Model samples of a component behind its drift estimate: the same latents (same seed)
when the reference is made and at each later decision, so that the difference is the
model's change, not sampling noise."""


def component_scores(
  model, images: np.ndarray, seed: int = 0, batch_size: int = 500, components=None
) -> np.ndarray:
  """s_j(x) for every image and component, and KL_c(x): float64 [N, J + 1], nats.

  Columns 0..J-1 are s_j (module docstring), column J is KL(q(z_c|x) || N(0, I)),
  the part of every s_j that does not depend on j.

  Args:
    model: a LifelongVAE (encoder, decoder, num_categories, continuous_dim).
    images: float [N, H, W, C] in [0, 1] (uint8 0..255 is scaled).
    seed: the z_c noise is a function of (seed, position in `images`).
    components: only these components' s_j (columns in this order, then KL_c: [N, C + 1],
      each column as it is among all J, with the same z_c); None: all J.
  """
  x_all = np.asarray(images)
  if x_all.dtype == np.uint8:
    x_all = transforms.unit_float(x_all)
  j_count = int(model.num_categories)
  chosen = list(range(j_count)) if components is None else [int(c) for c in components]
  codes = tf.one_hot(chosen, j_count)

  def scores(x, b):
    noise = tf.random.stateless_normal(
      [tf.shape(x)[0], model.continuous_dim], tf.constant([seed, b * batch_size], tf.int64)
    )
    return _scores_function(model)(x, noise, codes)

  if len(x_all) == 0:
    return np.zeros([0, len(chosen) + 1])
  return batching.batch_map(scores, x_all.astype(np.float32), batch_size).astype(np.float64)


_FUNCTIONS = weakref.WeakKeyDictionary()
"""model -> its scores graph: one trace per model for every batch and set of components
(a tf.function over the model would trace again for each new shape of `codes`, 0.2 s each:
the screen's subsets vary from chunk to chunk)."""


def _scores_function(model):
  function = _FUNCTIONS.get(model)
  if function is None:
    encoder, decoder = model.encoder, model.decoder
    function = tf.function(
      lambda x, noise, codes: _scores_graph(encoder, decoder, x, noise, codes),
      input_signature=[
        tf.TensorSpec([None, *model.image_shape], tf.float32),
        tf.TensorSpec([None, int(model.continuous_dim)], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
      ],
    )
    _FUNCTIONS[model] = function
  return function


def _scores_graph(encoder, decoder, x, noise, codes):
  _, loc, scale = encoder(x, training=False)
  z_c = latents.gaussian_sample(loc, scale, noise)
  b, c = tf.shape(x)[0], tf.shape(codes)[0]
  z_d = tf.repeat(tf.cast(codes, loc.dtype), b, axis=0)  # [C*B, J], category-major
  dec = decoder(tf.concat([z_d, tf.tile(z_c, [c, 1])], -1), training=False)
  rec = tf.reshape(objectives.reconstruction_nll(tf.tile(x, [c, 1, 1, 1]), dec), [c, b])
  kl = objectives.kl_continuous(loc, scale)[:, None]
  return tf.concat([tf.transpose(rec) + kl, kl], axis=1)


def profile(scores: np.ndarray, j: int, components: list[int]) -> np.ndarray:
  """Per-example profile relative to component j, from `component_scores` [N, J + 1]:
  [s_j, KL_c, s_i - s_j for i in components, i != j]."""
  others = [i for i in components if i != j]
  return np.concatenate(
    [scores[:, [j]], scores[:, [-1]], scores[:, others] - scores[:, [j]]], axis=1
  )


@dataclasses.dataclass
class Reference:
  """What is kept of component j's distribution: a few numbers, no data.

  When an interval of component j (the one its hand-over added, or the one it
  returned to) ends: the mean
  and spread of the profile (`profile`: s_j and the differences s_i - s_j to
  the other components of that time) on the held-out share (`real`, `sd`), and
  the mean profile of the model's own samples of j (`synthetic`). Later, the
  real profile is predicted as `real + (synthetic now - synthetic)`
  (`predicted`): the model's drift, measured on its own samples (KL_c aside).
  `neighbour`: the held-out share against j's samples (`neighbours.Distances` as a
  dict; None in references from before it).
  """

  component: int
  components: list[int]
  real: list[float]
  sd: list[float]
  synthetic: list[float]
  neighbour: dict | None = None
  interval: int | None = None
  """The interval whose end made it (the age of a reference: neighbours.bound)."""

  def predicted(self, synthetic_now: np.ndarray) -> np.ndarray:
    """The real profile now: moved by the samples' drift, except KL_c (entry 1), which
    is taken as it was (the encoder's KL on real data moves much less than on samples)."""
    drift = np.asarray(synthetic_now) - np.asarray(self.synthetic)
    drift[1] = 0.0
    return np.asarray(self.real) + drift

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> Reference:
    return cls(**d)


def sample_profile(
  model, ref_component: int, components: list[int], seed: int, n: int = REFERENCE_SAMPLES
) -> np.ndarray:
  """Mean profile (relative to `ref_component`) of n model samples of it (Bernoulli means)."""
  samples = np.asarray(
    model.sample(n, component=int(ref_component), seed=seed + 7919 * ref_component)
  )
  return profile(component_scores(model, samples, seed), ref_component, components).mean(axis=0)


def make_reference(
  model,
  heldout_scores: np.ndarray,
  j: int,
  seed: int,
  n: int = REFERENCE_SAMPLES,
  images: np.ndarray | None = None,
  interval: int | None = None,
) -> Reference:
  """Component j's reference from its held-out scores [M, J] under `model` (see Reference),
  and from the held-out `images` themselves where given (its `neighbour`)."""
  components = list(range(heldout_scores.shape[1] - 1))
  p = profile(heldout_scores, j, components)
  sd = p.std(axis=0, ddof=1) if len(p) > 1 else np.zeros(p.shape[1])
  return Reference(
    component=int(j),
    components=components,
    real=p.mean(axis=0).tolist(),
    sd=np.maximum(sd, 1e-6).tolist(),
    synthetic=sample_profile(model, j, components, seed, n).tolist(),
    neighbour=neighbours.measure(model, j, images, seed).to_dict() if images is not None else None,
    interval=interval,
  )


def return_distances(
  chunk_scores: np.ndarray, ref: Reference, synthetic_now: np.ndarray
) -> np.ndarray:
  """|chunk mean profile_i - predicted_i| / sd_i per profile entry i (`profile`'s order)."""
  mean = profile(chunk_scores, ref.component, ref.components).mean(axis=0)
  return np.abs(mean - ref.predicted(synthetic_now)) / np.asarray(ref.sd)


def return_statistic(chunk_scores: np.ndarray, ref: Reference, synthetic_now: np.ndarray) -> float:
  """max_i of `return_distances`: how far the chunk is from j's distribution, in sds."""
  return float(np.max(return_distances(chunk_scores, ref, synthetic_now)))


def _welch(a: np.ndarray, b: np.ndarray) -> float:
  """|mean(a) - mean(b)| in units of its standard error (Welch)."""
  var = (a.var(ddof=1) if len(a) > 1 else 0.0) / len(a) + (
    b.var(ddof=1) if len(b) > 1 else 0.0
  ) / len(b)
  return abs(float(a.mean() - b.mean())) / math.sqrt(max(var, 1e-12))


def shift_statistic(
  chunk_scores: np.ndarray, heldout_scores: np.ndarray, k: int
) -> tuple[float, int]:
  """The largest standard score of a change between the chunk and the held-out share: (z, j).

  j = k: the level S_k itself moved; j = J: KL_c moved; other j: the difference s_j - s_k moved (a
  component other than k explains the chunk relatively better or worse than
  it explains the current interval: a different distribution, even one whose
  level under k happens to be the same).
  """
  j_count = chunk_scores.shape[1] - 1
  best, driver = _welch(chunk_scores[:, k], heldout_scores[:, k]), k
  kl = _welch(chunk_scores[:, -1], heldout_scores[:, -1])
  if kl > best:
    best, driver = kl, j_count
  for j in range(j_count):
    if j != k:
      z = _welch(
        chunk_scores[:, j] - chunk_scores[:, k], heldout_scores[:, j] - heldout_scores[:, k]
      )
      if z > best:
        best, driver = z, j
  return best, driver


def choose_return(
  distances: dict[int, np.ndarray],
  masses: np.ndarray,
  *,
  exclude: int | None,
  return_threshold: float,
  return_mass: float,
  ratio=None,
) -> dict:
  """Return to which component, or new, for a chunk that is not the current distribution.

  The candidate is the component j (not `exclude`, with a reference) to which the
  encoder sends most of the chunk: the largest mean posterior q(z_d = j | x) (the
  encoder was trained on the teacher's samples of j to do so). It is a return to j
  when that share is at least `return_mass`, the chunk's profile lies within
  `return_threshold` of j's reference sds in every entry, and its nearest-sample ratio
  (neighbours.py) is within its bound; otherwise the chunk is new.

  Args:
    distances: component -> `return_distances` of the chunk (components with a reference).
    masses: the chunk's mean posterior q(z_d = j | x) over its images, [J].
    exclude: k, the current interval's component (not a return), or None.
    ratio: a function of the candidate j giving the chunk's nearest-sample ratio r_j and
      its bound (neighbours.bound: it grows with the reference's age), or None where it is
      not measured (a reference from before it, --return_ratio=0); called once.

  Returns:
    {"decision" (return or new), "component" (None for new), "best_return" (the
    candidate), "return_statistic" (its largest entry distance), "return_mass",
    "return_ratio" and "ratio_threshold" (r_j and its bound, or None)}.
  """
  candidates = {j: d for j, d in distances.items() if j != exclude and j < len(masses)}
  out = {"return_statistic": None, "best_return": None, "return_mass": None}
  out.update(return_ratio=None, ratio_threshold=None)
  if not candidates:
    return {**out, "decision": NEW, "component": None}
  best = max(candidates, key=lambda j: float(masses[j]))
  worst = float(np.max(candidates[best]))
  r, bound = (ratio(best) if ratio is not None else None) or (None, None)
  out.update(return_statistic=worst, best_return=best, return_mass=float(masses[best]))
  out.update(return_ratio=r, ratio_threshold=bound)
  near = r is None or r <= bound
  if masses[best] >= return_mass and worst <= return_threshold and near:
    return {**out, "decision": RETURN, "component": best}
  return {**out, "decision": NEW, "component": None}


def decide(
  chunk_scores: np.ndarray,
  heldout_scores: np.ndarray | None,
  returns,
  masses,
  *,
  shift_threshold: float,
  return_threshold: float,
  return_mass: float,
  ratio=None,
) -> dict:
  """The decision for a chunk (module docstring), a pure function of the statistics.

  Args:
    chunk_scores: s_j(x) of the chunk, [n, J + 1] (`component_scores`).
    heldout_scores: the same of the current interval's held-out share, [m, J + 1];
      None when no interval is open (then only return or new).
    returns: a function of k (the component to leave out, or None) giving
      component -> `return_distances`, called only when the chunk is not *same*.
    masses: the chunk's mean posterior over the components, [J], or a function giving it
      (called only when the chunk is not *same*).
    shift_threshold, return_threshold, return_mass, ratio: see the module docstring and
      `choose_return`.

  Returns:
    {"decision", "component" (None for new), "statistic" (z), "driver", "current" (k),
    "scores" (S_j(c), [J]), and `choose_return`'s entries}.
  """
  out = {
    "statistic": None,
    "driver": None,
    "current": None,
    "scores": [float(v) for v in chunk_scores[:, :-1].mean(axis=0)],
  }
  k = None
  if heldout_scores is not None:
    k = current_component(heldout_scores)
    z, driver = shift_statistic(chunk_scores, heldout_scores, k)
    out.update(statistic=z, driver=driver, current=k)
    if z <= shift_threshold:
      return {**out, "decision": SAME, "component": k}
  chosen = choose_return(
    returns(k),
    masses() if callable(masses) else masses,
    exclude=k,
    return_threshold=return_threshold,
    return_mass=return_mass,
    ratio=ratio,
  )
  return {**out, **chosen}


def posterior_masses(model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
  """Mean over the images of q(z_d = j | x), [J]."""
  x_all = np.asarray(images)
  if x_all.dtype == np.uint8:
    x_all = transforms.unit_float(x_all)

  def masses(x, _):
    logits, _, _ = model.encoder(x, training=False)
    return tf.nn.softmax(tf.cast(logits, tf.float32), -1)

  if len(x_all) == 0:
    return np.zeros(int(model.num_categories))
  return batching.batch_mean(masses, x_all, batch_size)


def current_component(heldout_scores: np.ndarray) -> int:
  """k = argmin_j S_j(H): the component that explains the current interval best."""
  return int(np.argmin(heldout_scores[:, :-1].mean(axis=0)))
