"""Evaluation during training: ``Config.eval_every`` (``launch.train --set=eval_every=N``).

``make_train_evaluator`` returns the callable the ``sagan_tf.training.loop.Trainer`` calls
every ``eval_every`` steps and at the end: ``evaluator(step, generator) -> result``.
It copies the generator's weights into a generator of its own (standing statistics
are written into the copy's BN layers, never into the training generator, so they
cannot reach a checkpoint), evaluates the copy with ``eval.evaluate``'s protocol
(standing BN statistics by default) and writes ``WORKDIR/eval/metrics_<step>.json``
and the ``eval/*`` TensorBoard scalars under ``WORKDIR/eval``, as ``launch.eval``
does.

The trainer passes the generator it samples from: the EMA generator when the run
keeps one. Runs on the trainer's strategy (one host: default or mirrored).
"""
from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from eval import evaluate
from sagan_tf.models.builder import build_models
from eval import digits_classifier
from eval import inception

DEFAULT_NUM_SAMPLES = 5_000


# The offline digit sets, each measured by the digit classifier fit on it.
DIGIT_CLASSIFIERS = tuple(sorted(digits_classifier.RECIPES))
CLASSIFIERS = DIGIT_CLASSIFIERS + ("inception",)


def default_classifier_name(config) -> str:
  """The run's own digit classifier for a digit set ("digits", "glyphs";
  offline), else "inception"."""
  return config.dataset if config.dataset in DIGIT_CLASSIFIERS else "inception"


def check_classifier(name: str, config) -> None:
  """Raises ValueError when ``name`` is a digit classifier of another dataset
  than the run's (its features and class accuracy would mean nothing)."""
  if name in DIGIT_CLASSIFIERS and name != config.dataset:
    raise ValueError(
        f"The {name!r} classifier measures runs on the {name!r} dataset; this run "
        f"trains on {config.dataset!r}: use "
        f"{default_classifier_name(config)!r}.")


def load_named_classifier(name: str, strategy=None, cache_dir=None,
                          inception_path=None):
  """The feature network called ``name`` (one of ``CLASSIFIERS``)."""
  if name in DIGIT_CLASSIFIERS:
    return digits_classifier.load_digits_classifier(
        cache_dir, strategy, recipe=digits_classifier.RECIPES[name])
  if name == "inception":
    return inception.load_classifier(inception_path, strategy=strategy)
  raise ValueError(f"Unknown classifier {name!r}; choose one of {CLASSIFIERS}.")


def make_train_evaluator(config, workdir: str, strategy=None, *,
                         classifier=None,
                         protocol: Optional[evaluate.Protocol] = None,
                         cache_dir: Optional[str] = None,
                         dataset_fn: Optional[Callable] = None,
                         write: bool = True) -> Callable:
  """The ``on_eval(step, generator) -> result`` callback of a training run.

  Args:
    config: the run's Config.
    workdir: where results are written.
    strategy: the trainer's strategy (default or mirrored).
    classifier: a feature network; default ``default_classifier_name(config)``.
    protocol: default ``Protocol(num_samples=DEFAULT_NUM_SAMPLES)``.
    cache_dir, dataset_fn: as ``eval.evaluate.evaluate_checkpoint``.
    write: write the JSON and TensorBoard results.

  Raises:
    ValueError: a multi-worker or TPU strategy (evaluation runs on one host).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if isinstance(strategy, (tf.distribute.MultiWorkerMirroredStrategy,
                           tf.distribute.TPUStrategy)):
    raise ValueError(
        f"eval_every runs on one host (default or mirrored strategy), not under "
        f"{type(strategy).__name__}: set eval_every=0 and run launch.eval "
        f"--watch beside the trainer.")
  if classifier is None:
    classifier = load_named_classifier(default_classifier_name(config), strategy,
                                       cache_dir)
  protocol = protocol or evaluate.Protocol(num_samples=DEFAULT_NUM_SAMPLES)
  with strategy.scope():
    copy, _ = build_models(config)

  def on_eval(step: int, generator) -> dict:
    if len(copy.weights) != len(generator.weights):
      raise ValueError(f"{generator.name} does not have the config's shape.")
    for dst, src in zip(copy.weights, generator.weights):
      dst.assign(src)
    result = evaluate.evaluate_generator(
        copy, config, classifier, protocol, step=step, strategy=strategy,
        cache_dir=cache_dir, dataset_fn=dataset_fn, log_every=0)
    if write:
      result["path"] = evaluate.write_result(workdir, result)
      logging.info("Wrote %s", result["path"])
    return result

  return on_eval
