"""The files of ``launch.sample``: samples of a workdir's checkpoint as a PNG grid
and/or an .npz, interpolation grids and attention-map figures.

``write_samples`` loads the generator (the EMA one when the checkpoint has it,
unless ``use_ema=False``), sets its batch-norm statistics (``sagan_tf.inference.bn_stats``)
and writes what a ``SampleRequest`` asks for, in this order:

* plain samples (``grid="samples"`` without truncation): ``sample`` draws them
  (``sagan_tf.inference.sampling``: noise and labels from the seed alone); the PNG is a square
  grid (``sagan_tf.images``), the .npz holds ``images`` (uint8 [N, S, S, 3]),
  ``labels`` (int32 [N]) and, as JSON strings, ``bn_stats`` and ``step``;
* the attention figure of the first min(num, 4) of those samples
  (``sagan_tf.inference.attention_maps``);
* otherwise a grid of ``sagan_tf.inference.grids`` (truncated samples, latent or class
  interpolation) drawn at inference with the prepared statistics.

Every file goes through ``tf.io.gfile`` (gs:// works). Nothing here reads flags.
"""
from __future__ import annotations

import dataclasses
import json
from typing import List, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from sagan_tf.inference import grids
from sagan_tf.inference import sampling
from sagan_tf import images as images_lib
from sagan_tf.inference import attention_maps
from sagan_tf.inference import bn_stats as bn_stats_lib
from sagan_tf.run import state as state_lib

ATTENTION_SHOWN = 4  # samples in an attention figure


@dataclasses.dataclass(frozen=True)
class SampleRequest:
  """What ``write_samples`` draws and writes.

  Attributes:
    num: images (plain samples or ``grid="samples"``; attention figures show the
      first ``ATTENTION_SHOWN``).
    classes: None for uniform classes, else the classes to draw, in runs.
    seed: the seed of noise, labels and truncation redraws.
    batch_size: images per generator call.
    png, npz: paths of the image grid and of the arrays (None: not written).
    attention_maps: path of the attention figure (None: not written).
    queries: attention query pixels ((y, x), ...) in image coordinates; None: one
      per quadrant centre.
    grid: one of ``sagan_tf.inference.grids.GRIDS``.
    truncation: truncation threshold (None or 0: off).
    interp_steps: images per interpolation row.
    interp_rows: rows of ``grid="latent_interp"``.
    interp_pairs: class pairs of ``grid="class_interp"``, one row each.
  """
  num: int = 64
  classes: Optional[Tuple[int, ...]] = None
  seed: int = 0
  batch_size: int = 64
  png: Optional[str] = None
  npz: Optional[str] = None
  attention_maps: Optional[str] = None
  queries: Optional[Sequence[Tuple[int, int]]] = None
  grid: str = "samples"
  truncation: Optional[float] = None
  interp_steps: int = 8
  interp_rows: int = 4
  interp_pairs: Optional[Sequence[Tuple[int, int]]] = None

  @property
  def plain(self) -> bool:
    """Plain samples (not an ``sagan_tf.inference.grids`` grid)."""
    return self.grid == "samples" and not self.truncation

  def check(self, bn_mode: str) -> None:
    """Raises ValueError (one line) for a combination that would be silently
    ignored: grids (truncation, interpolation) and attention figures are drawn at
    inference, so not with ``bn_stats="batch"``; attention figures show
    untruncated samples."""
    if bn_mode == "batch" and (self.png or self.npz) and not self.plain:
      raise ValueError(
          f"bn_stats=batch cannot be combined with grid={self.grid!r}"
          f"{' and truncation' if self.truncation else ''}: grids are drawn at "
          "inference; use bn_stats=standing or moving, or plain samples.")
    if self.attention_maps and (bn_mode == "batch" or self.truncation):
      raise ValueError(
          "attention_maps shows the first samples untruncated, at inference: it "
          "cannot honour bn_stats=batch or truncation; draw the attention figure "
          "in a command without them.")


def sample(generator, num, classes=None, seed=0, batch_size=64, bn_stats=None):
  """(images uint8 [num, S, S, 3], labels int32 [num]).

  ``bn_stats``: a ``sagan_tf.inference.bn_stats.BNStats`` already applied with
  ``bn_stats.prepare`` (None: the generator as it is, at inference).
  """
  training = bool(bn_stats is not None and bn_stats.training)
  images, labels = sampling.generate(generator, num, seed=seed, classes=classes,
                                     batch_size=batch_size, training=training)
  return images_lib.to_uint8(images), labels


def write_outputs(images, labels, png=None, npz=None, extra=None) -> List[str]:
  """Writes the PNG grid and/or the .npz (any tf.io.gfile path; ``extra``:
  more JSON-able entries stored as JSON strings); returns the paths written."""
  written = []
  if png:
    written.append(images_lib.save_png(png, images_lib.image_grid(images)))
  if npz:
    written.append(images_lib.save_npz(
        npz, images=images, labels=labels,
        **{k: np.array(json.dumps(v, sort_keys=True))
           for k, v in (extra or {}).items()}))
  return written


def write_attention_maps(generator, path, queries=None, num=64, classes=None,
                         seed=0, shown=ATTENTION_SHOWN) -> str:
  """Attention figure of the first ``shown`` of the ``num`` samples that ``sample``
  draws with the same arguments; returns its path."""
  queries = queries or attention_maps.default_queries(generator.image_size)
  stream = sampling.NoiseAndLabels(generator.z_dim, generator.num_classes, seed,
                                   classes, num)
  z, labels = stream.take(min(num, shown))
  images, maps = attention_maps.attention_maps(generator, z, labels, queries,
                                               return_images=True)
  attention_maps.render_attention_figure(images, maps, queries, path=path)
  return path


def write_grid(generator, request: SampleRequest) -> List[str]:
  """The ``sagan_tf.inference.grids`` grid of ``request`` to its png/npz; returns the paths."""
  common = dict(seed=request.seed, truncation=request.truncation,
                batch_size=request.batch_size)
  grids.check_truncation(request.truncation)
  if request.grid == "samples":
    grid = grids.sample_grid(generator, request.num, classes=request.classes,
                             **common)
  elif request.grid == "latent_interp":
    grid = grids.latent_interpolation(generator, request.interp_rows,
                                      request.interp_steps,
                                      classes=request.classes, **common)
  elif request.grid == "class_interp":
    grid = grids.class_interpolation(generator, request.interp_pairs,
                                     request.interp_steps, **common)
  else:
    raise ValueError(f"grid={request.grid!r}: choose one of {list(grids.GRIDS)}.")
  return grids.write_grid(grid, request.png, request.npz)


def write_samples(workdir: str, request: SampleRequest,
                  checkpoint: Optional[str] = None, use_ema: bool = True,
                  bn_stats=None) -> List[str]:
  """Writes the files of ``request`` from a workdir's checkpoint; returns them.

  Args:
    workdir: a sagan_tf workdir (config.json + checkpoints/).
    request: what to draw and where to write it.
    checkpoint: a checkpoint path; default the latest.
    use_ema: draw with the EMA generator when the checkpoint has one.
    bn_stats: a ``sagan_tf.inference.bn_stats.BNStats`` (default: standing statistics).

  Raises:
    FileNotFoundError: no workdir or no checkpoint.
    ValueError: an unreadable config.json (``workdir.ConfigFileError``),
      classes outside the generator's, bad queries, a generator without attention,
      a bad grid request, or a combination it would ignore
      (``SampleRequest.check``); the message is one line.
  """
  request.check(bn_stats.mode if bn_stats is not None else bn_stats_lib.DEFAULT_MODE)
  config, generator, _, step = state_lib.load_models(
      workdir, checkpoint=checkpoint, use_ema=use_ema)
  bn_stats = bn_stats_lib.prepare(generator, bn_stats)
  written = []
  if (request.png or request.npz) and request.plain:
    images, labels = sample(generator, request.num, request.classes,
                            request.seed, request.batch_size, bn_stats)
    for path in write_outputs(images, labels, request.png, request.npz,
                              extra=dict(bn_stats=bn_stats.describe(), step=step)):
      logging.info("Wrote %s (%d images, step %d, %dx%d, %s BN statistics).",
                   path, len(images), step, config.image_size,
                   config.image_size, bn_stats.mode)
      written.append(path)
  if request.attention_maps:
    path = write_attention_maps(generator, request.attention_maps,
                                request.queries, request.num, request.classes,
                                request.seed)
    logging.info("Wrote %s (attention maps, step %d).", path, step)
    written.append(path)
  if (request.png or request.npz) and not request.plain:
    for path in write_grid(generator, request):
      logging.info("Wrote %s (%s grid, step %d).", path, request.grid, step)
      written.append(path)
  return written
