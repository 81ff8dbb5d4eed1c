"""Where evaluation results go in a workdir, and which are already there.

A result (``eval.evaluate``) is written through ``tf.io.gfile`` (a ``gs://`` workdir
gets it in the bucket) as JSON with its protocol, and as TensorBoard scalars
``eval/<metric>`` at the checkpoint's step. Each batch-norm statistics mode
(``Protocol.bn_stats``) has its own file and TensorBoard run, so evaluating one
checkpoint in several modes keeps every result:

* the default mode (``sagan_tf.inference.bn_stats.DEFAULT_MODE``, "standing"):
  ``WORKDIR/eval/metrics_<step>.json``, scalars in ``WORKDIR/eval``;
* another mode M ("moving", "batch"): ``WORKDIR/eval/metrics_<step>_M.json``,
  scalars in ``WORKDIR/eval/bn_M`` (same tags: TensorBoard overlays the modes).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf

from eval import manifold
from sagan_tf.inference import bn_stats as bn_stats_lib
from sagan_tf.run.workdir import eval_dir

# The TensorBoard scalars eval/<name>, when the result has them.
SCALARS = ("IS", "FID", "KID", "class_accuracy", "intra_fid") + manifold.PRDC_NAMES



def _is_default(bn_mode: Optional[str]) -> bool:
  return bn_mode is None or bn_mode == bn_stats_lib.DEFAULT_MODE


def result_path(workdir: str, step: int, bn_mode: Optional[str] = None) -> str:
  """The JSON of ``step`` in BN mode ``bn_mode`` (None: the default mode)."""
  suffix = "" if _is_default(bn_mode) else f"_{bn_mode}"
  return os.path.join(eval_dir(workdir), f"metrics_{step:09d}{suffix}.json")


def summary_dir(workdir: str, bn_mode: Optional[str] = None) -> str:
  """The TensorBoard run of BN mode ``bn_mode``."""
  return (eval_dir(workdir) if _is_default(bn_mode)
          else os.path.join(eval_dir(workdir), f"bn_{bn_mode}"))


def write_result(workdir: str, result: dict) -> str:
  """Writes the result JSON and the TensorBoard scalars ``eval/<name>`` of
  ``SCALARS`` that the result holds; returns the JSON path."""
  mode = result.get("bn_stats", {}).get("mode")
  path = result_path(workdir, result["step"], mode)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
  writer = tf.summary.create_file_writer(summary_dir(workdir, mode))
  with writer.as_default():
    for name in SCALARS:
      if result["metrics"].get(name) is not None:
        tf.summary.scalar(f"eval/{name}", result["metrics"][name],
                          step=result["step"])
  writer.flush()
  writer.close()
  return path


def already_done(workdir: str, path: str, protocol) -> bool:
  """Whether a result for checkpoint ``path`` and this (resolved) protocol dataclass
  is on disk."""
  folder = eval_dir(workdir)
  if not tf.io.gfile.isdir(folder):
    return False
  mine = dataclasses.asdict(protocol)
  for name in tf.io.gfile.listdir(folder):
    if name.startswith("metrics_") and name.endswith(".json"):
      try:
        with tf.io.gfile.GFile(os.path.join(folder, name)) as f:
          old = json.load(f)
      except (OSError, ValueError):
        continue
      if (old.get("checkpoint") == path and
          {k: old["protocol"].get(k) for k in mine} == mine):
        return True
  return False
