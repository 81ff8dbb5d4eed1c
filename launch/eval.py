r"""Inception score, FID and KID of a sagan_tf workdir, or of two image sets.

    # The latest checkpoint (official protocol: 50,000 samples vs 50,000 real images):
    python -m launch.eval --workdir=/runs/sagan
    # Each new checkpoint as the trainer writes it; ends after an hour without one:
    python -m launch.eval --workdir=/runs/sagan --watch --timeout=3600
    # Two .npz files (key `images`, uint8 [N, H, W, 3]): one JSON line on stdout
    python -m launch.eval --images_a=a.npz --images_b=b.npz
    # A digits run, in the features of a small digit classifier (offline):
    python -m launch.eval --workdir=runs/digits32 --classifier=digits
    # A run on the printed digits (--dataset=glyphs), in its own classifier's:
    python -m launch.eval --workdir=runs/glyphs32 --classifier=glyphs --split=test
    # The official protocol (the checkpoint's BN moving averages):
    python -m launch.eval --workdir=/runs/sagan --bn_stats=moving

Results go to WORKDIR/eval/metrics_<step>.json (with the protocol) and to
TensorBoard scalars eval/IS, eval/FID, eval/KID under WORKDIR/eval. Real-image
statistics are cached under --cache_dir. The Inception network is the TF-GAN
module from TF-Hub, or the local copy at --inception_path (see
docs/evaluation.md to use it offline); ``--classifier=digits`` (``glyphs``) takes
the digit classifier of ``eval.digits_classifier`` fit on that dataset instead
and adds the class accuracy.
The generator draws with standing BN statistics by default (``--bn_stats``,
``sagan_tf.inference.bn_stats``). The logic lives in the ``eval`` package.
"""
import json
import sys

from absl import app
from absl import flags
from absl import logging

from launch import bn_flags

_WORKDIR = flags.DEFINE_string("workdir", None, "sagan_tf workdir to evaluate.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "Checkpoint path (default: the latest).")
_WATCH = flags.DEFINE_bool("watch", False,
                           "Evaluate each new checkpoint as it appears.")
_TIMEOUT = flags.DEFINE_float(
    "timeout", None, "With --watch: stop after this many seconds without a new "
    "checkpoint (default: wait forever, or until a checkpoint reaches "
    "train_steps).")
_IMAGES_A = flags.DEFINE_string(
    "images_a", None, ".npz with uint8 `images` [N, H, W, 3] (and optional int "
    "`labels` [N], for intra-FID).")
_IMAGES_B = flags.DEFINE_string(
    "images_b", None, ".npz with uint8 `images` [N, H, W, 3] (and optional int "
    "`labels` [N], for intra-FID).")
_INCEPTION_PATH = flags.DEFINE_string(
    "inception_path", None,
    "Local copy of the TF-GAN Inception module (default: TF-Hub).")
_CLASSIFIER = flags.DEFINE_enum(
    "classifier", "inception", ["inception", "digits", "glyphs"],
    "Feature network: the TF-GAN Inception network, or the digit classifier of "
    "eval.digits_classifier fit on the digits or glyphs dataset (runs on that "
    "dataset; adds the class accuracy of the samples).")
_NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples", None, "Generated samples (default: 50,000, official; 10,000 "
    "with --classifier=digits or glyphs).")
_NUM_REAL = flags.DEFINE_integer("num_real", None,
                                 "Real images (default: --num_samples).")
_SPLIT = flags.DEFINE_string("split", None,
                             "Split of the real images (default: config's).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 100,
                                   "Global batch of generator and Inception.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the generated sample set.")
_IS_SPLITS = flags.DEFINE_integer("is_splits", 1,
                                  "Inception-score splits (official 1).")
_KID_MAX_SAMPLES = flags.DEFINE_integer("kid_max_samples", 10_000,
                                        "Per-set cap of KID samples.")
_INTRA_FID_CLASSES = flags.DEFINE_integer(
    "intra_fid_classes", 10, "Intra-FID over classes 0..N-1 (0: off), in workdir "
    "mode and for labelled --images_a/--images_b. Memory 2 N D^2 float64: 670 MB "
    "for 10 classes of 2048-d features, 67 GB for ImageNet's 1000 (docs/"
    "evaluation.md).")
_OFFICIAL_U_UPDATES = flags.DEFINE_bool(
    "official_u_updates", False, "Let the generator write its spectral-norm u "
    "back on every call, as the official eval did (in memory only); default: "
    "each batch starts from the checkpoint's u, so results do not depend on "
    "the batch size.")
_USE_EMA = flags.DEFINE_bool("use_ema", True,
                             "Evaluate the EMA generator when present.")
_BN = bn_flags.define(with_seed=False)
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Real-statistics cache folder (default: "
    "$SAGAN_TF_CACHE_DIR or ~/.cache/sagan_tf).")
_STRATEGY = flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored"],
    "default: one device; mirrored: batches split over the local GPUs "
    "(sagan_tf.strategy). Evaluation runs on one host.")
_CPU_REPLICAS = flags.DEFINE_integer("cpu_replicas", 0,
                                     "With --strategy=mirrored: logical CPUs.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 50,
                                  "Log progress every this many batches.")
_DOWNLOAD = flags.DEFINE_bool(
    "download", True, "Download and prepare the run's TFDS dataset if it is not "
    "prepared yet (needs internet).")

DIGITS_NUM_SAMPLES = 10_000


def _num_samples():
  if _NUM_SAMPLES.value is not None:
    return _NUM_SAMPLES.value
  return 50_000 if _CLASSIFIER.value == "inception" else DIGITS_NUM_SAMPLES


def _protocol():
  from eval import evaluate  # pylint: disable=g-import-not-at-top
  return evaluate.Protocol(
      num_samples=_num_samples(), num_real=_NUM_REAL.value,
      real_split=_SPLIT.value, batch_size=_BATCH_SIZE.value, seed=_SEED.value,
      is_splits=_IS_SPLITS.value, kid_max_samples=_KID_MAX_SAMPLES.value,
      official_u_updates=_OFFICIAL_U_UPDATES.value, bn_stats=_BN.mode.value,
      standing_passes=_BN.passes.value,
      standing_batch_size=_BN.batch_size.value,
      intra_fid_classes=_INTRA_FID_CLASSES.value)


def _load_classifier(strategy):
  """The feature network of --classifier; unavailable: one line, exit code 1."""
  # pylint: disable=g-import-not-at-top
  from eval import inception
  from eval import train_eval
  try:
    return train_eval.load_named_classifier(
        _CLASSIFIER.value, strategy, _CACHE_DIR.value, _INCEPTION_PATH.value)
  except inception.InceptionUnavailableError as e:
    # Not a usage error: the flags are fine, a file is missing. One line (what is
    # missing, how to place a local copy), no flag help.
    logging.error("%s", e)
    sys.exit(1)


def load_image_set(flag: str, path: str):
  """(images, labels or None) of ``--flag=path``; bad files are a UsageError."""
  from eval import evaluate  # pylint: disable=g-import-not-at-top
  try:
    return evaluate.load_image_set(path, where=f"--{flag}={path}")
  except evaluate.ImageSetError as e:
    raise app.UsageError(str(e)) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  compare = _IMAGES_A.value or _IMAGES_B.value
  if compare and not (_IMAGES_A.value and _IMAGES_B.value):
    raise app.UsageError("--images_a and --images_b go together.")
  if bool(compare) == bool(_WORKDIR.value):
    raise app.UsageError("Give either --workdir or --images_a/--images_b.")
  if _BN.passes.value <= 0 or _BN.batch_size.value <= 0:
    raise app.UsageError("--standing_passes and --standing_batch_size must be "
                         "positive.")
  if _INTRA_FID_CLASSES.value < 0:
    raise app.UsageError("--intra_fid_classes must be >= 0 (0: no intra-FID).")
  if compare:  # before loading Inception: bad files fail fast
    image_sets = [load_image_set("images_a", _IMAGES_A.value),
                  load_image_set("images_b", _IMAGES_B.value)]
  # Imports after flag parsing: --help stays fast.
  from eval import evaluate  # pylint: disable=g-import-not-at-top
  from sagan_tf.strategy import make_strategy  # pylint: disable=g-import-not-at-top

  strategy = make_strategy(_STRATEGY.value, cpu_replicas=_CPU_REPLICAS.value)
  if _WORKDIR.value and _CLASSIFIER.value != "inception":
    _check_digits_run(_WORKDIR.value)
  classifier = _load_classifier(strategy)

  if compare:
    (images_a, labels_a), (images_b, labels_b) = image_sets
    values = evaluate.compare_image_sets(
        images_a, images_b, classifier, labels_a=labels_a, labels_b=labels_b,
        strategy=strategy,
        batch_size=_BATCH_SIZE.value, is_splits=_IS_SPLITS.value,
        kid_max_samples=_KID_MAX_SAMPLES.value, log_every=_LOG_EVERY.value,
        intra_fid_classes=_INTRA_FID_CLASSES.value)
    print(json.dumps(values, sort_keys=True), flush=True)
    return

  kwargs = dict(strategy=strategy, cache_dir=_CACHE_DIR.value,
                use_ema=_USE_EMA.value, log_every=_LOG_EVERY.value)
  from sagan_tf.run import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  try:
    _evaluate_workdir(evaluate, classifier, kwargs)
  # Not a workdir, no checkpoint yet, or a config.json that does not parse.
  except (FileNotFoundError, workdir_lib.ConfigFileError) as e:
    raise app.UsageError(str(e)) from None


def _check_digits_run(workdir):
  # pylint: disable=g-import-not-at-top
  from eval import train_eval
  from sagan_tf.run import workdir as workdir_lib
  try:
    config = workdir_lib.load_config(workdir)
  except (FileNotFoundError, workdir_lib.ConfigFileError) as e:
    raise app.UsageError(str(e)) from None
  try:
    train_eval.check_classifier(_CLASSIFIER.value, config)
  except ValueError as e:
    raise app.UsageError(f"--classifier={_CLASSIFIER.value}: {e}") from None


def _evaluate_workdir(evaluate, classifier, kwargs):
  if _DOWNLOAD.value:  # real-image statistics need the run's dataset
    # pylint: disable=g-import-not-at-top
    from sagan_tf.data import pipeline as data
    from sagan_tf.run import workdir as workdir_lib
    try:
      data.prepare_if_tfds(workdir_lib.load_config(_WORKDIR.value))
    except data.DataError as e:  # one line, no traceback
      logging.error("%s", e)
      sys.exit(1)
  if _WATCH.value:
    for result in evaluate.watch(_WORKDIR.value, classifier, _protocol(),
                                 timeout=_TIMEOUT.value, **kwargs):
      logging.info("Wrote %s", result["path"])
    logging.info("No new checkpoint: done.")
  else:
    result = evaluate.evaluate_checkpoint(_WORKDIR.value, classifier, _protocol(),
                                          checkpoint=_CHECKPOINT.value, **kwargs)
    logging.info("Wrote %s", result["path"])
    print(json.dumps(dict(step=result["step"], bn_stats=result["bn_stats"],
                          **result["metrics"]), sort_keys=True), flush=True)


def run():
  """Console-script entry point (``sagan-eval``, see pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
