"""sagan_tf.perf.conv_rate (the benchmark's peak convolution rate) and its printout."""

import pytest
import tensorflow as tf

from sagan_tf.perf import benchmark
from sagan_tf import config as config_lib
from sagan_tf.perf import conv_rate
from tests.benchmark_cli import json_line, run_cli

TINY = config_lib.from_preset("tiny")


@pytest.mark.parametrize("shape", [((4, 8, 8, 16), 16), ((2, 32, 32, 3), 64),
                                   ((1, 5, 7, 6), 9)])
def test_flops_match_the_graph_profiler(shape):
  conv = conv_rate.ConvShape(*shape)
  fn = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
  cf = fn.get_concrete_function(tf.TensorSpec(conv.input_shape),
                                tf.TensorSpec([3, 3, shape[0][-1], shape[1]]))
  assert conv.flops == benchmark.count_flops(cf) > 0


def test_convs_of_graph_keeps_3x3_stride_1_and_counts():
  def f(x):
    w3 = tf.ones([3, 3, 4, 4])
    y = tf.nn.conv2d(x, w3, 1, "SAME")
    y = tf.nn.conv2d(y, w3, 1, "SAME")  # the same shape again
    y = tf.nn.conv2d(y, tf.ones([1, 1, 4, 8]), 1, "SAME")  # 1x1: not counted
    tf.nn.conv2d(y, tf.ones([3, 3, 8, 8]), 2, "SAME")  # strided: not counted
    return tf.nn.conv2d(y, tf.ones([3, 3, 8, 2]), 1, "SAME")
  graph = tf.function(f).get_concrete_function(tf.TensorSpec([2, 6, 6, 4])).graph
  found = {(c.input_shape, c.filters): c.count
           for c in conv_rate.convs_of_graph(graph)}
  assert found == {((2, 6, 6, 4), 4): 2, ((2, 6, 6, 8), 2): 1}


def test_step_convs_of_the_tiny_config():
  # G (gf 4): 4x4x16 -> up blocks of 16 channels at 8, 16, 32 px (two 3x3 each),
  # last conv 16 -> 3. D (df 4): optimized block 3 -> 16 -> 16 at 32 px, a
  # downsampling block at 16 px, two blocks at 8 px (two 3x3 each).
  got = {(c.input_shape, c.filters): c.count
         for c in conv_rate.step_convs(TINY, 4)}
  assert got == {((4, 8, 8, 16), 16): 2 + 4, ((4, 16, 16, 16), 16): 2 + 2,
                 ((4, 32, 32, 16), 16): 2 + 1, ((4, 32, 32, 3), 16): 1,
                 ((4, 32, 32, 16), 3): 1}
  g_only = {(c.input_shape, c.filters): c.count
            for c in conv_rate.step_convs(TINY, 2, ("g",))}
  assert g_only == {((2, 8, 8, 16), 16): 2, ((2, 16, 16, 16), 16): 2,
                    ((2, 32, 32, 16), 16): 2, ((2, 32, 32, 16), 3): 1}


def test_measure_best_and_weighted_rates(monkeypatch):
  a = conv_rate.ConvShape((1, 10, 10, 10), 10, count=3)  # 180,000 FLOPs
  b = conv_rate.ConvShape((2, 10, 10, 10), 10, count=1)  # 360,000 FLOPs
  seconds = {a: 1e-4, b: 4e-4}
  monkeypatch.setattr(conv_rate, "time_conv", lambda s, *args: seconds[s])
  rate = conv_rate.measure([a, b])
  assert rate.best_shape == a and rate.gflops_per_s == pytest.approx(1.8)
  assert dict(rate.per_shape)[b] == pytest.approx(0.9)
  # (3 x 180,000 + 360,000) FLOPs in (3 x 1e-4 + 4e-4) s.
  assert rate.weighted_gflops_per_s == pytest.approx(0.9e6 / 7e-4 / 1e9)
  assert conv_rate.fraction_of_peak(45.0, 180.0) == pytest.approx(0.25)
  with pytest.raises(ValueError, match="peak rate must be positive"):
    conv_rate.fraction_of_peak(1.0, 0.0)
  with pytest.raises(ValueError, match="no 3x3 convolution"):
    conv_rate.measure([])


def test_time_conv_runs_the_shape_in_both_compile_modes():
  shape = conv_rate.ConvShape((1, 4, 4, 2), 3)
  assert 0 < conv_rate.time_conv(shape, repeats=1, warmup=1) < 60
  assert 0 < conv_rate.time_conv(shape, jit_compile=True, repeats=1, warmup=1) < 60


def test_benchmark_prints_the_fraction_of_peak():
  r = json_line(run_cli("--preset=tiny", "--steps=2", "--warmup=1",
                        "--jit_compile=auto"))
  assert r["jit_compile"] == "auto" and r["xla"] is False
  assert r["xla_reason"].startswith("auto: off with gf_dim=4")
  assert r["conv_gflops_per_s"] > 0 and r["conv_shape"].startswith("[4,")
  assert r["conv_gflops_per_s"] >= r["conv_weighted_gflops_per_s"] > 0
  assert r["fraction_of_peak"] == pytest.approx(
      r["achieved_gflops_per_s"] / r["conv_gflops_per_s"], abs=2e-3)
