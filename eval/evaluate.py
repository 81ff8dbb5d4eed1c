"""The evaluation protocol: IS, FID and KID of a checkpoint, written into its workdir.

Protocol, as the official ``eval_imagenet.py``: 50,000 generated samples (classes
uniform, z ~ N(0, I), generator at inference, ``training=False``) against 50,000
real images of the training split; IS over all samples in one split; FID of
pool_3. KID (TF-GAN's estimator), precision/recall and density/coverage
(``eval.manifold``) are added, and the intra-FID of the paper (below). Every
result is written with its protocol (sample counts, real split, seed, Inception
identity, checkpoint and step) as ``WORKDIR/eval/metrics_<step>.json`` and as
TensorBoard scalars ``eval/IS``, ``eval/FID``, ``eval/KID``... in ``WORKDIR/eval``
(a run beside the training curves when TensorBoard is pointed at WORKDIR); a
non-default BN mode gets its own file and run (``eval.results``).

Intra-FID (``Protocol.intra_fid_classes`` k, default 10; 0 turns it off): for each
class c < k, the FID between the real images labelled c among the ``num_real``
real images and the generated samples drawn for class c among the
``num_samples`` (uniform classes: about num_samples / num_classes each), from
running per-class means and unbiased covariances (``eval.manifold.ClassMoments``;
the real ones cached by ``eval.real_stats``); the mean over the classes with at
least 2 samples in both sets. ``metrics`` holds ``intra_fid`` and
``intra_fid_classes`` (classes averaged), the result's ``intra_fid`` each class's
FID and counts. Memory grows with k, not with the sample count: 2 k D^2 float64.

Evaluation reads checkpoints and never writes them: the models are rebuilt in memory
for each checkpoint. Results go through ``tf.io.gfile``, so a ``gs://`` workdir
gets them in the bucket.

Batch-norm statistics (``Protocol.bn_stats``, see ``sagan_tf.inference.bn_stats``): by default
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
* The sample set is drawn from a seed (``sagan_tf.inference.sampling``), not from TF's global
  random state, so a number can be reproduced.
* Statistics are streamed in float64 (``eval.metrics``) rather than holding every
  activation; the values are those of TF-GAN's functions on the full arrays.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterator, Optional

import tensorflow as tf
from absl import logging

from eval import features
from eval import image_sets
from eval import manifold
from eval import metrics
from eval import real_stats as real_stats_lib
from eval import results
from sagan_tf.inference import bn_stats as bn_stats_lib
from sagan_tf.run import checkpoint as checkpoint_lib
from sagan_tf.run import state as state_lib

# Kept under their old names: the result files (eval.results) and the two-set
# comparison (eval.image_sets) were part of this module.
eval_dir, result_path, write_result = (results.eval_dir, results.result_path,
                                       results.write_result)
ImageSetError, load_image_set, compare_image_sets = (
    image_sets.ImageSetError, image_sets.load_image_set,
    image_sets.compare_image_sets)
all_metrics = manifold.all_metrics

DEFAULT_INTRA_FID_CLASSES = 10


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
      (official) or "batch" (``sagan_tf.inference.bn_stats``).
    standing_passes, standing_batch_size: the standing statistics' passes and
      their batch size (their seed is ``seed``).
    intra_fid_classes: intra-FID over classes 0..k-1 (k = min(this, the
      generator's classes)); 0 turns it off. Memory: 2 k D^2 float64 (real and
      generated), 670 MB for 10 classes at D=2048, so ImageNet's 1000 classes
      need an explicit k (all of them: 67 GB).
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
  intra_fid_classes: int = DEFAULT_INTRA_FID_CLASSES

  def bn_stats_config(self) -> bn_stats_lib.BNStats:
    return bn_stats_lib.BNStats(self.bn_stats, self.standing_passes,
                                self.standing_batch_size, self.seed)

  @property
  def update_u(self) -> Optional[bool]:
    """The generator's ``update_u`` (None: the variant's rule at inference)."""
    return None if self.official_u_updates else False

  def resolved(self, config) -> "Protocol":
    if self.intra_fid_classes < 0:
      raise ValueError(f"intra_fid_classes must be >= 0 (0: no intra-FID), got "
                       f"{self.intra_fid_classes}.")
    return dataclasses.replace(
        self, num_real=self.num_real or self.num_samples,
        real_split=self.real_split or config.split,
        intra_fid_classes=min(self.intra_fid_classes, config.num_classes))


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
    dict(step, checkpoint, ema, metrics={IS, IS_std, FID, KID, KID_std,
    precision, recall, density, coverage[, intra_fid, intra_fid_classes,
    class_accuracy]}, bn_stats={mode[, passes, batch_size, seed]},
    protocol={...}[, intra_fid={class: {fid, real_count, fake_count}}]).
  """
  strategy = strategy or tf.distribute.get_strategy()
  path = checkpoint or checkpoint_lib.latest_checkpoint(workdir)
  if path is None:
    raise FileNotFoundError(
        f"No checkpoint under {checkpoint_lib.checkpoint_dir(workdir)!r}.")
  with strategy.scope():
    config, generator, _, step = state_lib.load_models(
        workdir, checkpoint=path, use_ema=use_ema)
  result = evaluate_generator(
      generator, config, classifier, protocol, step=step, strategy=strategy,
      cache_dir=cache_dir, dataset_fn=dataset_fn, log_every=log_every)
  result.update(checkpoint=path,
                ema=bool(use_ema and checkpoint_lib.has_ema(path)))
  if write:
    result["path"] = results.write_result(workdir, result)
  return result


def evaluate_generator(generator, config, classifier,
                       protocol: Protocol = Protocol(), *, step: int = 0,
                       strategy=None, cache_dir: Optional[str] = None,
                       dataset_fn: Optional[Callable] = None,
                       log_every: int = 50) -> dict:
  """Evaluates an in-memory generator (``evaluate_checkpoint`` without files).

  The generator's BN statistics are set for ``protocol.bn_stats`` in place
  (standing statistics overwrite its moving averages): pass a copy of a generator
  that is still training (``sagan_tf.inference.bn_stats`` never writes checkpoints, but the
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
      log_every=log_every, intra_fid_classes=protocol.intra_fid_classes)
  k = protocol.intra_fid_classes
  fake = features.generated_stats(
      generator, classifier, protocol.num_samples, seed=protocol.seed,
      strategy=strategy, batch_size=protocol.batch_size, update_u=protocol.update_u,
      is_splits=protocol.is_splits, kid_max_samples=protocol.kid_max_samples,
      log_every=log_every, training=bn.training,
      class_moments=manifold.ClassMoments(range(k)) if k else None)
  values = manifold.all_metrics(real, fake)
  intra = _intra_fid(real, fake) if k else None
  if intra:
    values.update(intra_fid=intra["intra_fid"], intra_fid_classes=intra["classes"])
  result = dict(
      step=int(step), metrics=values, bn_stats=bn.describe(),
      protocol=dict(dataclasses.asdict(protocol), dataset=config.dataset,
                    image_size=config.image_size, real_count=info["count"],
                    real_stats_cache=info["path"],
                    real_class_stats_cache=info.get("class_path"),
                    inception=classifier.source,
                    inception_identity=classifier.identity,
                    replicas=strategy.num_replicas_in_sync),
      time=time.strftime("%Y-%m-%dT%H:%M:%S"))
  if intra:
    result["intra_fid"] = intra["details"]
  logging.info("step %d (%s BN statistics): IS %.4f FID %.4f KID %.6f%s%s", step,
               bn.mode, values["IS"], values["FID"], values["KID"],
               f" intra-FID {values['intra_fid']:.4f}" if intra else "",
               f" class accuracy {values['class_accuracy']:.4f}"
               if "class_accuracy" in values else "")
  return result


def _intra_fid(real: metrics.SetStats, fake: metrics.SetStats) -> Optional[dict]:
  """``manifold.intra_fid`` with per-class FIDs and counts (str keys for JSON);
  None, with a warning, when no class has 2 samples in both sets."""
  try:
    intra = manifold.intra_fid(real.per_class or {}, fake.per_class or {})
  except ValueError as e:
    logging.warning("%s Intra-FID left out; raise num_samples/num_real.", e)
    return None
  intra["details"] = {str(c): dict(fid=fid, real_count=real.per_class[c][0],
                                   fake_count=fake.per_class[c][0])
                      for c, fid in intra["per_class"].items()}
  return intra


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
    if results.already_done(workdir, path, protocol.resolved(config)):
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
