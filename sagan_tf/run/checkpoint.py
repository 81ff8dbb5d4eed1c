"""The checkpoints of a workdir (``WORKDIR/checkpoints/``, see ``sagan_tf.run.workdir``).

Each checkpoint is a ``tf.train.Checkpoint`` over the items ``sagan_tf.run.state``
names (``step``, ``generator``, ``discriminator``, ``g_optimizer``,
``d_optimizer``, ``ema_generator``, ``lecam``; a converted workdir holds the
models only), written by a CheckpointManager as ``ckpt-N``. Every command line (train, eval,
sample, export, convert) reads and writes this one layout.

Damaged checkpoints (a lost ``.index``, a truncated ``.data`` file after a crash
mid-write) are found by ``checkpoint_candidates`` (every ``ckpt-N`` that has any
file, newest first, whether or not the ``checkpoint`` state file lists it) and set
aside by ``quarantine``: moved into ``checkpoints/unreadable/``, never deleted, so
the ``CheckpointManager`` neither restores them nor overwrites them when it saves
the same step number again, and its ``max_to_keep`` clean-up never counts them.

``latest_checkpoint``, which eval, sample and export read through ``load_models``,
takes the same rule as a resume: the newest candidate that reads completely and
holds only finite values; it names newer damaged ones in a warning and moves
nothing (only the trainer, which owns the workdir, sets them aside).

``check_checkpoint_matches`` compares a checkpoint with the objects to restore
before restoring: every variable must be in the checkpoint with the same shape, and
the checkpoint must hold nothing else under those objects; the error names every
mismatched variable (TensorFlow's own restore error names a Keras 3 variable only
by its short name, e.g. ``generator/beta:0``). Checkpoint keys are the object paths
``tf.train.Checkpoint`` writes
(``generator/g_block1/snconv1/kernel/.ATTRIBUTES/VARIABLE_VALUE``), computed by the
saver's own breadth-first walk (``tf_compat.trackable_children``), so no throw-away
checkpoint has to be written to learn them. A variable reachable along several
paths is saved once, under the first path of that walk (e.g. a top-level layer's
kernel as ``g_optimizer/_trainable_variables/0``, since ``g_optimizer`` sorts
before ``generator``).
"""
from __future__ import annotations

import collections
import os
import re
import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from sagan_tf import tf_compat
from sagan_tf.config import Config
# Re-exported: callers read a workdir's config and paths from here too.
from sagan_tf.run.workdir import checkpoint_dir
from sagan_tf.run.workdir import load_config
from sagan_tf.run.workdir import UNREADABLE_SUBDIR
from sagan_tf.run import workdir as workdir_lib

_CKPT_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class CheckpointMismatchError(ValueError):
  """The checkpoint's variables do not match the models being restored."""


class NoReadableCheckpointError(FileNotFoundError):
  """The workdir has checkpoint files, but none is readable and finite."""


def readable_problem(path: str) -> Optional[str]:
  """Why the checkpoint ``path`` cannot be used (a missing ``.index``, a
  truncated ``.data``, NaN/inf in a floating-point variable), or None.

  Reads every tensor once (a truncated ``.data`` file shows only when the bytes
  past its end are read). The reader opens ``path`` as a prefix: not
  ``tf.train.load_checkpoint``, which first asks whether ``path`` is a directory,
  and the ``ram://`` filesystem answers yes for a prefix of existing files.
  """
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(path)
    bad = []
    for key, dtype in sorted(reader.get_variable_to_dtype_map().items()):
      value = reader.get_tensor(key)
      if tf.as_dtype(dtype).is_floating and not np.all(np.isfinite(value)):
        bad.append(_short(key))
  except (tf.errors.OpError, IndexError, ValueError) as e:
    text = str(getattr(e, "message", None) or e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
  return f"non-finite values in {_listing(bad)}" if bad else None


def latest_checkpoint(workdir: str) -> Optional[str]:
  """The newest readable, finite checkpoint of ``workdir``: the one training
  resumes from (``safe_checkpoints.restore_newest_readable``), so eval, sample and
  export read what a resume would. Every ``ckpt-N`` counts (``checkpoint_candidates``),
  not only the one the ``checkpoint`` state file names; a newer damaged one is
  named in a warning and left in place (only the trainer sets checkpoints aside).

  Returns:
    The checkpoint prefix, or None if the workdir has no checkpoint files.

  Raises:
    NoReadableCheckpointError: checkpoint files exist, none is usable.
  """
  candidates = checkpoint_candidates(workdir)
  skipped = []
  for _, path in candidates:
    why = readable_problem(path)
    if why is None:
      for bad, reason in skipped:
        logging.warning("Skipping checkpoint %s (%s); reading %s instead.",
                        bad, reason, path)
      return path
    skipped.append((path, why))
  if not candidates:
    return None
  raise NoReadableCheckpointError(
      f"{checkpoint_dir(workdir)} has checkpoints, but none can be read: "
      + "; ".join(f"{os.path.basename(p)}: {why}" for p, why in skipped)
      + ". Restore a good copy of one of them, or pass another workdir.")


def checkpoint_candidates(workdir: str) -> List[Tuple[int, str]]:
  """``[(step, prefix)]`` of every checkpoint in ``workdir``, newest first.

  A checkpoint counts if any of its files (``ckpt-N.index``, ``ckpt-N.data-*``)
  exists or the ``checkpoint`` state file names it, so damaged ones are listed
  too: the caller finds out which are readable.
  """
  directory = checkpoint_dir(workdir)
  steps = set()
  if tf.io.gfile.isdir(directory):
    for name in tf.io.gfile.listdir(directory):
      m = _CKPT_FILE.match(name.rstrip("/"))
      if m:
        steps.add(int(m.group(1)))
  try:
    state = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError):  # a damaged state file: the files decide
    state = None
  if state is not None:
    for path in list(state.all_model_checkpoint_paths) + [
        state.model_checkpoint_path]:
      m = re.match(r"^ckpt-(\d+)$", os.path.basename(path))
      if m:
        steps.add(int(m.group(1)))
  return [(n, os.path.join(directory, f"ckpt-{n}"))
          for n in sorted(steps, reverse=True)]


def check_resumable(workdir: str, config: Config) -> None:
  """Checks that ``config`` may train in ``workdir`` (new, or the same model).

  Raises:
    ConfigMismatchError: config.json names another model shape, or there are
      checkpoints but no config.json to tell what they hold.
    ConfigFileError: config.json does not parse.
  """
  if workdir_lib.has_config(workdir):
    workdir_lib.check_config_compatible(load_config(workdir), config, workdir)
    return
  if checkpoint_candidates(workdir):
    raise workdir_lib.ConfigMismatchError(
        f"{workdir!r} has checkpoints but no {workdir_lib.CONFIG_FILE}; cannot "
        f"tell whether they fit this config.")


def quarantine(prefixes: Sequence[str]) -> List[str]:
  """Moves every file of the checkpoints ``prefixes`` into
  ``checkpoints/unreadable/`` (replacing older copies there); returns the new
  paths. Nothing is deleted."""
  moved = []
  for prefix in prefixes:
    target = os.path.join(os.path.dirname(prefix), UNREADABLE_SUBDIR)
    tf.io.gfile.makedirs(target)
    for path in tf.io.gfile.glob(prefix + ".*"):
      dest = os.path.join(target, os.path.basename(path))
      tf.io.gfile.rename(path, dest, overwrite=True)
      moved.append(dest)
  return moved


def write_checkpoint_state(workdir: str, latest: str,
                           kept: Sequence[str]) -> None:
  """Rewrites ``checkpoints/checkpoint`` so that ``latest`` is the newest and
  ``kept`` (oldest first, ending with ``latest``) the list the next
  ``CheckpointManager`` keeps and rotates (``max_to_keep``).

  The save times of ``kept`` are carried over from the old state file (a
  checkpoint without one gets the current time): the manager only rotates
  checkpoints saved after ``last_preserved_timestamp``.
  """
  directory = checkpoint_dir(workdir)
  try:
    old = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError):
    old = None
  times = {}
  if old is not None:
    times = {os.path.basename(p): t for p, t in zip(
        old.all_model_checkpoint_paths, old.all_model_checkpoint_timestamps)}
  now = time.time()
  stamps = [min(times.get(os.path.basename(p), now), now) for p in kept]
  stamps = [max(stamps[:i + 1]) for i in range(len(stamps))]  # oldest first
  preserved = min(stamps) - 1.0 if stamps else now
  if old is not None and old.last_preserved_timestamp:
    preserved = min(preserved, old.last_preserved_timestamp)
  tf.compat.v1.train.update_checkpoint_state(
      directory, os.path.basename(latest),
      all_model_checkpoint_paths=[os.path.basename(p) for p in kept],
      all_model_checkpoint_timestamps=stamps,
      last_preserved_timestamp=preserved)


def has_ema(path: str) -> bool:
  """Whether the checkpoint at ``path`` holds an EMA generator."""
  # The reader itself: tf.train.list_variables asks gfile whether the path is a
  # directory first, which ram:// (and so possibly other file systems) answers
  # yes for a checkpoint prefix.
  names = tf.compat.v1.train.NewCheckpointReader(path).get_variable_to_shape_map()
  return any(n.startswith("ema_generator/") for n in names)


def checkpoint_keys(objects: Mapping[str, object]) -> Dict[str, object]:
  """``{checkpoint key: variable}`` that ``tf.train.Checkpoint(**objects)`` would
  save (a variable reachable twice is saved, and listed, once: its first path)."""
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
      out[path + _SUFFIX] = obj
      continue
    for name, child in tf_compat.trackable_children(obj).items():
      if id(child) not in seen:
        seen.add(id(child))
        queue.append((child, f"{path}/{name}"))
  return out


def expected_variables(objects: Mapping[str, object]) -> Dict[str, Tuple[int, ...]]:
  """``{checkpoint key: shape}`` that ``tf.train.Checkpoint(**objects)`` would save."""
  return {key: tuple(v.shape) for key, v in checkpoint_keys(objects).items()}


def checkpoint_variables(path: str) -> Dict[str, Tuple[int, ...]]:
  return {k: tuple(s) for k, s in tf.train.list_variables(path)
          if k.endswith(_SUFFIX)}


def variables_of(workdir: str) -> Dict[str, np.ndarray]:
  """{checkpoint key: value} of the latest checkpoint in ``workdir``, to compare
  runs; leaves out ``save_counter`` (how many saves the manager made)."""
  path = latest_checkpoint(workdir)
  reader = tf.compat.v1.train.NewCheckpointReader(path)  # a prefix (ram:// too)
  return {k: reader.get_tensor(k) for k, _ in tf.train.list_variables(path)
          if k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
          and not k.startswith("save_counter/")}


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
