"""TF-GAN's classifier metrics (IS, FID, KID) on TF 2.21, without ``import tensorflow_gan``.

Why this module exists: tensorflow-gan 2.1.0 is the last release, and
``import tensorflow_gan`` fails on TF >= 2.16 because its top-level ``__init__``
imports the estimator code and ``tf.estimator`` is gone. Its evaluation module
``tensorflow_gan/python/eval/classifier_metrics.py`` (with its one in-package
dependency ``eval_utils.py``) does not need the estimator and works on TF 2.21,
eagerly and inside ``tf.function``.

So this module loads those two files straight from the installed wheel with
``importlib``, WITHOUT running any package ``__init__`` (``tensorflow_gan``,
``tensorflow_gan.python``, ``tensorflow_gan.python.eval``): empty placeholder
package objects stand in for the parents during the load, and ``sys.modules`` is
put back exactly as it was afterwards, so a later ``import tensorflow_gan`` elsewhere
behaves as it would without us (it still fails on TF 2.21, loudly).

We do not use TF-GAN's ``classifier_fn_from_tfhub``/``run_inception``: they call
``tf.compat.v1.layers.flatten``, which raises under Keras 3 (see ``eval.inception``).

Use: ``from eval.tfgan_compat import classifier_metrics`` and call its public
functions (``classifier_score_from_logits``,
``frechet_classifier_distance_from_activations``, ``trace_sqrt_product``,
``kernel_classifier_distance_and_std_from_activations``...).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types

_PACKAGES = ("tensorflow_gan", "tensorflow_gan.python", "tensorflow_gan.python.eval")
_MODULES = ("eval_utils", "classifier_metrics")  # dependency order


def _tfgan_root() -> str:
  """Folder of the installed ``tensorflow_gan`` package, found without importing it."""
  spec = importlib.machinery.PathFinder.find_spec("tensorflow_gan")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(
        "tensorflow-gan is not installed; install it with "
        "`pip install --no-deps tensorflow-gan==2.1.0` (see requirements-nodeps.txt).")
  return list(spec.submodule_search_locations)[0]


def _load():
  """Returns {name: module} for the eval files, with sys.modules left unchanged."""
  eval_dir = os.path.join(_tfgan_root(), "python", "eval")
  touched = _PACKAGES + tuple(f"{_PACKAGES[-1]}.{m}" for m in _MODULES)
  saved = {name: sys.modules.get(name) for name in touched}
  loaded = {}
  try:
    for pkg in _PACKAGES:  # placeholders: a __path__ but no __init__ executed
      stub = types.ModuleType(pkg)
      stub.__path__ = [os.path.join(_tfgan_root(), *pkg.split(".")[1:])]
      sys.modules[pkg] = stub
    for name in _MODULES:
      full = f"{_PACKAGES[-1]}.{name}"
      spec = importlib.util.spec_from_file_location(
          full, os.path.join(eval_dir, name + ".py"))
      module = importlib.util.module_from_spec(spec)
      sys.modules[full] = module  # classifier_metrics imports eval_utils by name
      setattr(sys.modules[_PACKAGES[-1]], name, module)
      spec.loader.exec_module(module)
      loaded[name] = module
  finally:
    for name, module in saved.items():
      if module is None:
        sys.modules.pop(name, None)
      else:
        sys.modules[name] = module
  return loaded


classifier_metrics = _load()["classifier_metrics"]
