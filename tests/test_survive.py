"""What the trainer does when things go wrong: damaged checkpoints (missing
``.index``, truncated ``.data``, no state file, none readable), NaN weights before a
save, a full disk during a save, and a second trainer on the same workdir.

One module fixture trains nothing: it builds the tiny models and saves ckpt-1..4
through the trainer's own manager with a stand-in step (``_fake_steps``), so no
test pays for tracing the real train step; each test works on a copy.
"""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf import config as config_lib
from sagan_tf.run import safe_checkpoints as safe
from sagan_tf.training import loop as train_lib
from sagan_tf.run import lock as workdir_lock

TINY = config_lib.from_preset("tiny").replace(
    log_every=100, sample_every=100, checkpoint_every=1, keep_checkpoints=10)


def _fake_steps(trainer, poison_at=None):
  """Replaces the train step by one that only counts (and, at ``poison_at``,
  writes a NaN into a generator kernel, as a diverging update would)."""
  def step(iterator):
    del iterator
    trainer.step.assign_add(1)
    n = int(trainer.step.numpy())
    kernel = trainer.generator.g_snh0.kernel
    kernel.assign(kernel + 0.001)  # each checkpoint differs
    if n == poison_at:
      kernel.assign(tf.fill(kernel.shape, float("nan")))
    return {"d_loss": 1.0, "d_loss_real": 0.5, "d_loss_fake": 0.5,
            "g_loss": 0.0, "real_logits": 0.0, "fake_logits": 0.0}
  trainer.train_step = step
  trainer.write_samples = lambda: None
  return trainer


def _files(workdir, sub=""):
  d = os.path.join(workdir, "checkpoints", sub)
  return sorted(f for f in os.listdir(d) if f.startswith("ckpt-"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A workdir with ckpt-1..4; returns (workdir, {step: g_snh0 kernel})."""
  workdir = str(tmp_path_factory.mktemp("saved"))
  trainer = _fake_steps(train_lib.Trainer(TINY, workdir))
  kernels = {}
  for n in range(1, 5):
    trainer.run(n)
    kernels[n] = trainer.generator.g_snh0.kernel.numpy().copy()
  trainer.close()
  assert _files(workdir)[-2:] == ["ckpt-4.data-00000-of-00001", "ckpt-4.index"]
  return workdir, kernels


@pytest.fixture
def copy(saved, tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(saved[0], workdir)
  return workdir


def _state(workdir):
  state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
  return (os.path.basename(state.model_checkpoint_path),
          [os.path.basename(p) for p in state.all_model_checkpoint_paths])


def test_missing_index_resumes_from_newest_readable_and_keeps_the_bad_one(
    saved, copy):
  os.remove(os.path.join(copy, "checkpoints", "ckpt-4.index"))
  trainer = train_lib.Trainer(TINY.replace(keep_checkpoints=3), copy)
  assert trainer.restored.endswith("ckpt-3")
  assert int(trainer.step.numpy()) == 3
  np.testing.assert_array_equal(trainer.generator.g_snh0.kernel.numpy(),
                                saved[1][3])
  (bad, why), = trainer.skipped_checkpoints
  assert bad.endswith("ckpt-4") and "NotFoundError" in why
  # Set aside, not deleted; the state file names the restored checkpoint.
  assert _files(copy, "unreadable") == ["ckpt-4.data-00000-of-00001"]
  assert _state(copy) == ("ckpt-3", ["ckpt-1", "ckpt-2", "ckpt-3"])
  # Training on saves a new ckpt-4 and ckpt-5; keep_checkpoints=3 rotates the
  # oldest good ones out but never touches the set-aside files.
  _fake_steps(trainer).run(5)
  trainer.close()
  assert _files(copy) == [f"ckpt-{n}.{e}" for n in (3, 4, 5)
                          for e in ("data-00000-of-00001", "index")]
  assert _files(copy, "unreadable") == ["ckpt-4.data-00000-of-00001"]
  assert _state(copy) == ("ckpt-5", ["ckpt-3", "ckpt-4", "ckpt-5"])


def test_truncated_data_falls_back_with_a_warning(saved, copy, caplog):
  data = os.path.join(copy, "checkpoints", "ckpt-4.data-00000-of-00001")
  with open(data, "r+b") as f:
    f.truncate(os.path.getsize(data) // 2)
  trainer = train_lib.Trainer(TINY, copy)
  trainer.close()
  assert trainer.restored.endswith("ckpt-3")
  np.testing.assert_array_equal(trainer.generator.g_snh0.kernel.numpy(),
                                saved[1][3])
  warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert any("Skipping checkpoint" in m and "ckpt-4" in m and "Read less bytes"
             in m for m in warned), warned
  assert _files(copy, "unreadable") == ["ckpt-4.data-00000-of-00001",
                                        "ckpt-4.index"]
  # The next start finds ckpt-3 as the latest, with nothing left to skip.
  assert _state(copy) == ("ckpt-3", ["ckpt-1", "ckpt-2", "ckpt-3"])
  assert [n for n, _ in ckpt_lib.checkpoint_candidates(copy)] == [3, 2, 1]


def test_no_readable_checkpoint_stops_and_changes_nothing(copy):
  for n in range(1, 5):
    os.remove(os.path.join(copy, "checkpoints", f"ckpt-{n}.index"))
  before = _files(copy) + [_state(copy)[0]]
  with pytest.raises(train_lib.UnreadableCheckpointsError) as e:
    train_lib.Trainer(TINY, copy)
  for n in range(1, 5):
    assert f"ckpt-{n}: NotFoundError" in str(e.value)
  assert _files(copy) + [_state(copy)[0]] == before
  # The failed start released the workdir lock.
  assert not os.path.exists(os.path.join(copy, workdir_lock.LOCK_FILE))


def test_nan_weights_are_never_saved_and_the_message_is_true(copy):
  # Logs every 10 steps, checkpoints every 3: the loss check never runs before
  # step 10, the weight check before the save at step 6 must stop it.
  config = TINY.replace(log_every=10, checkpoint_every=3)
  trainer = _fake_steps(train_lib.Trainer(config, copy), poison_at=5)
  with pytest.raises(safe.NonFiniteLossError) as e:
    trainer.run(9)
  trainer.close()
  msg = str(e.value)
  assert "by step 6" in msg and "generator/g_snh0/kernel" in msg, msg
  assert "ckpt-6 was not written" in msg, msg
  last = os.path.join(copy, "checkpoints", "ckpt-4")  # restored, then none
  assert f"The last checkpoint, {last} (step 4), is intact" in msg, msg
  assert not [f for f in _files(copy) if f.startswith("ckpt-6")]
  assert _state(copy)[0] == "ckpt-4"

  # A poisoned checkpoint written by other means (e.g. an older version) is
  # skipped on resume like an unreadable one.
  trainer.manager.save(checkpoint_number=6)
  trainer.close()
  again = train_lib.Trainer(TINY, copy)
  again.close()
  assert again.restored.endswith("ckpt-4")
  (bad, why), = again.skipped_checkpoints
  assert bad.endswith("ckpt-6") and "generator/g_snh0/kernel" in why, why
  assert np.isfinite(again.generator.g_snh0.kernel.numpy()).all()


def test_missing_state_file_and_disk_full_during_save(copy):
  # Without the `checkpoint` state file the files still say where to resume.
  os.remove(os.path.join(copy, "checkpoints", "checkpoint"))
  trainer = _fake_steps(train_lib.Trainer(TINY, copy))
  assert trainer.restored.endswith("ckpt-4") and not trainer.skipped_checkpoints

  def full(**kwargs):
    del kwargs
    raise tf.errors.ResourceExhaustedError(
        None, None, "ckpt-5_temp/part-00000-of-00001.data-00000-of-00001; No "
        "space left on device")
  trainer.manager.save = full
  with pytest.raises(train_lib.CheckpointWriteError) as e:
    trainer.run(5)
  trainer.close()
  msg = str(e.value)
  assert "Could not write checkpoint ckpt-5" in msg, msg
  assert "no space left on the device" in msg, msg
  last = os.path.join(copy, "checkpoints", "ckpt-4")
  assert f"The last checkpoint, {last} (step 4), is intact" in msg, msg
  assert "free some space" in msg and "\n" not in msg, msg


def test_second_trainer_on_a_workdir_is_refused(copy):
  first = train_lib.Trainer(TINY, copy)
  try:
    with pytest.raises(workdir_lock.WorkdirLockedError) as e:
      train_lib.Trainer(TINY, copy)
    msg = str(e.value)
    assert repr(copy) in msg and f"pid {os.getpid()}" in msg, msg
    assert "--take_over_lock" in msg, msg
  finally:
    first.close()
  assert not os.path.exists(os.path.join(copy, workdir_lock.LOCK_FILE))


def test_check_finite_names_step_and_every_bad_value():
  safe.check_finite(3, dict(d_loss=1.5, g_loss=-0.25))
  bad = dict(d_loss=float("nan"), d_loss_real=0.75, g_loss=float("-inf"))
  with pytest.raises(safe.NonFiniteLossError,
                     match=r"step 12: d_loss=nan, g_loss=-inf"):
    safe.check_finite(12, bad)
