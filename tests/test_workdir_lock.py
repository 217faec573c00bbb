"""One writer per workdir (tf_lifelong/state/lock.py): refusals, takeovers, leases, readers.

The lock itself (local flock and the lease of URL workdirs), two Learners in one
process, two bin/train on one live workdir (the second refused in one line, the
first ending with all its rows), a lock left by a SIGKILLed process taken over,
and bin/export refused where it would write into a held workdir.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests import paths, synthetic
from tests import train_helpers as th
from tf_lifelong.state import lock

HOLDER = (
  "import os, signal, sys\n"
  "from tf_lifelong.state import lock\n"
  "lock.acquire(sys.argv[1])\n"
  "os.kill(os.getpid(), signal.SIGKILL)\n"
)
"""A process that takes a workdir's lock and dies by SIGKILL (no cleanup)."""


def _killed_holder(workdir) -> int:
  """Runs HOLDER on `workdir`; the pid of the dead process."""
  env = dict(os.environ, PYTHONPATH=paths.REPO)
  proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], env=env)
  assert proc.wait(timeout=60) == -9
  return proc.pid


def _record(workdir) -> dict:
  with open(os.path.join(str(workdir), lock.LOCK)) as f:
    return json.load(f)


@pytest.mark.parametrize("kind", ["local", "url"])
def test_a_second_writer_is_refused_naming_the_holder(tmp_path, kind):
  workdir = str(tmp_path / "w") if kind == "local" else f"file://{tmp_path}/w"
  held = lock.acquire(workdir)
  record = _record(tmp_path / "w")
  assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
  with pytest.raises(lock.LockError) as e:
    lock.acquire(workdir)
  message = str(e.value)
  assert "\n" not in message and message.startswith(f"{workdir} is locked by another writer")
  assert f"host {socket.gethostname()}, pid {os.getpid()} (this process), since 20" in message
  assert "command: " in message
  held.release()
  assert not os.path.exists(tmp_path / "w" / lock.LOCK)  # A clean release leaves nothing.
  again = lock.acquire(workdir)
  assert again.taken_over is None  # Freed, not taken over.
  again.release()


@pytest.mark.parametrize("kind", ["local", "url"])
def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, kind):
  pid = _killed_holder(tmp_path / "w")
  assert _record(tmp_path / "w")["pid"] == pid  # Left behind by the SIGKILL.
  workdir = str(tmp_path / "w") if kind == "local" else f"file://{tmp_path}/w"
  with lock.acquire(workdir) as held:
    assert held.taken_over.startswith(f"took over the lock of {workdir} from a writer that is gone")
    assert f"pid {pid}," in held.taken_over
    assert _record(tmp_path / "w")["pid"] == os.getpid()


def _foreign(workdir, renewed: float) -> None:
  """A lock record of a writer on another host, last renewed at `renewed`."""
  os.makedirs(workdir, exist_ok=True)
  record = dict(host="elsewhere", pid=1, since=renewed, renewed=renewed, lease_seconds=60.0)
  with open(os.path.join(workdir, lock.LOCK), "w") as f:
    json.dump({**record, "command": "bin/train", "token": "x"}, f)


def test_a_url_lease_of_another_host_holds_until_it_expires(tmp_path):
  workdir = f"file://{tmp_path}/w"
  _foreign(str(tmp_path / "w"), time.time() - 10)  # Renewed 10 s ago: alive.
  with pytest.raises(lock.LockError, match="host elsewhere, pid 1, since"):
    lock.acquire(workdir)
  _foreign(str(tmp_path / "w"), time.time() - 61)  # Past its 60 s lease: gone.
  with lock.acquire(workdir) as held:
    assert "host elsewhere" in held.taken_over


def test_the_holder_renews_its_lease(tmp_path):
  workdir = f"file://{tmp_path}/w"
  with lock.acquire(workdir, lease=0.6):
    first = _record(tmp_path / "w")["renewed"]
    time.sleep(0.8)
    assert _record(tmp_path / "w")["renewed"] > first
  assert not os.path.exists(tmp_path / "w" / lock.LOCK)


# ------------------------------------------------------------------- Learner
def _tiny_config():
  from tf_lifelong import config as config_lib

  return config_lib.Config(
    batch_size=32, hidden_units=16, continuous_dim=2, eval_every=5, max_steps_per_interval=5,
    patience=1, eval_examples=20, validation_synthetic_examples=20, seed=1, threads=0,
  )  # fmt: skip


def test_two_learners_on_one_workdir_in_one_process(tmp_path):
  from tf_lifelong import Learner
  from tf_lifelong.train.context import RunError

  workdir, quiet = str(tmp_path / "w"), open(os.devnull, "w")
  images, ids = synthetic.images()
  first = Learner(_tiny_config(), workdir, out=quiet)
  first.learn(images[ids == 3], name="three")
  with pytest.raises(RunError, match=r"is locked by another writer .*\(this process\)"):
    Learner.load(workdir, out=quiet)
  with pytest.raises(RunError, match="is locked by another writer"):
    Learner(_tiny_config(), workdir, out=quiet, overwrite=True)
  reader = Learner.load(workdir, out=quiet, read_only=True)  # Readers need no lock.
  assert reader.num_categories == 1 and reader.sample(2, seed=0).shape == (2, 28, 28, 1)
  with pytest.raises(RunError, match="opened read_only"):
    reader.learn(images[ids == 7], name="seven")
  first.close()
  with Learner.load(workdir, out=quiet) as second:  # Free once the first is closed.
    with pytest.raises(RunError, match="is locked by another writer"):
      first.learn(images[ids == 7], name="seven")  # It would take the lock again.
    second.learn(images[ids == 7], name="seven")
  assert not os.path.exists(os.path.join(workdir, lock.LOCK))


def test_export_after_close_takes_the_lock_for_the_write_only(tmp_path):
  from tf_lifelong import Learner
  from tf_lifelong.train.context import RunError

  workdir, quiet = str(tmp_path / "w"), open(os.devnull, "w")
  images, ids = synthetic.images()
  learner = Learner(_tiny_config(), workdir, out=quiet)
  learner.learn(images[ids == 3], name="three")
  learner.close()
  with lock.acquire(workdir):  # Another writer, once the learner let go.
    with pytest.raises(RunError, match=r"is locked by another writer .*\(this process\)"):
      learner.export()
    assert not os.path.exists(os.path.join(workdir, "export"))
    served = learner.export(str(tmp_path / "served"))  # Elsewhere: no lock needed.
    assert os.path.isfile(os.path.join(served, "saved_model.pb"))
  path = learner.export()  # Free again: taken for the write, then freed.
  assert os.path.isfile(os.path.join(path, "saved_model.pb"))
  assert path == os.path.join(workdir, "export")
  assert not os.path.exists(os.path.join(workdir, lock.LOCK))
  reader = Learner.load(workdir, out=quiet, read_only=True)
  with pytest.raises(RunError, match="opened read_only"):
    reader.export(os.path.join(workdir, "mine"))  # Into the workdir: a writer's.
  assert os.path.isfile(os.path.join(reader.export(str(tmp_path / "read")), "saved_model.pb"))


# ----------------------------------------------------------------- bin/train
def _wait_for_lock(workdir, pid, timeout=120.0) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      if _record(workdir)["pid"] == pid:
        return
    except (OSError, ValueError, KeyError):
      pass
    time.sleep(0.1)
  raise AssertionError(f"pid {pid} never took the lock of {workdir}")


def test_two_bin_train_on_one_live_workdir(tmp_path):
  workdir = str(tmp_path / "w")
  args = [f"--config_file={th.config_file(tmp_path)}", f"--workdir={workdir}", "--deterministic"]
  first = th.start_train(*args, log_path=str(tmp_path / "first.log"))
  try:
    _wait_for_lock(workdir, first.pid)
    began = time.monotonic()
    second = th.train(*args, timeout=600)
    took = time.monotonic() - began
    assert first.poll() is None, "the first run ended before the second was refused"
  finally:
    status = th.wait(first)
  lines = [line for line in second.stderr.splitlines() if line.strip()]
  assert second.returncode == 2 and len(lines) == 1, second.stderr
  assert lines[0].startswith(f"train: error: {workdir} is locked by another writer (host ")
  assert f"pid {first.pid}, since " in lines[0] and "bin/train" in lines[0]
  assert took < 30, took  # Refused before TensorFlow loads.
  assert status == 0, open(tmp_path / "first.log").read()[-3000:]
  assert [r["interval"] for r in th.metrics(workdir)] == [0, 1, 2]
  assert not os.path.exists(os.path.join(workdir, lock.LOCK))


def test_bin_train_takes_over_a_lock_left_by_a_killed_process(tmp_path):
  workdir = str(tmp_path / "w")
  pid = _killed_holder(workdir)
  result = th.train(
    f"--config_file={th.config_file(tmp_path, order=[3])}", f"--workdir={workdir}", timeout=900
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"took over the lock of {workdir} from a writer that is gone (host " in result.stdout
  assert f"pid {pid}," in result.stdout
  assert len(th.metrics(workdir)) == 1


def _files(folder) -> dict:
  """Every file under `folder` with its size and modification time."""
  found = {}
  for parent, _, names in os.walk(folder):
    for name in names:
      stat = os.stat(os.path.join(parent, name))
      found[os.path.join(parent, name)] = (stat.st_size, stat.st_mtime_ns)
  return found


def test_bin_export_into_a_held_workdir_is_refused_elsewhere_it_reads(tmp_path_factory, tmp_path):
  reference = str(tmp_path / "w")  # A copy: other tests use the shared reference run.
  shutil.copytree(th.reference_run(tmp_path_factory), reference)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=paths.REPO)
  export = [sys.executable, os.path.join(paths.REPO, "bin", "export"), f"--workdir={reference}"]
  with lock.acquire(reference):
    before = _files(reference)
    refused = subprocess.run(export, capture_output=True, text=True, timeout=900, env=env)
    elsewhere = str(tmp_path / "served")
    read = subprocess.run(
      [*export, f"--output={elsewhere}"], capture_output=True, text=True, timeout=900, env=env
    )
    assert _files(reference) == before  # Neither wrote into the held workdir.
  lines = [line for line in refused.stderr.splitlines() if line.strip()]
  assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-3000:]
  assert lines[0].startswith(f"export: error: {reference} is locked by another writer (host ")
  assert read.returncode == 0, read.stderr[-3000:]
  assert os.path.isfile(os.path.join(elsewhere, "saved_model.pb"))
