"""Distribution strategies end to end: mirrored over two logical CPUs, multi-worker on 127.0.0.1.

Logical devices and collective ops must be set up before TensorFlow initialises,
so every run here is a subprocess of its own.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests import paths, train_helpers

_MIRRORED_RUN = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    from tf_lifelong import config as config_lib
    from tf_lifelong.train import lifelong

    class ScopeWatch:
      # Names the variables of the student and its teacher that are not distributed ones.
      def __init__(self):
        self.local = []
        self.checked = 0
      def before_interval(self, ctx):
        models = [ctx.student] + ([ctx.student.teacher] if ctx.student.teacher else [])
        for v in [v for m in models for v in m.variables] + list(ctx.student.optimizer.variables):
          self.checked += 1
          if not isinstance(getattr(v, "value", v), tf.distribute.DistributedValues):
            self.local.append(v.path)

    config = config_lib.Config.from_json(sys.argv[1])
    watch = ScopeWatch()
    rows = lifelong.run(config, sys.argv[2], out=open(os.devnull, "w"), hooks=[watch])
    print(json.dumps({"steps": [r["steps"] for r in rows], "local": watch.local,
                      "checked": watch.checked}))
""")
CONV = dict(
  dataset="fashion_mnist_mnist",
  data_dir=paths.DATA_ROOT,
  batch_size=16,
  continuous_dim=4,
  conv_filters=8,
  eval_every=1,
  max_steps_per_interval=2,
  patience=5,
  eval_examples=10,
  validation_synthetic_examples=10,
  seed=3,
  threads=1,
)
"""The conv model on a 2-interval 32x32x3 stream, a few steps each (eval_every=1: the
TensorBoard train/loss at step 1 is the first step's loss)."""


def _mirrored_run(workdir, **overrides):
  config = json.dumps({**CONV, **overrides})
  result = subprocess.run(
    [sys.executable, "-c", _MIRRORED_RUN, config, str(workdir)],
    capture_output=True,
    text=True,
    timeout=400,
    cwd=paths.REPO,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
  )
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
  return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def _first_loss(workdir) -> float:
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(
    os.path.join(str(workdir), "tensorboard"), size_guidance={"tensors": 0}
  )
  acc.Reload()
  import tensorflow as tf

  events = [e for e in acc.Tensors("train/loss") if e.step == 1]
  assert events, acc.Tags()
  return float(tf.make_ndarray(events[0].tensor_proto))


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
  one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
  single, _ = _mirrored_run(one)
  double, log = _mirrored_run(two, strategy="mirrored", num_cpu_devices=2, jit_compile=True)
  return one, two, single, double, log


def test_mirrored_on_two_cpus_runs_the_conv_stream(mirrored):
  _, two, _, double, log = mirrored
  assert double["steps"] == [2, 2]
  for name in ("metrics.csv", "export", os.path.join("checkpoints", "latest.json")):
    assert os.path.exists(os.path.join(str(two), name)), name
  # XLA fails under MirroredStrategy on CPUs: the run falls back, saying so once.
  assert log.count("XLA does not work with 2 replicas") == 1, log[-3000:]


def test_mirrored_variables_are_made_in_the_scope(mirrored):
  _, _, _, double, _ = mirrored
  assert double["checked"] > 50 and double["local"] == []


def test_mirrored_first_loss_matches_one_device(mirrored):
  one, two, _, _, _ = mirrored
  # The loss is a global-batch mean on both, from the same weights and rows; only
  # the noise draws (reparameterised z_c and z_d, per-replica seeds) differ. Seen:
  # 2203.4 vs 2206.6 nats (0.14 %); a wrong replica scaling would be off by 50-100 %.
  single, double = _first_loss(one), _first_loss(two)
  assert double == pytest.approx(single, rel=0.01), (single, double)


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


_WORKER_RUN = dict(
  order=[3, 7],
  eval_every=5,
  max_steps_per_interval=10,
  eval_examples=20,
  validation_synthetic_examples=20,
)
"""The tiny run (train_helpers.TINY) that the multi-worker tests start on two workers."""


def _start_workers(tmp_path, timeout_s: int = 60, **overrides):
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  config = train_helpers.config_file(tmp_path, **{**_WORKER_RUN, **overrides})
  procs = []
  for i in range(2):
    env = dict(
      os.environ,
      TF_CPP_MIN_LOG_LEVEL="2",
      TF_LIFELONG_COLLECTIVE_TIMEOUT=str(timeout_s),
      TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
    )
    log = open(os.path.join(str(tmp_path), f"worker{i}.log"), "w")
    procs.append(
      subprocess.Popen(
        [
          sys.executable,
          train_helpers.TRAIN,
          f"--config_file={config}",
          "--strategy=multi_worker",
          f"--workdir={tmp_path / f'w{i}'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
      )
    )
    log.close()
  return procs


def _log(tmp_path, i):
  with open(os.path.join(str(tmp_path), f"worker{i}.log")) as f:
    return f.read()


def test_multi_worker_runs_the_stream_and_only_the_chief_writes(tmp_path):
  procs = _start_workers(tmp_path)
  codes = [train_helpers.wait(p, timeout=400) for p in procs]
  assert codes == [0, 0], _log(tmp_path, 0)[-3000:] + _log(tmp_path, 1)[-3000:]
  chief = tmp_path / "w0"
  for name in ("metrics.csv", "export", os.path.join("checkpoints", "interval-001.index")):
    assert os.path.exists(chief / name), name
  assert not os.path.exists(tmp_path / "w1")  # The other worker wrote nothing.
  steps = sum(r["steps"] for r in train_helpers.metrics(chief))
  assert f"2 intervals, {steps} steps" in _log(tmp_path, 1)


def test_multi_worker_fails_when_a_worker_dies(tmp_path):
  """The survivor ends with one line within its collective timeout (30 s) and a margin,
  well before the 240 s after which the test itself would kill it."""
  procs = _start_workers(tmp_path, timeout_s=30)
  log0 = os.path.join(str(tmp_path), "worker0.log")
  deadline = time.monotonic() + 200
  while "interval 1/2" not in open(log0).read():
    assert time.monotonic() < deadline and procs[0].poll() is None, _log(tmp_path, 0)[-3000:]
    time.sleep(1)
  procs[1].send_signal(signal.SIGKILL)
  started = time.monotonic()
  code = train_helpers.wait(procs[0], timeout=240)
  elapsed = time.monotonic() - started
  procs[1].wait()
  assert code not in (0, -signal.SIGKILL)  # failed by itself, not killed by wait()
  assert elapsed < 30 + 60, f"the survivor took {elapsed:.0f} s to give up"
  assert "another worker is gone or did not answer" in _log(tmp_path, 0), _log(tmp_path, 0)[-3000:]
  assert "Traceback" not in _log(tmp_path, 0)


_ONE_DEVICE_RUNS = textwrap.dedent("""
    import json, os, sys
    from tf_lifelong import config as config_lib
    from tf_lifelong.train import lifelong

    steps = {}
    for i, text in enumerate(sys.argv[2:]):
      config = config_lib.Config.from_json(text)
      rows = lifelong.run(config, os.path.join(sys.argv[1], str(i)), out=open(os.devnull, "w"))
      steps[str(config.max_steps_per_interval)] = [r["steps"] for r in rows]
    print(json.dumps(steps))
""")
_SHORT_INTERVALS = (3, 5, 7)
"""max_steps_per_interval below, equal to and above eval_every (5)."""


def _worker_config(max_steps: int) -> dict:
  return {**train_helpers.TINY, **_WORKER_RUN, "max_steps_per_interval": max_steps}


@pytest.fixture(scope="module")
def one_device_steps(tmp_path_factory):
  """Steps per interval of one-device runs of the workers' configurations (one process)."""
  configs = [json.dumps(_worker_config(n)) for n in _SHORT_INTERVALS]
  folder = str(tmp_path_factory.mktemp("one_device"))
  result = subprocess.run(
    [sys.executable, "-c", _ONE_DEVICE_RUNS, folder, *configs],
    capture_output=True,
    text=True,
    timeout=400,
    cwd=paths.REPO,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
  )
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
  return {int(k): v for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}


def _collective_threads(pid: int) -> int:
  """How many threads of process `pid` are TensorFlow's `collective_ops` threads
  (0 once it is gone, or without /proc)."""
  count = 0
  with contextlib.suppress(OSError):
    for task in os.listdir(f"/proc/{pid}/task"):
      with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/comm") as f:
        count += f.read().strip() == "collective_ops"
  return count


def _wait_watching_threads(procs, timeout: float) -> tuple[list[int], int]:
  """Waits for the workers; (their exit statuses, the most collective_ops threads
  one of them had at a time)."""
  deadline, peak = time.monotonic() + timeout, 0
  while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
    peak = max([peak] + [_collective_threads(p.pid) for p in procs if p.poll() is None])
    time.sleep(0.25)
  return [train_helpers.wait(p, timeout=max(1.0, deadline - time.monotonic())) for p in procs], peak


@pytest.mark.parametrize("max_steps", _SHORT_INTERVALS)
def test_multi_worker_intervals_run_max_steps_as_on_one_device(
  tmp_path, one_device_steps, max_steps
):
  # Each interval runs exactly max_steps steps (evaluations at every 5th and the
  # last), on both workers, as a one-device run does. The workers once ran
  # max(1, max_steps // eval_every) * eval_every steps; and TensorFlow's
  # per-collective timeout started a thread per collective op (named after the
  # collective_ops thread that starts it), sleeping for the whole timeout:
  # over 1,000 within these 2 x 5 steps, thousands more a second in longer
  # intervals, until the processes aborted ("Resource temporarily
  # unavailable"). Without them a worker has a few dozen collective_ops threads.
  procs = _start_workers(tmp_path, max_steps_per_interval=max_steps)
  codes, peak = _wait_watching_threads(procs, timeout=400)
  assert codes == [0, 0], _log(tmp_path, 0)[-3000:] + _log(tmp_path, 1)[-3000:]
  steps = [r["steps"] for r in train_helpers.metrics(tmp_path / "w0")]
  assert steps == one_device_steps[max_steps] == [max_steps, max_steps]
  assert f"2 intervals, {2 * max_steps} steps" in _log(tmp_path, 1)
  assert peak < 500, f"a worker had {peak} collective_ops threads"
