"""Config: validation messages, JSON round trip, derived fields."""

import dataclasses

import pytest

from tf_lifelong import config as config_lib


def test_the_paper_profile_is_the_method_defaults():
  c = config_lib.profile("paper")
  assert (c.tau0, c.tau_rate, c.tau_min, c.tau_update_every) == (1.0, 3e-5, 0.5, 10)
  assert (c.consistency_weight, c.mi_weight, c.consistency_kl) == (1.0, 1.0, "reverse")
  assert (c.learning_rate, c.continuous_dim, c.teacher_pad_eps) == (1e-4, 20, 1e-6)
  assert (c.grow_init, c.lr_plateau_decays, c.replay_sample_pixels) == ("glorot", 0, False)
  assert not c.consistency_gaussian and c.decoder_distillation == 0.0
  assert c.dataset == "fashion_mnist" and c.resolved_arch == "mlp"


def test_the_default_profile_is_config_defaults_and_differs_from_the_paper_where_it_says():
  default, paper = config_lib.profile(), config_lib.profile("paper")
  assert default == config_lib.Config()
  differ = {k for k, v in default.to_dict().items() if paper.to_dict()[k] != v}
  assert differ == set(config_lib.PAPER_PROFILE)
  assert config_lib.profile("paper", seed=3).seed == 3
  with pytest.raises(config_lib.ConfigError, match="unknown profile 'best'"):
    config_lib.profile("best")
  with pytest.raises(config_lib.ConfigError, match="unknown configuration field"):
    config_lib.profile("paper", speed=2)


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
    ("replay_weight", 0.0, "replay_weight must be positive"),
    ("replay_fraction", 1.0, "replay_fraction must be in"),
    ("replay_fraction", -0.1, "replay_fraction must be in"),
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


def _other(field: dataclasses.Field):
  """A valid value of `field` other than its default, as a command-line string and a value."""
  d, kind, choices = field.default, field.type, field.metadata["choices"]
  if choices:
    value = next(c for c in choices if c != d)
    return value, value
  if kind == "bool":
    return str(not d).lower(), not d
  if kind.startswith("int"):
    value = 3 if d is None else d + 1
    return str(value), value
  if kind == "float":
    value = 0.5 if d == 0 else d / 2
    return repr(value), value
  if kind.startswith("tuple[int"):
    return "2,0", (2, 0)
  if kind.startswith("tuple[float"):
    return "10,20.5", (10.0, 20.5)
  value = {"dataset": "mnist"}.get(field.name, "/tmp/somewhere")
  return value, value


def test_every_field_is_a_flag_with_its_help_and_round_trips_from_the_command_line():
  """One declaration per field: a flag of the same name, help and default, no other list."""
  import json
  import subprocess
  import sys

  fields = dataclasses.fields(config_lib.Config)
  args = [f"--{f.name}={_other(f)[0]}" for f in fields]
  code = (
    "import sys, json; from absl import flags; from tf_lifelong.cli import flags as f\n"
    "f.define_run_flags(); flags.FLAGS(['train'] + sys.argv[1:])\n"
    "helps = {n: flags.FLAGS[n].help for n in flags.FLAGS}\n"
    "print(json.dumps({'config': f.config_from_flags().to_dict(), 'help': helps}))"
  )
  run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
  assert run.returncode == 0, run.stderr[-2000:]
  out = json.loads(run.stdout.strip().splitlines()[-1])
  for f in fields:
    assert f.metadata["help"] and out["help"][f.name].endswith(f.metadata["help"]), f.name
    got = out["config"][f.name]
    want = _other(f)[1]
    assert (tuple(got) if isinstance(want, tuple) else got) == want, f.name


def test_profile_flag_gives_the_paper_and_flags_override_it():
  import json
  import subprocess
  import sys

  code = (
    "import sys; from absl import flags; from tf_lifelong.cli import flags as f\n"
    "f.define_run_flags(); flags.FLAGS(['train'] + sys.argv[1:])\n"
    "print(f.config_from_flags().to_json())"
  )

  def config(*args):
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout[run.stdout.index("{") :])

  assert config() == json.loads(config_lib.Config().to_json())
  paper = config("--profile=paper")
  assert paper == json.loads(config_lib.profile("paper").to_json())
  assert config("--profile=paper", "--learning_rate=0.002")["learning_rate"] == 0.002
  assert config("--profile=paper", "--learning_rate=0.002")["grow_init"] == "glorot"


def test_roles_are_read_off_the_fields():
  from tf_lifelong.state import checkpoints, resume

  assert resume.RUNTIME_ONLY == {
    "threads",
    "checkpoint_every",
    "keep_checkpoints",
    "data_dir",
    "download",
    "steps_per_execution",
    "sampling_samples",
  }
  assert checkpoints.MODEL_FIELDS == (
    "resolved_arch",
    "continuous_dim",
    "hidden_units",
    "conv_filters",
  )
  assert config_lib.fields_with_role("stream") == ("dataset", "order", "num_intervals", "angles")
  for f in dataclasses.fields(config_lib.Config):
    assert f.metadata["section"] in config_lib.SECTIONS, f.name
