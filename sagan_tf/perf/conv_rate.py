"""How fast TensorFlow runs this config's own 3x3 convolutions: the benchmark's "peak".

``launch.benchmark`` divides the step's achieved FLOP/s by the rate measured here
(``fraction_of_peak``), in the same process and with the same compile mode (XLA
or not) and dtype as the step. The convolutions are the step's own: the distinct
3x3 ``Conv2D`` shapes of one generator forward and one discriminator forward at
the per-replica batch, found by tracing freshly built models (at 128 px with
gf=df=64 and batch 4: 16 shapes, from ``[4, 4, 4, 1024] x 1024`` to
``[4, 128, 128, 128] x 64``). Each is timed on its own (best of a few runs, so
load from other processes lowers it as little as possible) and the peak is the
best rate among them: the fastest the machine ran a convolution this step
contains. A fixed shape (issue 11 quoted ``[4, 64, 64, 256] x 256``: 149 GFLOP/s on
the development machine) would not follow the config's widths, batch or size.
The FLOP-weighted rate over all the forward convolutions (each shape counted as
often as it occurs) is returned too: the rate the forward convolutions of the step
reach as single ops.

A 3x3 convolution (stride 1, SAME) of ``[N, H, W, Cin]`` with ``Cout`` filters is
``2 * N * H * W * 9 * Cin * Cout`` FLOPs, the count of TensorFlow's graph profiler
(``sagan_tf.perf.benchmark.count_flops``).
"""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import List, Sequence, Tuple

import tensorflow as tf
from sagan_tf.layers import conv
from sagan_tf.models.builder import build_models


@dataclasses.dataclass(frozen=True)
class ConvShape:
  """A stride-1 SAME 3x3 convolution of ``input_shape`` (NHWC) to ``filters``."""
  input_shape: Tuple[int, int, int, int]
  filters: int
  count: int = 1  # occurrences in the traced forward passes

  @property
  def flops(self) -> int:
    n, h, w, c = self.input_shape
    return 2 * n * h * w * 9 * c * self.filters

  def __str__(self):
    return f"[{','.join(map(str, self.input_shape))}]x{self.filters}"


@dataclasses.dataclass(frozen=True)
class ConvRate:
  gflops_per_s: float  # best rate among the shapes
  best_shape: ConvShape
  weighted_gflops_per_s: float  # sum(flops * count) / sum(seconds * count)
  per_shape: Tuple[Tuple[ConvShape, float], ...]  # (shape, GFLOP/s)


def convs_of_graph(graph) -> List[ConvShape]:
  """The distinct 3x3 stride-1 ``Conv2D`` ops of a ``tf.Graph``, counted."""
  counts = collections.Counter()
  for op in graph.get_operations():
    if op.type != "Conv2D":
      continue
    x, w = op.inputs[0].shape, op.inputs[1].shape
    if (w.rank != 4 or tuple(w[:2]) != (3, 3)
        or list(op.get_attr("strides")) != [1, 1, 1, 1]):
      continue
    counts[(tuple(int(d) for d in x), int(w[3]))] += 1
  return [ConvShape(s, f, n) for (s, f), n in sorted(counts.items())]


def step_convs(config, batch: int, models: Sequence[str] = ("g", "d")) -> List[ConvShape]:
  """3x3 convolutions of one G forward and/or one D forward at ``batch``.

  Builds fresh models for ``config`` (variables included) and traces them, with
  every convolution as a ``Conv2D`` op (also those ``sagan_tf.layers.conv`` runs as a
  matmul in the step: the peak is that of the convolutions, however computed).
  """
  with conv.as_convolutions():
    return _traced_convs(config, batch, models)


def _traced_convs(config, batch, models):
  g, d = build_models(config)
  s = config.image_size
  counts = collections.Counter()
  if "g" in models:
    fn = tf.function(lambda z, y: g(z, y, training=True, update_u=False))
    graph = fn.get_concrete_function(
        tf.TensorSpec([batch, config.z_dim], tf.float32),
        tf.TensorSpec([batch], tf.int32)).graph
    counts.update({(c.input_shape, c.filters): c.count
                   for c in convs_of_graph(graph)})
  if "d" in models:
    fn = tf.function(lambda x, y: d(x, y, training=True, update_u=False))
    graph = fn.get_concrete_function(
        tf.TensorSpec([batch, s, s, 3], tf.float32),
        tf.TensorSpec([batch], tf.int32)).graph
    for c in convs_of_graph(graph):
      counts[(c.input_shape, c.filters)] += c.count
  return [ConvShape(sh, f, n) for (sh, f), n in sorted(counts.items())]


def time_conv(shape: ConvShape, jit_compile: bool = False, dtype=tf.float32,
              repeats: int = 5, warmup: int = 2) -> float:
  """Best seconds of one ``tf.nn.conv2d`` call of ``shape`` (random inputs)."""
  x = tf.random.normal(shape.input_shape, seed=1, dtype=tf.float32)
  w = tf.random.normal([3, 3, shape.input_shape[-1], shape.filters], seed=2,
                       dtype=tf.float32) * 0.05
  x, w = tf.cast(x, dtype), tf.cast(w, dtype)
  conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"),
                     jit_compile=jit_compile)
  for _ in range(warmup):
    conv(x, w).numpy()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    conv(x, w).numpy()
    best = min(best, time.perf_counter() - t0)
  return best


def measure(shapes: Sequence[ConvShape], jit_compile: bool = False,
            dtype=tf.float32, repeats: int = 5) -> ConvRate:
  """Times every shape; the best and the FLOP-weighted rate (GFLOP/s)."""
  if not shapes:
    raise ValueError("no 3x3 convolution to time")
  per_shape, flops, seconds = [], 0, 0.0
  for shape in shapes:
    t = time_conv(shape, jit_compile, dtype, repeats)
    per_shape.append((shape, shape.flops / t / 1e9))
    flops += shape.flops * shape.count
    seconds += t * shape.count
  best_shape, best = max(per_shape, key=lambda p: p[1])
  return ConvRate(gflops_per_s=best, best_shape=best_shape,
                  weighted_gflops_per_s=flops / seconds / 1e9,
                  per_shape=tuple(per_shape))


def fraction_of_peak(achieved_gflops_per_s: float, peak_gflops_per_s: float) -> float:
  """``achieved / peak``: the share of the measured convolution rate the step
  reaches (can exceed 1 if elementwise work is counted faster than a conv)."""
  if peak_gflops_per_s <= 0:
    raise ValueError(f"peak rate must be positive, got {peak_gflops_per_s}")
  return achieved_gflops_per_s / peak_gflops_per_s
