"""Timing and FLOP counting for the benchmark command line (launch/benchmark.py).

FLOPs are counted by TensorFlow's graph profiler on the traced step (float
operations of every op with a registered FLOP statistic: convolutions, matmuls and
elementwise ops, forward and backward), so "achieved FLOP/s" is model FLOPs per
step divided by the measured time per step.
"""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable, Dict, Sequence

import tensorflow as tf


def count_flops(concrete_function) -> int:
  """Float operations of one call of a traced ``tf.function`` (static shapes)."""
  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler import model_analyzer, option_builder
  opts = option_builder.ProfileOptionBuilder.float_operation()
  opts["output"] = "none"
  return int(model_analyzer.profile(concrete_function.graph,
                                    options=opts).total_float_ops)


def peak_host_memory_mb() -> float:
  """Peak resident set size of this process so far, in MiB (Linux ru_maxrss)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_steps(step: Callable[[], object], steps: int, warmup: int) -> Sequence[float]:
  """Runs ``step`` warmup times untimed, then ``steps`` times; seconds per call.

  ``step`` must return something whose ``.numpy()`` (or nest of them) forces the
  computation to finish, so asynchronous execution is not mistaken for speed.
  """
  def run():
    out = step()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
  for _ in range(warmup):
    run()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
  return times


def summarize(times: Sequence[float], images_per_step: int, flops: int) -> Dict:
  """The benchmark's figures from per-step times."""
  med = statistics.median(times)
  return {
      "ms_per_step_median": round(med * 1e3, 2),
      "ms_per_step_min": round(min(times) * 1e3, 2),
      "ms_per_step_max": round(max(times) * 1e3, 2),
      "images_per_s": round(images_per_step / med, 3),
      "flops_per_step": flops,
      "achieved_gflops_per_s": round(flops / med / 1e9, 3),
      "peak_host_memory_mb": round(peak_host_memory_mb(), 1),
      "timed_steps": len(times),
  }
