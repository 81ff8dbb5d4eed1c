"""The evaluation protocol: IS, FID and KID of a checkpoint, written into its workdir.

Protocol, as the official ``eval_imagenet.py``: 50,000 generated samples (classes
uniform, z ~ N(0, I), generator at inference, ``training=False``) against 50,000
real images of the training split; IS over all samples in one split; FID of
pool_3. KID (TF-GAN's estimator) is added. Every result is written with its
protocol (sample counts, real split, seed, Inception identity, checkpoint and step)
as ``WORKDIR/eval/metrics_<step>.json`` and as TensorBoard scalars ``eval/IS``,
``eval/FID``, ``eval/KID`` in ``WORKDIR/eval`` (a run beside the training curves
when TensorBoard is pointed at WORKDIR).

Evaluation reads checkpoints and never writes them: the models are rebuilt in memory
for each checkpoint. Results go through ``tf.io.gfile``, so a ``gs://`` workdir
gets them in the bucket.

Batch-norm statistics (``Protocol.bn_stats``, see ``sagan_tf.bn_stats``): by default
the generator draws with standing statistics recomputed in memory from the
checkpoint's weights; ``bn_stats="moving"`` is the official protocol (the
checkpoint's moving averages, which the official eval used), ``"batch"`` the batch
moments of each generator call. The result records which.

With a classifier of the generator's classes (``eval.digits_classifier``) the result
also holds ``class_accuracy``: the fraction of samples the classifier reads as the
class they were drawn for.

Deliberate deviations from the official code:

* The official generator writes its spectral-norm ``u`` back on every call, also at
  inference, so in the official eval each batch started from the ``u`` the previous
  batch left (in memory; never saved), and the numbers depended on the batch size.
  Here every batch starts from the checkpoint's ``u`` (``update_u=False``; each call
  still runs its one power iteration, so the first batch is identical), making the
  result a function of checkpoint and seed. ``Protocol(official_u_updates=True)``
  (``--official_u_updates``) restores the official write-back, in memory only.
* The official eval shuffled the real images with a 5,000-image buffer; here they
  are the split's first ``num_real`` in file order, so their statistics are
  deterministic and cacheable (``eval.real_stats``).
* The sample set is drawn from a seed (``eval.sampling``), not from TF's global
  random state, so a number can be reproduced.
* Statistics are streamed in float64 (``eval.metrics``) rather than holding every
  activation; the values are those of TF-GAN's functions on the full arrays.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Dict, Iterator, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from eval import features
from eval import manifold
from eval import metrics
from eval import real_stats as real_stats_lib
from sagan_tf import bn_stats as bn_stats_lib
from sagan_tf import checkpoint as checkpoint_lib

EVAL_SUBDIR = "eval"


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How a checkpoint is evaluated; stored with each result.

  Attributes:
    num_samples: generated samples (official 50,000).
    num_real: real images; None: as many as num_samples (official).
    real_split: dataset split of the real images; None: the config's split.
    batch_size: global batch of generator and Inception calls (official 100).
    seed: seed of the generated set.
    is_splits: IS splits (official 1).
    kid_max_samples: per-set cap of the activations kept for KID.
    official_u_updates: let the generator write its spectral-norm ``u`` on every
      call as the official eval did (in memory); default: each batch starts from
      the checkpoint's ``u``.
    bn_stats: the generator's BN statistics: "standing" (default), "moving"
      (official) or "batch" (``sagan_tf.bn_stats``).
    standing_passes, standing_batch_size: the standing statistics' passes and
      their batch size (their seed is ``seed``).
  """
  num_samples: int = 50_000
  num_real: Optional[int] = None
  real_split: Optional[str] = None
  batch_size: int = 100
  seed: int = 0
  is_splits: int = 1
  kid_max_samples: int = metrics.DEFAULT_KID_MAX_SAMPLES
  official_u_updates: bool = False
  bn_stats: str = bn_stats_lib.DEFAULT_MODE
  standing_passes: int = bn_stats_lib.DEFAULT_PASSES
  standing_batch_size: int = bn_stats_lib.DEFAULT_BATCH_SIZE

  def bn_stats_config(self) -> bn_stats_lib.BNStats:
    return bn_stats_lib.BNStats(self.bn_stats, self.standing_passes,
                                self.standing_batch_size, self.seed)

  @property
  def update_u(self) -> Optional[bool]:
    """The generator's ``update_u`` (None: the variant's rule at inference)."""
    return None if self.official_u_updates else False

  def resolved(self, config) -> "Protocol":
    return dataclasses.replace(
        self, num_real=self.num_real or self.num_samples,
        real_split=self.real_split or config.split)


def eval_dir(workdir: str) -> str:
  return os.path.join(workdir, EVAL_SUBDIR)


def result_path(workdir: str, step: int) -> str:
  return os.path.join(eval_dir(workdir), f"metrics_{step:09d}.json")


def write_result(workdir: str, result: dict) -> str:
  """Writes the result JSON and the TensorBoard scalars (``eval/IS``, ``eval/FID``,
  ``eval/KID``, ``eval/{precision,recall,density,coverage}``, and
  ``eval/class_accuracy`` when measured), through
  ``tf.io.gfile``; returns the JSON path."""
  path = result_path(workdir, result["step"])
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
  writer = tf.summary.create_file_writer(eval_dir(workdir))
  with writer.as_default():
    for name in ("IS", "FID", "KID", "class_accuracy") + manifold.PRDC_NAMES:
      if result["metrics"].get(name) is not None:
        tf.summary.scalar(f"eval/{name}", result["metrics"][name],
                          step=result["step"])
  writer.flush()
  writer.close()
  return path


def evaluate_checkpoint(workdir: str, classifier, protocol: Protocol = Protocol(),
                        *, checkpoint: Optional[str] = None, strategy=None,
                        cache_dir: Optional[str] = None,
                        dataset_fn: Optional[Callable] = None,
                        use_ema: bool = True, write: bool = True,
                        log_every: int = 50) -> dict:
  """Evaluates one checkpoint of a workdir (default: the latest).

  Args:
    workdir: a sagan_tf workdir.
    classifier: an ``eval.inception.Classifier`` (or a stand-in with ``identity``
      and ``source``).
    protocol: the ``Protocol``.
    checkpoint: a checkpoint path; default the latest.
    strategy: tf.distribute strategy; models are rebuilt under its scope.
    cache_dir: real-statistics cache folder.
    dataset_fn: real-image source (see ``eval.real_stats.real_stats``).
    use_ema: evaluate the EMA generator when the checkpoint has one.
    write: write the JSON and TensorBoard results into the workdir.

  Returns:
    dict(step, checkpoint, ema, metrics={IS, IS_std, FID, KID, KID_std[,
    class_accuracy]}, bn_stats={mode[, passes, batch_size, seed]}, protocol={...}).
  """
  strategy = strategy or tf.distribute.get_strategy()
  path = checkpoint or checkpoint_lib.latest_checkpoint(workdir)
  if path is None:
    raise FileNotFoundError(
        f"No checkpoint under {checkpoint_lib.checkpoint_dir(workdir)!r}.")
  with strategy.scope():
    config, generator, _, step = checkpoint_lib.load_models(
        workdir, checkpoint=path, use_ema=use_ema)
  result = evaluate_generator(
      generator, config, classifier, protocol, step=step, strategy=strategy,
      cache_dir=cache_dir, dataset_fn=dataset_fn, log_every=log_every)
  result.update(checkpoint=path,
                ema=bool(use_ema and checkpoint_lib.has_ema(path)))
  if write:
    result["path"] = write_result(workdir, result)
  return result


def evaluate_generator(generator, config, classifier,
                       protocol: Protocol = Protocol(), *, step: int = 0,
                       strategy=None, cache_dir: Optional[str] = None,
                       dataset_fn: Optional[Callable] = None,
                       log_every: int = 50) -> dict:
  """Evaluates an in-memory generator (``evaluate_checkpoint`` without files).

  The generator's BN statistics are set for ``protocol.bn_stats`` in place
  (standing statistics overwrite its moving averages): pass a copy of a generator
  that is still training (``sagan_tf.bn_stats`` never writes checkpoints, but the
  trainer would).

  Returns:
    dict(step, metrics, bn_stats, protocol, time) as ``evaluate_checkpoint``.
  """
  strategy = strategy or tf.distribute.get_strategy()
  protocol = protocol.resolved(config)
  with strategy.scope():
    bn = bn_stats_lib.prepare(generator, protocol.bn_stats_config())
  real, info = real_stats_lib.real_stats(
      config, classifier, num_real=protocol.num_real, split=protocol.real_split,
      cache_dir=cache_dir, strategy=strategy, batch_size=protocol.batch_size,
      kid_max_samples=protocol.kid_max_samples, dataset_fn=dataset_fn,
      log_every=log_every)
  fake = features.generated_stats(
      generator, classifier, protocol.num_samples, seed=protocol.seed,
      strategy=strategy, batch_size=protocol.batch_size, update_u=protocol.update_u,
      is_splits=protocol.is_splits, kid_max_samples=protocol.kid_max_samples,
      log_every=log_every, training=bn.training)
  values = all_metrics(real, fake)
  result = dict(
      step=int(step), metrics=values, bn_stats=bn.describe(),
      protocol=dict(dataclasses.asdict(protocol), dataset=config.dataset,
                    image_size=config.image_size, real_count=info["count"],
                    real_stats_cache=info["path"], inception=classifier.source,
                    inception_identity=classifier.identity,
                    replicas=strategy.num_replicas_in_sync),
      time=time.strftime("%Y-%m-%dT%H:%M:%S"))
  logging.info("step %d (%s BN statistics): IS %.4f FID %.4f KID %.6f%s", step,
               bn.mode, values["IS"], values["FID"], values["KID"],
               f" class accuracy {values['class_accuracy']:.4f}"
               if "class_accuracy" in values else "")
  return result


def all_metrics(real: metrics.SetStats, fake: metrics.SetStats) -> dict:
  """``metrics.compare`` plus precision, recall, density and coverage
  (``eval.manifold``) on the two sets' KID subsets (at most ``kid_max_samples``
  uniform features each)."""
  values = metrics.compare(real, fake)
  values.update(manifold.prdc(real.kid_features, fake.kid_features))
  return values


def _already_done(workdir: str, path: str, protocol: Protocol) -> bool:
  """Whether a result for this checkpoint path and protocol is on disk."""
  folder = eval_dir(workdir)
  if not tf.io.gfile.isdir(folder):
    return False
  for name in tf.io.gfile.listdir(folder):
    if name.startswith("metrics_") and name.endswith(".json"):
      try:
        with tf.io.gfile.GFile(os.path.join(folder, name)) as f:
          old = json.load(f)
      except (OSError, ValueError):
        continue
      mine = dataclasses.asdict(protocol)
      if (old.get("checkpoint") == path and
          {k: old["protocol"].get(k) for k in mine} == mine):
        return True
  return False


def watch(workdir: str, classifier, protocol: Protocol = Protocol(), *,
          timeout: Optional[float] = None, min_interval_secs: float = 0,
          stop_at_train_steps: bool = True, **kwargs) -> Iterator[dict]:
  """Evaluates each new checkpoint of a workdir as it appears.

  Like ``tf.train.checkpoints_iterator`` (which it uses) and the official
  ``evaluate_repeatedly``: waits for checkpoints, evaluates each in turn, and ends
  after ``timeout`` seconds without a new one, or after a checkpoint at or past the
  config's ``train_steps``. As there, a checkpoint is the latest one at the time of
  a poll: when several are written during one evaluation, only the newest of them
  is evaluated next. Checkpoints already evaluated with the same protocol (a result
  file naming them) are skipped, so a restarted watcher resumes.

  Args:
    workdir: a sagan_tf workdir (its config.json must exist).
    classifier, protocol: as ``evaluate_checkpoint``.
    timeout: seconds to wait for a new checkpoint before ending (None: forever).
    min_interval_secs: least time between two evaluations.
    stop_at_train_steps: end after evaluating a checkpoint at ``train_steps``.
    **kwargs: more ``evaluate_checkpoint`` arguments.

  Yields:
    The result dict of each evaluated checkpoint.
  """
  config = checkpoint_lib.load_config(workdir)
  for path in tf.train.checkpoints_iterator(
      checkpoint_lib.checkpoint_dir(workdir), min_interval_secs=min_interval_secs,
      timeout=timeout):
    if _already_done(workdir, path, protocol.resolved(config)):
      logging.info("Skipping %s: already evaluated.", path)
      continue
    try:
      result = evaluate_checkpoint(workdir, classifier, protocol, checkpoint=path,
                                   **kwargs)
    except (tf.errors.NotFoundError, FileNotFoundError) as e:
      if tf.io.gfile.glob(path + ".*"):
        raise
      # The trainer's CheckpointManager deleted it meanwhile (max_to_keep).
      logging.warning("Checkpoint %s vanished before evaluation (%s).", path, e)
      continue
    yield result
    if stop_at_train_steps and result["step"] >= config.train_steps:
      logging.info("Reached train_steps=%d: done watching.", config.train_steps)
      return


class ImageSetError(ValueError):
  """An .npz image set that cannot be used; the message is one line: what is
  wrong and how to fix it."""


def load_image_set(path: str, where: Optional[str] = None):
  """Reads an image set: uint8 ``images`` `[N, H, W, 3]` and optional int ``labels``
  `[N]` of the .npz at ``path`` (local or any ``tf.io.gfile`` URL).

  Args:
    path: the .npz file.
    where: how to name the file in errors (e.g. ``--images_a=PATH``).

  Returns:
    (images, labels or None).

  Raises:
    ImageSetError: a missing or unreadable file, no ``images`` array, images that
      are not uint8 ``[N, H, W, 3]``, or ``labels`` that are not ints ``[N]``.
  """
  import zipfile  # pylint: disable=g-import-not-at-top
  where = where or path
  how = f"save the images with np.savez({path!r}, images=<uint8 [N, H, W, 3]>)"
  if not tf.io.gfile.exists(path):
    raise ImageSetError(f"{where}: no such file.")
  labels = None
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = np.load(f, allow_pickle=False)
      if not isinstance(data, np.lib.npyio.NpzFile):
        raise ImageSetError(f"{where} is a single .npy array, not an .npz; {how}.")
      if "images" not in data.files:
        raise ImageSetError(f"{where} has no 'images' array (it has "
                            f"{sorted(data.files)}); {how}.")
      images = data["images"]
      if "labels" in data.files:
        labels = data["labels"]
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    if isinstance(e, ImageSetError):
      raise
    raise ImageSetError(f"{where} is not an .npz file ({e}); {how}.") from None
  if images.ndim == 3:
    raise ImageSetError(
        f"{where}: images {images.shape} have no channel axis; add one, e.g. "
        f"np.repeat(images[..., None], 3, axis=-1) for grayscale.")
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ImageSetError(f"{where}: images must be [N, H, W, 3], got shape "
                        f"{images.shape}.")
  if np.issubdtype(images.dtype, np.floating):
    raise ImageSetError(
        f"{where}: images are {images.dtype} (range {float(images.min()):g} to "
        f"{float(images.max()):g}), not uint8; convert them, e.g. for [-1, 1]: "
        f"((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8).")
  if images.dtype != np.uint8:
    raise ImageSetError(f"{where}: images are {images.dtype}; they must be "
                        f"uint8 in 0..255 (x.astype(np.uint8)).")
  if labels is not None and (labels.shape != (len(images),)
                             or not np.issubdtype(labels.dtype, np.integer)):
    raise ImageSetError(f"{where}: labels must be ints [{len(images)}] (one per "
                        f"image), got {labels.dtype} {labels.shape}; drop them or "
                        f"fix them.")
  return images, labels


def _batches_of(images: np.ndarray, batch_size: int):
  for i in range(0, len(images), batch_size):
    yield images[i:i + batch_size].astype(np.float32) / 127.5 - 1.0


def compare_image_sets(images_a: np.ndarray, images_b: np.ndarray, classifier, *,
                       labels_a: Optional[np.ndarray] = None,
                       labels_b: Optional[np.ndarray] = None,
                       strategy=None, batch_size: int = 100, is_splits: int = 1,
                       kid_max_samples: int = metrics.DEFAULT_KID_MAX_SAMPLES,
                       log_every: int = 50) -> Dict[str, float]:
  """FID, KID, precision/recall and density/coverage of set b against set a, the
  IS of each, and the intra-FID when both sets have labels.

  Returns:
    dict(fid, kid, is_a, is_b, precision, recall, density, coverage[, intra_fid,
    intra_fid_classes]).
  """
  with_labels = labels_a is not None and labels_b is not None
  stats, per_class = [], []
  for name, images, labels in (("images_a", images_a, labels_a),
                               ("images_b", images_b, labels_b)):
    moments = manifold.ClassMoments()
    seen = [0]

    def on_batch(arrays, out, labels=labels, moments=moments, seen=seen):
      n = len(arrays[0])
      moments.update(np.asarray(out["pool_3"]).reshape(n, -1),
                     labels[seen[0]:seen[0] + n])
      seen[0] += n

    stats.append(features.image_set_stats(
        _batches_of(images, batch_size), classifier, strategy=strategy,
        batch_size=batch_size, expected_count=len(images), is_splits=is_splits,
        kid_max_samples=kid_max_samples, seed=0, what=name, log_every=log_every,
        on_batch=on_batch if with_labels else None))
    per_class.append(moments)
  values = all_metrics(stats[0], stats[1])
  out = dict(fid=values["FID"], kid=values["KID"],
             is_a=stats[0].inception_score, is_b=stats[1].inception_score,
             **{n: values[n] for n in manifold.PRDC_NAMES})
  if with_labels:
    intra = manifold.intra_fid(per_class[0].stats(), per_class[1].stats())
    out.update(intra_fid=intra["intra_fid"], intra_fid_classes=intra["classes"])
  return out
