"""The Inception network of the metrics, behind a small callable interface.

``load_classifier(path=None)`` returns a ``Classifier``: images `[N, H, W, 3]` float
in [-1, 1] -> ``{"logits": [N, C], "pool_3": [N, D]}`` float32. By default the
network is the TF-GAN Inception module from TF-Hub
(``https://tfhub.dev/tensorflow/tfgan/eval/inception/1``: 1008 logits, 2048-d
pool_3), the network of the official SAGAN eval and of TF-GAN; ``path`` names a
local copy of it (or, in tests, any SavedModel with the same call signature).
``tensorflow_hub`` honours ``TFHUB_CACHE_DIR``. Each network is loaded once per
process (and strategy), not per batch.

Offline with no local copy, loading raises ``InceptionUnavailableError`` saying how
to place one.

Deliberate deviations from the official code:

* TF-GAN's ``classifier_fn_from_tfhub`` is not used: it flattens outputs with
  ``tf.compat.v1.layers.flatten``, which raises under Keras 3. Outputs are
  flattened here with ``tf.reshape``.

As in the official ``utils_ori.run_custom_inception``, images are resized to 299x299
bilinearly with TF1's sampling grid (the ``ResizeBilinear`` op with
``half_pixel_centers=False``, i.e. TF1's ``tf.image.resize_bilinear``), not TF2's
``tf.image.resize``, whose half-pixel grid gives other pixels.
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict, Optional

import tensorflow as tf

TFHUB_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_SIZE = 299

_LOADED: Dict[tuple, "Classifier"] = {}


class InceptionUnavailableError(RuntimeError):
  """The Inception network cannot be found or downloaded."""


def hub_cache_name(handle: str = TFHUB_HANDLE) -> str:
  """Folder name tensorflow_hub uses for ``handle`` under TFHUB_CACHE_DIR."""
  return hashlib.sha1(handle.encode("utf8")).hexdigest()


def how_to_place(handle: str = TFHUB_HANDLE) -> str:
  cache = os.environ.get("TFHUB_CACHE_DIR", "$TFHUB_CACHE_DIR")
  return (
      "To evaluate offline, on a machine with internet download the module "
      f"tarball ({handle}?tf-hub-format=compressed), unpack it into a folder "
      "(it holds saved_model.pb and variables/), copy that folder here, and "
      "either pass --inception_path=FOLDER (inception_path=FOLDER in Python) or "
      f"put it at {os.path.join(cache, hub_cache_name(handle))} "
      "(TFHUB_CACHE_DIR/<sha1 of the handle>).")


def fingerprint(path: str) -> str:
  """sha1 (16 hex) of a SavedModel's graph and variable index: its identity."""
  h = hashlib.sha1()
  for name in ("saved_model.pb", os.path.join("variables", "variables.index")):
    full = os.path.join(path, name)
    if os.path.exists(full):
      with open(full, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
          h.update(chunk)
  return h.hexdigest()[:16]


def resize_bilinear(images, size: int = INCEPTION_SIZE):
  """Bilinear resize of `[N, H, W, C]` floats to `[N, size, size, C]` (TF1 grid)."""
  images = tf.convert_to_tensor(images, tf.float32)
  if images.shape[1] == size and images.shape[2] == size:
    return images
  # The op behind TF1's tf.image.resize_bilinear (and its compat.v1 alias).
  return tf.raw_ops.ResizeBilinear(images=images, size=[size, size],
                                   align_corners=False, half_pixel_centers=False)


class Classifier:
  """images `[N, H, W, 3]` in [-1, 1] -> {"logits": [N, C], "pool_3": [N, D]} float32.

  Attributes:
    source: the handle or local folder it was loaded from.
    identity: "sha1:" + a fingerprint of the model files (not of where they lie);
      it keys cached statistics.
  """

  def __init__(self, module, source: str, identity: str,
               image_size: int = INCEPTION_SIZE):
    self.module = module
    self.source = source
    self.identity = identity
    self.image_size = image_size

  def __call__(self, images) -> Dict[str, tf.Tensor]:
    out = self.module(resize_bilinear(images, self.image_size))
    n = tf.shape(images)[0]
    return {k: tf.reshape(tf.cast(out[k], tf.float32), [n, -1])
            for k in ("logits", "pool_3")}


def _resolve(path: Optional[str]) -> str:
  """Local folder of the network: ``path`` as given, else the TF-Hub handle's."""
  if path:
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
      raise InceptionUnavailableError(
          f"No SavedModel (saved_model.pb) at inception_path={path!r}. "
          + how_to_place())
    return os.path.abspath(path)
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  try:
    return hub.resolve(TFHUB_HANDLE)
  except Exception as e:  # URLError, OSError, ValueError... all mean "not here"
    raise InceptionUnavailableError(
        f"Cannot load the Inception network {TFHUB_HANDLE} ({type(e).__name__}: "
        f"{e}). " + how_to_place()) from e


def load_classifier(path: Optional[str] = None, strategy=None) -> Classifier:
  """Returns the Inception ``Classifier``, loading it at most once per process.

  Args:
    path: folder of a local copy (a SavedModel with the TF-GAN module's call
      signature); None loads the TF-Hub handle (honouring TFHUB_CACHE_DIR).
    strategy: a tf.distribute strategy whose replicas will run it (its variables
      are then mirrored); default the current one.

  Raises:
    InceptionUnavailableError: no local copy and no download possible.
  """
  local = _resolve(path)
  strategy = strategy or tf.distribute.get_strategy()
  key = (local, strategy)
  if key not in _LOADED:
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    source = path if path else TFHUB_HANDLE
    try:
      with strategy.scope():
        module = hub.load(local)
    except Exception as e:  # a partial download, a wrong folder...
      raise InceptionUnavailableError(
          f"Cannot load the Inception network from {local!r} ({type(e).__name__}: "
          f"{e}). " + how_to_place()) from e
    _LOADED[key] = Classifier(module, source=source,
                              identity=f"sha1:{fingerprint(local)}")
  return _LOADED[key]
