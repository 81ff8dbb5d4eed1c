"""Checks that a workdir can be resumed with a given config and models.

* ``check_config_compatible``: the workdir's ``config.json`` must agree with the
  requested config on every field that decides variable shapes (``MODEL_FIELDS``).
* ``check_checkpoint_matches``: every variable of the objects to restore must be in
  the checkpoint with the same shape, and the checkpoint must hold nothing else
  under those objects; the error names every mismatched variable (TensorFlow's own
  restore error names a Keras 3 variable only by its short name, e.g.
  ``generator/beta:0``).

Checkpoint keys are the object paths ``tf.train.Checkpoint`` writes
(``generator/g_block1/snconv1/kernel/.ATTRIBUTES/VARIABLE_VALUE``), computed here by
the same breadth-first walk over ``tf_compat.trackable_children`` that the saver does, so no
throw-away checkpoint has to be written to learn them. A variable reachable along
several paths is saved once, under the first path of that walk (e.g. a top-level
layer's kernel as ``g_optimizer/_trainable_variables/0``, since ``g_optimizer``
sorts before ``generator``).
"""
from __future__ import annotations

import collections
from typing import Dict, Iterable, Mapping, Sequence, Tuple

import keras
import tensorflow as tf

from sagan_tf import tf_compat
from sagan_tf.config import Config

# Config fields that change the variables of G or D (names or shapes).
MODEL_FIELDS = ("image_size", "num_classes", "z_dim", "gf_dim", "df_dim",
                "g_attention", "d_attention", "variant")

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class ConfigMismatchError(ValueError):
  """The workdir's config.json has a different model shape than requested."""


class CheckpointMismatchError(ValueError):
  """The checkpoint's variables do not match the models being restored."""


def check_config_compatible(saved: Config, requested: Config, workdir: str) -> None:
  """Raises ConfigMismatchError naming the model-shape fields that differ."""
  diffs = [f"{f}: workdir {getattr(saved, f)!r} vs requested "
           f"{getattr(requested, f)!r}"
           for f in MODEL_FIELDS if getattr(saved, f) != getattr(requested, f)]
  if diffs:
    raise ConfigMismatchError(
        f"Cannot resume {workdir!r}: its config.json has a different model shape "
        f"({'; '.join(diffs)}). Use a new --workdir, or the workdir's own settings.")


def expected_variables(objects: Mapping[str, object]) -> Dict[str, Tuple[int, ...]]:
  """``{checkpoint key: shape}`` that ``tf.train.Checkpoint(**objects)`` would save."""
  out = {}
  seen = set()
  queue = collections.deque()
  # tf.train.Checkpoint adds its keyword arguments in sorted order; below the root
  # the walk follows each object's own child order, as the saver does.
  for name, obj in sorted(objects.items()):
    if id(obj) not in seen:
      seen.add(id(obj))
      queue.append((obj, name))
  while queue:
    obj, path = queue.popleft()
    if isinstance(obj, (tf.Variable, keras.Variable)):
      out[path + _SUFFIX] = tuple(obj.shape)
      continue
    for name, child in tf_compat.trackable_children(obj).items():
      if id(child) not in seen:
        seen.add(id(child))
        queue.append((child, f"{path}/{name}"))
  return out


def checkpoint_variables(path: str) -> Dict[str, Tuple[int, ...]]:
  return {k: tuple(s) for k, s in tf.train.list_variables(path)
          if k.endswith(_SUFFIX)}


def _short(key: str) -> str:
  return key[:-len(_SUFFIX)] if key.endswith(_SUFFIX) else key


def _listing(items: Sequence[str], limit: int = 12) -> str:
  shown = ", ".join(items[:limit])
  return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def check_checkpoint_matches(path: str, objects: Mapping[str, object],
                             optional: Iterable[str] = ()) -> Tuple[str, ...]:
  """Checks the checkpoint at ``path`` against ``objects`` before restoring.

  Args:
    path: checkpoint prefix.
    objects: the ``tf.train.Checkpoint`` attributes to restore.
    optional: attribute names that may be absent from the checkpoint as a whole
      (e.g. optimizers when fine-tuning from a converted checkpoint); if present
      they must match like the others.

  Returns:
    The optional attributes absent from the checkpoint.

  Raises:
    CheckpointMismatchError naming missing, unexpected and reshaped variables.
  """
  have = checkpoint_variables(path)
  top = lambda key: key.split("/", 1)[0]
  present = {top(k) for k in have}
  absent = tuple(n for n in objects if n not in present
                 and expected_variables({n: objects[n]}))
  required_absent = sorted(n for n in absent if n not in set(optional))
  # Keys depend on which objects are saved together (a variable shared by a model
  # and its optimizer is keyed under the first path): compare like with like.
  want = expected_variables({n: o for n, o in objects.items() if n not in absent})
  have = {k: s for k, s in have.items() if top(k) in objects}
  missing = sorted(_short(k) for k in want if k not in have)
  unexpected = sorted(_short(k) for k in have if k not in want)
  reshaped = sorted(f"{_short(k)} (checkpoint {list(have[k])}, model {list(s)})"
                    for k, s in want.items() if k in have and tuple(have[k]) != s)
  if required_absent:
    missing = [f"{n}/* (all)" for n in required_absent] + missing
  if missing or unexpected or reshaped:
    lines = [f"Checkpoint {path} does not match the models being restored:"]
    if missing:
      lines.append(f"  missing from the checkpoint ({len(missing)}): "
                   f"{_listing(missing)}")
    if unexpected:
      lines.append(f"  in the checkpoint but not in the models ({len(unexpected)}): "
                   f"{_listing(unexpected)}")
    if reshaped:
      lines.append(f"  different shapes ({len(reshaped)}): {_listing(reshaped)}")
    raise CheckpointMismatchError("\n".join(lines))
  return tuple(n for n in absent if n in set(optional))
