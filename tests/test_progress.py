"""Progress lines and the summary table."""

import io

from tf_lifelong.monitor import progress


def test_line_output_when_not_a_terminal():
  out = io.StringIO()
  p = progress.Progress(3, 1000, stream=out, min_interval_s=0.0)
  p.start_interval(0, "digit 3")
  p.update(250, {"loss": 123.456, "-elbo": None})
  p.end_interval("done")
  text = out.getvalue()
  assert "\r" not in text and "\033" not in text
  lines = text.splitlines()
  assert lines[0] == "interval 1/3: digit 3"
  assert "step    250" in lines[1] and "loss 123.46" in lines[1] and "left ~" in lines[1]
  assert lines[2] == "  done"


def test_updates_are_rate_limited_off_terminal():
  out = io.StringIO()
  p = progress.Progress(1, 100, stream=out, min_interval_s=3600.0)
  p.start_interval(0, "x")
  p.update(1, {"loss": 1.0})
  assert len(out.getvalue().splitlines()) == 1


def test_table_aligns_and_formats():
  t = progress.table(
    [{"a": 1, "b": 2.34567, "c": True}, {"a": 10, "b": None, "c": False}], ["a", "b", "c"]
  )
  lines = t.splitlines()
  assert lines[0].split() == ["a", "b", "c"]
  assert lines[2].split() == ["1", "2.346", "yes"] and lines[3].split() == ["10", "-", "no"]
  assert len({len(line) for line in lines}) == 1
