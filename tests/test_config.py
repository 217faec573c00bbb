"""Config: validation messages, JSON round trip, derived fields."""

import dataclasses

import pytest

from tf_lifelong import config as config_lib


def test_defaults_are_the_method_defaults():
  c = config_lib.Config()
  assert (c.tau0, c.tau_rate, c.tau_min, c.tau_update_every) == (1.0, 3e-5, 0.5, 10)
  assert (c.consistency_weight, c.mi_weight, c.consistency_kl) == (1.0, 1.0, "reverse")
  assert (c.learning_rate, c.continuous_dim, c.teacher_pad_eps) == (1e-4, 20, 1e-6)
  assert c.dataset == "fashion_mnist" and c.resolved_arch == "mlp"


def test_json_round_trip_keeps_tuples():
  c = config_lib.Config(dataset="mnist", order=(3, 7, 3), angles=(10.0, 20.0), seed=4)
  back = config_lib.Config.from_json(c.to_json())
  assert back == c and isinstance(back.order, tuple)


@pytest.mark.parametrize(
  "field,value,words",
  [
    ("dataset", "cifar", "unknown dataset"),
    ("strategy", "tpu", "unknown strategy"),
    ("batch_size", 0, "batch_size must be at least 1"),
    ("patience", 0, "patience must be at least 1"),
    ("consistency_weight", -1.0, "consistency_weight must not be negative"),
    ("mi_weight", -0.5, "mi_weight must not be negative"),
    ("order", (1, -2), "negative"),
    ("consistency_kl", "sideways", "consistency_kl"),
    ("tau_min", 2.0, "tau_min"),
  ],
)
def test_bad_values_are_refused_with_a_message(field, value, words):
  with pytest.raises(config_lib.ConfigError, match=words):
    dataclasses.replace(config_lib.Config(), **{field: value})


def test_unknown_json_field_is_named():
  with pytest.raises(config_lib.ConfigError, match="bogus"):
    config_lib.Config.from_dict({"bogus": 1})


def test_cross_domain_streams_choose_conv():
  assert config_lib.Config(dataset="svhn_mnist").resolved_arch == "conv"
  assert config_lib.Config(dataset="fashion_mnist_mnist", arch="mlp").resolved_arch == "mlp"
  assert config_lib.Config(dataset="folder:/x").resolved_arch == "mlp"
