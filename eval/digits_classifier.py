"""Small digit classifiers of the offline digit sets: an offline quality benchmark.

The Inception network measures ImageNet-like images and needs a download; for the
offline ``digits32`` quick start, ``load_digits_classifier()`` gives a
``eval.inception.Classifier`` (same interface: images `[N, H, W, 3]` in [-1, 1] ->
``{"logits": [N, 10], "pool_3": [N, 128]}``) of a small Keras CNN trained on the
real digits, so ``eval.evaluate`` computes IS, FID and KID in its features with the
same TF-GAN metric code, plus the class accuracy of conditional samples.

Recipe (``RECIPE``; every field keys the cache):

* data: ``sagan_tf.data.sources.load_digits_images(32)`` (the 1797 digits as
  training sees them: 32x32, dark ink on white, RGB, then x * 2 / 255 - 1), split
  by a seeded permutation into 1497 training and 300 held-out images;
* model: 2x2 average pool to 16x16 (the digits hold 8x8 pixels of information) -
  conv 3x3 (32) - max-pool - conv 3x3 (64) - max-pool - flatten - dense 128
  (ReLU: the "pool_3" features) - dense 10 (logits); inputs of another size are
  resized to 32x32 (bilinear, as the Inception wrapper does to 299);
* training: Adam 1e-3, batch 32, ``epochs`` epochs, each training image shifted by
  up to 2 pixels per epoch (seeded), initialisers and shuffles seeded; on the CPU
  this gives the same weights every time (seconds).

The ``glyphs`` set (``sagan_tf.data.glyphs``: printed digits in random poses) gets
its own classifier, ``GLYPHS_RECIPE``: the same model and training, fit on the
glyphs "train" split and scored on the held-out "test" split (``RECIPES`` maps each
dataset to its recipe; held-out accuracy 0.982, 35 s of training here). The
digits classifier is not used there: it reads only
33.5 % of the held-out glyphs as their class (measured 2026-12-03; it has never
seen a rotated, sheared or bold printed digit), so its features would measure
how much samples look like sklearn's handwriting, not like glyphs, and class
accuracy would be meaningless.

The weights are cached as ``CACHE_DIR/digits_classifier_<sha1 of the recipe>.npz``
with the recipe and the held-out accuracy; the classifier's ``identity`` is a
fingerprint of the weights, so real-image statistics computed with other weights
are never reused.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from eval.inception import Classifier
from eval.real_stats import default_cache_dir
from sagan_tf.data import glyphs
from sagan_tf.data.sources import load_digits_images

DIGITS_SIZE = 32
RECIPE = dict(version=2, image_size=DIGITS_SIZE, held_out=300, epochs=20,
              batch_size=32, lr=1e-3, shift=2, seed=0, width=(32, 64),
              features=128)
SOURCE = "digits"
# No held_out: the glyphs have a held-out split of their own. data_version keys
# the cache to the rendering.
GLYPHS_RECIPE = dict({k: v for k, v in RECIPE.items() if k != "held_out"},
                     dataset="glyphs", data_version=glyphs.VERSION)
RECIPES = {"digits": RECIPE, "glyphs": GLYPHS_RECIPE}


def build_model(recipe: dict):
  """The Keras model: images `[N, 32, 32, 3]` -> (logits `[N, 10]`, features)."""
  import keras  # pylint: disable=g-import-not-at-top
  seed = recipe["seed"]
  init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)
  x = inputs = keras.Input((recipe["image_size"], recipe["image_size"], 3))
  # The digits hold 8x8 of information: 16x16 keeps the strokes and is cheap.
  x = keras.layers.AveragePooling2D(recipe["image_size"] // 16)(x)
  for i, width in enumerate(recipe["width"]):
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                            kernel_initializer=init(i))(x)
    x = keras.layers.MaxPooling2D()(x)
  x = keras.layers.Flatten()(x)
  features = keras.layers.Dense(recipe["features"], activation="relu",
                                kernel_initializer=init(10))(x)
  logits = keras.layers.Dense(10, kernel_initializer=init(11))(features)
  return keras.Model(inputs, [logits, features])


def _dataset(recipe: dict) -> str:
  return recipe.get("dataset", SOURCE)


def _data(recipe: dict):
  if _dataset(recipe) == "glyphs":
    scaled = lambda x: x.astype(np.float32) * (2.0 / 255.0) - 1.0
    (x, y), (xt, yt) = (glyphs.load_glyph_images(recipe["image_size"], split)
                        for split in ("train", "test"))
    return scaled(x), y.astype(np.int32), scaled(xt), yt.astype(np.int32)
  images, labels = load_digits_images(recipe["image_size"])
  x = images.astype(np.float32) * (2.0 / 255.0) - 1.0
  order = np.random.default_rng(recipe["seed"]).permutation(len(x))
  test, train = order[:recipe["held_out"]], order[recipe["held_out"]:]
  return (x[train], labels[train].astype(np.int32),
          x[test], labels[test].astype(np.int32))


def _shift(x: np.ndarray, rng, max_shift: int) -> np.ndarray:
  """Each image moved by up to max_shift pixels; the border is white (+1)."""
  if not max_shift:
    return x
  out = np.ones_like(x)
  size = x.shape[1]
  for i, (dy, dx) in enumerate(rng.integers(-max_shift, max_shift + 1,
                                            (len(x), 2))):
    ys, yd = (slice(0, size - dy), slice(dy, size)) if dy >= 0 else (
        slice(-dy, size), slice(0, size + dy))
    xs, xd = (slice(0, size - dx), slice(dx, size)) if dx >= 0 else (
        slice(-dx, size), slice(0, size + dx))
    out[i, yd, xd] = x[i, ys, xs]
  return out


def train_classifier(recipe: dict = RECIPE):
  """Trains the model of ``recipe``; returns (model, held-out accuracy)."""
  import keras  # pylint: disable=g-import-not-at-top
  x_train, y_train, x_test, y_test = _data(recipe)
  model = build_model(recipe)
  optimizer = keras.optimizers.Adam(recipe["lr"])
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      logits, _ = model(x, training=True)
      loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  rng = np.random.default_rng(recipe["seed"] + 1)
  bs = recipe["batch_size"]
  for _ in range(recipe["epochs"]):
    order = rng.permutation(len(x_train))
    x_epoch = _shift(x_train[order], rng, recipe["shift"])
    y_epoch = y_train[order]
    for i in range(0, len(x_epoch) - bs + 1, bs):
      step(tf.constant(x_epoch[i:i + bs]), tf.constant(y_epoch[i:i + bs]))
  logits, _ = model(x_test, training=False)
  accuracy = float(np.mean(np.argmax(logits.numpy(), 1) == y_test))
  return model, accuracy


def cache_path(cache_dir: str, recipe: dict) -> str:
  digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
  return os.path.join(cache_dir, f"digits_classifier_{digest[:16]}.npz")


def _fingerprint(weights) -> str:
  h = hashlib.sha1()
  for w in weights:
    h.update(np.ascontiguousarray(w, np.float32).tobytes())
  return h.hexdigest()[:16]


def save_cached(path: str, recipe: dict, weights, accuracy: float) -> str:
  """Writes a classifier's weights, recipe and accuracy to ``path`` (gfile)."""
  tf.io.gfile.makedirs(os.path.dirname(path))
  arrays = {f"w{i}": w for i, w in enumerate(weights)}
  buffer = io.BytesIO()  # np.savez seeks, which a GFile being written cannot
  np.savez(buffer, recipe=np.array(json.dumps(recipe, sort_keys=True)),
           count=np.int64(len(weights)), accuracy=np.float64(accuracy), **arrays)
  tmp = f"{path}.tmp{os.getpid()}"
  with tf.io.gfile.GFile(tmp, "wb") as f:
    f.write(buffer.getvalue())
  tf.io.gfile.rename(tmp, path, overwrite=True)  # readers never see half a file
  return path


class _Module:
  """images `[N, 32, 32, 3]` -> {"logits", "pool_3"} (the Inception call form)."""

  def __init__(self, model):
    self.model = model

  def __call__(self, images):
    logits, features = self.model(images, training=False)
    return {"logits": logits, "pool_3": features}


def load_digits_classifier(cache_dir: Optional[str] = None, strategy=None,
                           recipe: dict = RECIPE) -> Classifier:
  """A digit ``Classifier``, trained once per recipe and cached on disk.

  Args:
    cache_dir: folder of the weights cache (default: the real-statistics cache,
      ``$SAGAN_TF_CACHE_DIR`` or ``~/.cache/sagan_tf``).
    strategy: tf.distribute strategy whose replicas will run it.
    recipe: the training recipe (``RECIPES[dataset]``; tests use a shorter one).

  Returns:
    A Classifier with ``source`` the recipe's dataset ("digits" or "glyphs"),
    ``identity`` "<source>:<weights sha1>",
    ``num_classes`` 10, ``labels_match_classes`` True and ``held_out_accuracy``.
  """
  path = cache_path(cache_dir or default_cache_dir(), recipe)
  weights, accuracy = None, None
  if tf.io.gfile.exists(path):
    try:
      with tf.io.gfile.GFile(path, "rb") as f:
        data = io.BytesIO(f.read())
      with np.load(data) as z:
        if str(z["recipe"]) == json.dumps(recipe, sort_keys=True):
          count = int(z["count"])
          weights = [z[f"w{i}"] for i in range(count)]
          accuracy = float(z["accuracy"])
    except (OSError, ValueError, KeyError) as e:
      logging.warning("Unreadable digits classifier %s (%s); retraining.", path, e)
  strategy = strategy or tf.distribute.get_strategy()
  if weights is None:
    logging.info("Training the digit classifier %s into %s", recipe, path)
    model, accuracy = train_classifier(recipe)
    weights = model.get_weights()
    save_cached(path, recipe, weights, accuracy)
    logging.info("Digit classifier (%s): held-out accuracy %.4f",
                 _dataset(recipe), accuracy)
  with strategy.scope():
    model = build_model(recipe)
    model.set_weights(weights)
  source = _dataset(recipe)
  classifier = Classifier(_Module(model), source=source,
                          identity=f"{source}:{_fingerprint(weights)}",
                          image_size=recipe["image_size"])
  classifier.num_classes = 10
  classifier.labels_match_classes = True
  classifier.held_out_accuracy = accuracy
  return classifier
