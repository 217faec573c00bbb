"""Lifelong metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from tf_lifelong.evaluation import metrics


def test_posterior_consistency_counts_agreements():
  assert metrics.posterior_consistency(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
  assert math.isnan(metrics.posterior_consistency(np.array([]), np.array([])))
  with pytest.raises(ValueError):
    metrics.posterior_consistency(np.array([0, 1]), np.array([0]))


def test_pooled_mean_weights_by_counts():
  # Means 10 (1 example) and 2 (9 examples): pooled 28 / 10, not the mean of means (6).
  sums, counts = {0: 10.0, 1: 18.0}, {0: 1, 1: 9}
  assert metrics.pooled_mean(sums, counts, [0, 1]) == pytest.approx(2.8)
  assert metrics.pooled_mean(sums, counts, [0]) == pytest.approx(10.0)
  assert metrics.pooled_mean(sums, counts, [1]) == pytest.approx(2.0)


def _matrix():
  # After interval 0 (learned 5), 1 (learned 7), 2 (learned 5 again), 3 (learned 9).
  m = metrics.ElboMatrix([5, 7, 9])
  m.add(5, {5: 100.0, 7: 300.0, 9: 250.0})
  m.add(7, {5: 120.0, 7: 90.0, 9: 240.0})
  m.add(5, {5: 95.0, 7: 110.0, 9: 230.0})
  m.add(9, {5: 105.0, 7: 130.0, 9: 80.0})
  return m


def test_forgetting_is_final_minus_best_since_first_learned():
  f = _matrix().forgetting()
  assert f == {5: pytest.approx(105.0 - 95.0), 7: pytest.approx(130.0 - 90.0)}


def test_backward_transfer_uses_last_training_of_each_distribution():
  # 5 last trained at interval 2 (95 -> 105), 7 at interval 1 (90 -> 130).
  assert _matrix().backward_transfer() == pytest.approx(((95 - 105) + (90 - 130)) / 2)


def test_matrix_serialises_nan_as_none():
  m = metrics.ElboMatrix([0, 1])
  m.add(0, {0: 1.5})
  assert m.to_dict()["rows"] == [[1.5, None]]


def test_running_mean_ignores_nan_and_zero_weight():
  r = metrics.RunningMean()
  r.add(2.0, 1)
  r.add(math.nan, 5)
  r.add(5.0, 2)
  r.add(7.0, 0)
  assert r.value == pytest.approx(4.0)
