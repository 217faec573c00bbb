"""--deterministic: two runs of the same configuration give the same metrics.

The tiny run (tests/train_helpers.py: MNIST digits 3, 7, 3) is made twice with
--deterministic, in two processes: once as the shared reference run, once
here; every metric of every row (but the wall time) must be equal, -ELBO values
to the last bit.
"""

import pytest

from tests import train_helpers as th


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("determinism")
  again = th.start_train(
    f"--config_file={th.config_file(base)}",
    f"--workdir={base / 'again'}",
    "--deterministic",
    log_path=str(base / "again.log"),
  )
  try:
    reference = th.reference_run(tmp_path_factory)  # Made meanwhile, if not made yet.
  finally:
    status = th.wait(again)
  assert status == 0, (base / "again.log").read_text()[-3000:]
  return th.metrics(reference), th.metrics(base / "again")


def test_two_deterministic_runs_give_identical_metrics(two_runs):
  a, b = two_runs
  assert [r["interval"] for r in a] == [r["interval"] for r in b] == [0, 1, 2]
  assert [r["test_neg_elbo_seen"] for r in a] == [r["test_neg_elbo_seen"] for r in b]
  for row_a, row_b in zip(a, b):
    differ = {k for k in row_a if row_a[k] != row_b[k]}
    assert differ <= {"wall_seconds", "phase_seconds"}, {k: (row_a[k], row_b[k]) for k in differ}
