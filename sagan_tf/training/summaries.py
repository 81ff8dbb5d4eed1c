"""What a training run reports: TensorBoard scalars and images, PNG sample grids,
and a one-line progress record (the NaN/inf guard of the logged losses is
``sagan_tf.run.safe_checkpoints.check_finite``).

Layout in the workdir::

    WORKDIR/events.out.tfevents.*     TensorBoard: losses, logits, attention gates,
                                      learning rates, speed; sample grids
    WORKDIR/samples/step_XXXXXXX.png  the fixed-noise sample grid at that step

Scalar names: ``losses/{d_loss,d_loss_real,d_loss_fake,g_loss}``,
``logits/{real,fake}`` (means), ``attention/<layer>/sigma_ratio`` (every attention
gate of G and D), ``lr/{generator,discriminator}``, ``cond/weight`` (with a
transitional conditioning, ``sagan_tf.training.cond_transition``), ``speed/{steps_per_sec,
images_per_sec}`` (real images through D per second: ``batch_size * d_steps`` per
step). The official code's TF1 summaries had ``d_loss``, ``d_loss_real``,
``d_loss_fake`` and ``g_loss`` and an image grid.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

from sagan_tf import images as images_lib
from sagan_tf.run import workdir as workdir_lib
from sagan_tf.inference import bn_stats


@dataclasses.dataclass
class Progress:
  """One log record: what the console line and the TensorBoard scalars show."""
  step: int
  target: int
  metrics: Dict[str, float]
  steps_per_sec: float
  images_per_sec: float

  @property
  def eta_seconds(self) -> float:
    if not self.steps_per_sec > 0:  # also NaN: speed not measured yet
      return float("inf")
    return max(self.target - self.step, 0) / self.steps_per_sec

  def line(self) -> str:
    """``step 250/1500 | d_loss 1.23 (real 0.61, fake 0.62) | g_loss ...``."""
    m = self.metrics
    parts = [f"step {self.step}/{self.target}",
             f"d_loss {m['d_loss']:.4f} (real {m['d_loss_real']:.4f}, "
             f"fake {m['d_loss_fake']:.4f})",
             f"g_loss {m['g_loss']:.4f}",
             f"logits real {m['real_logits']:+.3f} fake {m['fake_logits']:+.3f}",
             (f"{self.steps_per_sec:.2f} steps/s, {self.images_per_sec:.0f} img/s"
              if math.isfinite(self.steps_per_sec)
              else f"speed after step {self.step}"),  # a resumed run's first log
             f"ETA {format_duration(self.eta_seconds)}"]
    return " | ".join(parts)


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def fixed_sample_inputs(config, max_images: int = 64):
  """Fixed (z, labels) for sample grids, seeded by ``config.seed`` only.

  With at most 10 classes: one row per class, 8 columns (class = row), so each row
  of the grid should show one digit/class. Otherwise 64 images of random classes.

  Returns:
    (z `[n, z_dim]` float32, labels `[n]` int32, (rows, cols)).
  """
  if config.num_classes <= 10:
    rows, cols = config.num_classes, 8
    labels = np.repeat(np.arange(rows), cols).astype(np.int32)
  else:
    rows = cols = int(math.sqrt(max_images))
    rng = np.random.default_rng(config.seed + 1)
    labels = rng.integers(0, config.num_classes, rows * cols).astype(np.int32)
  seed = tf.constant([config.seed, 0x5A6A], tf.int64)
  z = tf.random.stateless_normal([rows * cols, config.z_dim], seed=seed)
  return z, tf.constant(labels), (rows, cols)


def sample_images(strategy, generator, z, labels):
  """Sample-grid images of ``generator`` for fixed (z, labels); changes no state.

  The generator runs as in training (batch statistics of these samples in its
  batch norms, like the official code's training-time image summaries): with the
  official moving-average decays (0.999, 0.9999) the moving statistics need tens
  of thousands of steps to settle, so inference-mode samples of a short run look
  washed out. ``bn_stats.batch_forward`` puts back the moving statistics the
  forward pass writes, and ``update_u=False`` keeps ``u`` (the official generator
  writes it at inference too), so sampling never changes the training trajectory.
  Runs in cross-replica context (mirrored variables are read and restored on every
  replica) except on TPU, where it runs as a replica step and the first replica's
  images are returned.
  """
  call = lambda: bn_stats.batch_forward(generator, z, labels, update_u=False)
  if not isinstance(strategy, tf.distribute.TPUStrategy):
    return call()
  return strategy.experimental_local_results(strategy.run(call))[0]


def attention_gates(generator, discriminator) -> Dict[str, tf.Tensor]:
  """``{"<layer>/sigma_ratio": value}`` for every attention block of G and D."""
  out = {}
  for model in (generator, discriminator):
    for _, layer in model.attention_layers:
      out[f"{layer.name}/sigma_ratio"] = tf.convert_to_tensor(layer.sigma_ratio)
  return out


class SummaryWriter:
  """Writes scalars, sample grids and PNGs of one run (chief only: pass
  ``enabled=False`` on other workers and every call becomes a no-op)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self._writer = tf.summary.create_file_writer(workdir) if enabled else None

  def scalars(self, step: int, progress: Progress, extra: Mapping[str, float]):
    if not self.enabled:
      return
    m = progress.metrics
    values = {
        "losses/d_loss": m["d_loss"], "losses/d_loss_real": m["d_loss_real"],
        "losses/d_loss_fake": m["d_loss_fake"], "losses/g_loss": m["g_loss"],
        "logits/real": m["real_logits"], "logits/fake": m["fake_logits"]}
    if math.isfinite(progress.steps_per_sec):  # unknown on a run's first step
      values["speed/steps_per_sec"] = progress.steps_per_sec
      values["speed/images_per_sec"] = progress.images_per_sec
    values.update(extra)
    with self._writer.as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar(name, float(value))
    self._writer.flush()

  def samples(self, step: int, images, grid: Optional[tuple] = None) -> Optional[str]:
    """Writes the grid of ``images`` (`[N, S, S, 3]` in [-1, 1]) to TensorBoard and
    ``samples/step_XXXXXXX.png``; returns the PNG path."""
    if not self.enabled:
      return None
    rows, cols = grid or images_lib.grid_shape(len(images))
    grid_img = images_lib.image_grid(np.asarray(images), rows, cols)
    with self._writer.as_default(step=step):
      tf.summary.image("samples", grid_img[None], step=step)
    self._writer.flush()
    path = workdir_lib.sample_path(self.workdir, step)
    return images_lib.save_png(path, grid_img)

  def flush(self):
    if self._writer is not None:
      self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()
