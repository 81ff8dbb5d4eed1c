"""Progress lines, the NaN guard, sample inputs and the TensorBoard/PNG writer."""
import math
import os

import numpy as np
import pytest
from PIL import Image

from sagan_tf import config as config_lib
from sagan_tf import summaries

METRICS = dict(d_loss=1.5, d_loss_real=0.75, d_loss_fake=0.75, g_loss=-0.25,
               real_logits=0.5, fake_logits=-0.5)


def test_check_finite_names_step_and_every_bad_value():
  summaries.check_finite(3, METRICS)
  bad = dict(METRICS, d_loss=float("nan"), g_loss=float("-inf"))
  with pytest.raises(summaries.NonFiniteLossError,
                     match=r"step 12: d_loss=nan, g_loss=-inf"):
    summaries.check_finite(12, bad)


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


def test_writer_writes_png_and_events(tmp_path):
  writer = summaries.SummaryWriter(str(tmp_path))
  images = np.random.default_rng(0).uniform(-1, 1, (6, 8, 8, 3)).astype(np.float32)
  path = writer.samples(42, images, grid=(2, 3))
  p = summaries.Progress(42, 100, METRICS, 1.0, 4.0)
  writer.scalars(42, p, {"attention/g_non_local/sigma_ratio": 0.1})
  writer.close()
  assert path == os.path.join(str(tmp_path), "samples", "step_0000042.png")
  assert Image.open(path).size == (3 * 9 - 1, 2 * 9 - 1)
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))


def test_disabled_writer_writes_nothing(tmp_path):
  writer = summaries.SummaryWriter(str(tmp_path / "w"), enabled=False)
  assert writer.samples(1, np.zeros((1, 8, 8, 3), np.float32)) is None
  writer.scalars(1, summaries.Progress(1, 2, METRICS, 1.0, 1.0), {})
  writer.close()
  assert not os.path.exists(tmp_path / "w")
