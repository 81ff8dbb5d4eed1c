"""Progress lines, sample inputs and the TensorBoard/PNG writer."""
import glob
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import config as config_lib
from sagan_tf.training import summaries

METRICS = dict(d_loss=1.5, d_loss_real=0.75, d_loss_fake=0.75, g_loss=-0.25,
               real_logits=0.5, fake_logits=-0.5)


def test_progress_line_and_eta():
  p = summaries.Progress(step=250, target=1500, metrics=METRICS, steps_per_sec=2.0,
                         images_per_sec=64.0)
  assert p.eta_seconds == 625.0
  line = p.line()
  for part in ("step 250/1500", "d_loss 1.5000", "real 0.7500", "g_loss -0.2500",
               "2.00 steps/s", "64 img/s", "ETA 10m25s"):
    assert part in line, (part, line)
  first = summaries.Progress(1, 10, METRICS, float("nan"), float("nan"))
  assert "speed after step 1" in first.line() and "ETA ?" in first.line()
  resumed = summaries.Progress(8, 10, METRICS, float("nan"), float("nan"))
  assert "speed after step 8" in resumed.line()  # a run resumed at step 7
  assert summaries.format_duration(3725) == "1h02m05s"
  assert summaries.format_duration(math.inf) == "?"


def test_fixed_sample_inputs_one_row_per_class():
  config = config_lib.from_preset("tiny")
  z, labels, grid = summaries.fixed_sample_inputs(config)
  assert grid == (10, 8) and z.shape == (80, config.z_dim)
  np.testing.assert_array_equal(labels.numpy()[:9], [0] * 8 + [1])
  z2, _, _ = summaries.fixed_sample_inputs(config)
  np.testing.assert_array_equal(z.numpy(), z2.numpy())
  big = config.replace(num_classes=1000)
  _, labels, grid = summaries.fixed_sample_inputs(big)
  assert grid == (8, 8) and labels.shape == (64,) and labels.numpy().max() < 1000


def read_events(logdir):
  """{tag: [(step, value)]} of every event file in logdir: scalars as floats,
  images as decoded uint8 arrays."""
  out = {}
  for f in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(f):
      for v in event.summary.value:
        value = tf.make_ndarray(v.tensor)
        if value.ndim == 0:
          value = float(value)
        else:  # an image summary: [width, height, PNG...]
          value = tf.io.decode_png(value[2]).numpy()
        out.setdefault(v.tag, []).append((event.step, value))
  return out


def test_writer_writes_png_and_events(tmp_path):
  writer = summaries.SummaryWriter(str(tmp_path))
  images = np.random.default_rng(0).uniform(-1, 1, (6, 8, 8, 3)).astype(np.float32)
  path = writer.samples(42, images, grid=(2, 3))
  p = summaries.Progress(42, 100, METRICS, 1.0, 4.0)
  extra = {"attention/g_non_local/sigma_ratio": 0.125,
           "attention/d_non_local/sigma_ratio": -0.25,
           "lr/generator": 1e-4, "lr/discriminator": 4e-4}
  writer.scalars(42, p, extra)
  writer.scalars(43, summaries.Progress(43, 100, METRICS, float("nan"),
                                        float("nan")), {})
  writer.close()
  assert path == os.path.join(str(tmp_path), "samples", "step_0000042.png")
  assert Image.open(path).size == (3 * 9 - 1, 2 * 9 - 1)
  # The tags docs/training.md names, with their values and steps.
  events = read_events(str(tmp_path))
  want = {"losses/d_loss": 1.5, "losses/d_loss_real": 0.75,
          "losses/d_loss_fake": 0.75, "losses/g_loss": -0.25,
          "logits/real": 0.5, "logits/fake": -0.5,
          "speed/steps_per_sec": 1.0, "speed/images_per_sec": 4.0, **extra}
  assert set(events) == set(want) | {"samples"}, sorted(events)
  for tag, value in want.items():
    assert events[tag][0] == (42, pytest.approx(value, rel=1e-6)), tag
  # Step 43 has no speed yet (NaN): no speed scalars, every other one.
  assert len(events["speed/steps_per_sec"]) == 1
  assert events["losses/g_loss"][1] == (43, pytest.approx(-0.25))
  # The sample grid image: the PNG's pixels.
  ((step, grid),) = events["samples"]
  assert step == 42
  with Image.open(path) as png:
    np.testing.assert_array_equal(grid, np.asarray(png.convert("RGB")))


def test_disabled_writer_writes_nothing(tmp_path):
  writer = summaries.SummaryWriter(str(tmp_path / "w"), enabled=False)
  assert writer.samples(1, np.zeros((1, 8, 8, 3), np.float32)) is None
  writer.scalars(1, summaries.Progress(1, 2, METRICS, 1.0, 1.0), {})
  writer.close()
  assert not os.path.exists(tmp_path / "w")
