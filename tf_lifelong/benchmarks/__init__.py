"""The speed benchmarks behind bin/benchmark (docs/performance.md, docs/scaling.md).

- `steps`: the step benchmark: `run(settings)` times the student step, the plain
  VAE step, the matmul bound and the input pipeline side by side, then the
  profile and the interval benchmark; `write` saves the result as JSON.
- `step_bursts`: what the step benchmark times: its variants (`StepVariants`)
  and one burst builder per measurement.
- `step_results`: the step benchmark's numbers from its timed bursts.
- `interval`: the interval benchmark: wall time and peak memory of
  `lifelong.run` over the first intervals, and `estimate_run` for a whole run.
- `scaling`: examples per second of the student step on 1, 2, ... devices.
- `scaling_process`: one device setting of the scaling benchmark, in its own process.
- `settings`: `Settings`, the sizes, steps and variants of a benchmark run.
- `bursts`: the timed pieces of work that run TensorFlow (training steps, the
  step's matmuls, the input pipeline).
- `measuring`: bursts timed in turns, medians, load average and peak memory.
- `flops`: the step's matmuls and their FLOP count.
- `profile`: the step under tf.profiler, each op's time summed by kind.
- `child_process`: a function run in a fresh Python process, JSON in and out.

Importing `settings`, `measuring`, `flops` or `child_process` does not import
TensorFlow; bin/benchmark reads its defaults from `settings` before TensorFlow loads.
"""
