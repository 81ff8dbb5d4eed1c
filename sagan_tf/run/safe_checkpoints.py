"""Restoring and saving a run's checkpoints so that nothing good is lost.

* ``check_finite``: the NaN/inf guard of the logged losses (``NonFiniteLossError``,
  the base of ``NonFiniteWeightsError``): training stops before a bad save.

* ``restore_newest_readable``: tries ``checkpoint.checkpoint_candidates`` newest
  first (every ``ckpt-N`` with a file or a state-file entry) and keeps the first
  that restores and holds only finite values; the others it skipped are returned
  with the reason (``NotFoundError`` for a missing ``.index``, ``IndexError: Read
  less bytes than requested`` for a truncated ``.data``, the non-finite variables).
  Checkpoint files of which none is usable raise ``UnreadableCheckpointsError``
  naming each: a fresh start would let the CheckpointManager rotate them away.
* ``set_aside``: moves the skipped ones into ``checkpoints/unreadable/`` (never
  deleted) and rewrites the ``checkpoint`` state file to name the restored one, so
  a later save of the same step number cannot overwrite them and the manager's
  ``max_to_keep`` rotation only counts readable checkpoints.
* ``FiniteCheck`` and ``save_checked``: a save first checks every floating-point
  variable (models, optimizer slots, EMA) and refuses to write NaN/inf
  (``NonFiniteWeightsError``); a failed write (``ENOSPC`` arrives as
  ``ResourceExhaustedError``) becomes ``CheckpointWriteError`` naming the previous
  checkpoint, which the failed save left untouched (TensorFlow writes into
  ``ckpt-N_temp`` and updates the state file only after a complete write).
"""
from __future__ import annotations

import errno
import math
import os
from typing import List, Mapping, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import workdir as workdir_lib


class NonFiniteLossError(FloatingPointError):
  """Raised by ``check_finite`` when a loss or logit mean is NaN or infinite."""


def check_finite(step: int, metrics: Mapping[str, float]) -> None:
  """Raises NonFiniteLossError naming the step and every non-finite value."""
  bad = {k: v for k, v in metrics.items() if not math.isfinite(float(v))}
  if bad:
    what = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
    raise NonFiniteLossError(
        f"Training diverged at step {step}: {what}. The last checkpoint before "
        f"this step is intact; lower the learning rates or check the data.")


class UnreadableCheckpointsError(RuntimeError):
  """The workdir has checkpoint files, but none can be restored."""


class NonFiniteWeightsError(NonFiniteLossError):
  """A save found NaN/inf in the state to save; nothing was written."""


class CheckpointWriteError(RuntimeError):
  """A checkpoint could not be written (e.g. the disk is full)."""


def first_line(e: BaseException) -> str:
  text = str(getattr(e, "message", None) or e).strip()
  return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def step_of(prefix: str) -> int:
  return int(prefix.rsplit("-", 1)[1])


def listing(names: Sequence[str], limit: int = 5) -> str:
  more = f" and {len(names) - limit} more" if len(names) > limit else ""
  return ", ".join(names[:limit]) + more


def intact(last_checkpoint: Optional[str]) -> str:
  """The sentence a stop message gives about the last good checkpoint."""
  if last_checkpoint is None:
    return "No checkpoint of this workdir holds later state"
  return (f"The last checkpoint, {last_checkpoint} (step "
          f"{step_of(last_checkpoint)}), is intact")


class FiniteCheck:
  """``check()`` -> names of the floating-point variables of ``objects`` (the
  checkpoint's attributes) holding a NaN or inf; one traced reduction."""

  def __init__(self, objects: Mapping[str, object]):
    variables = []
    for name, obj in sorted(objects.items()):
      if isinstance(obj, tf.Variable):  # the step counter
        continue
      for v in obj.variables:
        if tf.as_dtype(v.dtype).is_floating:
          # Keras variables have a path; LeCam's tf.Variables a name.
          path = getattr(v, "path", None) or v.name.split(":")[0]
          variables.append((f"{name}/{path}", v))
    self.names = [n for n, _ in variables]
    self._fn = tf.function(lambda: tf.stack(
        [tf.reduce_all(tf.math.is_finite(v)) for _, v in variables]))

  def __call__(self) -> List[str]:
    return [n for n, ok in zip(self.names, self._fn().numpy()) if not ok]


def restore_newest_readable(
    checkpoint: tf.train.Checkpoint, objects: Mapping[str, object], workdir: str,
    finite: FiniteCheck, optional: Sequence[str] = ()
) -> Tuple[Optional[str], Tuple[str, ...], List[Tuple[str, str]]]:
  """Restores the newest usable checkpoint of ``workdir`` into ``checkpoint``.

  Args:
    checkpoint: the ``tf.train.Checkpoint`` over ``objects``.
    objects: its attributes, checked by ``ckpt_lib.check_checkpoint_matches``.
    workdir: the run directory.
    finite: the FiniteCheck of ``objects``.
    optional: attributes that may be absent (see check_checkpoint_matches).

  Returns:
    (prefix restored or None if there are no checkpoints, optional attributes
    absent from it, [(skipped prefix, why)] newest first).

  Raises:
    UnreadableCheckpointsError: candidates exist, none usable; nothing changed.
    ckpt_lib.CheckpointMismatchError: a readable checkpoint of other models.
  """
  candidates = ckpt_lib.checkpoint_candidates(workdir)
  skipped = []
  for _, path in candidates:
    try:
      absent = ckpt_lib.check_checkpoint_matches(path, objects, optional)
      status = checkpoint.restore(path)
    except (tf.errors.OpError, IndexError) as e:  # missing, truncated, garbled
      skipped.append((path, first_line(e)))
      continue
    if absent:  # e.g. a converted checkpoint: models only, fresh optimizer state
      status.expect_partial()
    else:
      status.assert_existing_objects_matched()
    bad = finite()
    if bad:
      skipped.append((path, f"non-finite values in {listing(bad)}"))
      continue
    return path, absent, skipped
  if not candidates:
    return None, (), []
  raise UnreadableCheckpointsError(
      f"{ckpt_lib.checkpoint_dir(workdir)} has checkpoints, but none can be "
      f"restored: " + "; ".join(f"{os.path.basename(p)}: {why}"
                                for p, why in skipped)
      + ". Nothing was changed. Restore a good copy of one of them, or use a new "
      "--workdir to start over.")


def set_aside(workdir: str, restored: str, skipped: Sequence[str]) -> List[str]:
  """Moves the ``skipped`` checkpoints into checkpoints/unreadable/ and makes
  the state file name ``restored`` (keeping the older checkpoints it listed);
  returns the moved files. Only the process that owns the workdir may call it."""
  directory = ckpt_lib.checkpoint_dir(workdir)
  moved = ckpt_lib.quarantine(skipped)
  logging.warning("Moved the skipped checkpoint files to %s (kept for inspection,"
                  " never deleted): %s",
                  workdir_lib.unreadable_dir(workdir),
                  ", ".join(os.path.basename(m) for m in moved))
  try:
    state = tf.train.get_checkpoint_state(directory)
    listed = {os.path.basename(p) for p in state.all_model_checkpoint_paths}
  except (tf.errors.OpError, ValueError, AttributeError):  # none, or damaged
    listed = None
  kept = [p for _, p in reversed(ckpt_lib.checkpoint_candidates(workdir))
          if step_of(p) <= step_of(restored)
          and (listed is None or os.path.basename(p) in listed or p == restored)]
  ckpt_lib.write_checkpoint_state(workdir, restored, kept)
  return moved


def save_checked(manager: tf.train.CheckpointManager, step: int,
                 finite: FiniteCheck, last_checkpoint: Optional[str]) -> str:
  """``manager.save(checkpoint_number=step)`` if every variable is finite.

  Raises:
    NonFiniteWeightsError: a variable holds NaN/inf; nothing was written.
    CheckpointWriteError: the write failed (e.g. no space left on the device);
      ``last_checkpoint`` and the state file naming it are untouched.
  """
  bad = finite()
  if bad:
    raise NonFiniteWeightsError(
        f"Training diverged by step {step}: non-finite values in {listing(bad)};"
        f" checkpoint ckpt-{step} was not written. {intact(last_checkpoint)}; "
        f"lower the learning rates or check the data.")
  try:
    return manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    full = (isinstance(e, tf.errors.ResourceExhaustedError)
            or getattr(e, "errno", None) == errno.ENOSPC
            or "No space left" in str(e))
    what = "no space left on the device" if full else first_line(e)
    raise CheckpointWriteError(
        f"Could not write checkpoint ckpt-{step} in {manager.directory}: {what}. "
        f"{intact(last_checkpoint)}; "
        f"{'free some space' if full else 'fix the problem'} and run the same "
        f"command to resume from it.") from e
