"""Which checkpoint eval, sample and export read (``checkpoint.latest_checkpoint``,
``state.load_models``): the newest readable, finite one, as training resumes,
whatever the ``checkpoint`` state file names; a damaged newer one is named in a
warning and left where it is."""
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import state as state_lib
from sagan_tf.config import from_preset
from sagan_tf.models.builder import build_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A tiny workdir with ckpt-1 and ckpt-2 (the state file names ckpt-2)."""
  path = str(tmp_path_factory.mktemp("readers") / "run")
  config = from_preset("tiny")
  for step in (1, 2):
    g, d = build_models(config)
    state_lib.save_models(path, config, g, d, step=step)
  return path


@pytest.fixture
def copy(saved, tmp_path):
  path = str(tmp_path / "run")
  shutil.copytree(saved, path)
  return path


def _prefix(workdir, n):
  return os.path.join(workdir, "checkpoints", f"ckpt-{n}")


def _damage(workdir, how):
  prefix = _prefix(workdir, 2)
  if how == "no_index":
    os.remove(prefix + ".index")
  else:
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) // 2)


def test_intact_workdir_reads_the_newest(copy):
  assert ckpt_lib.latest_checkpoint(copy) == _prefix(copy, 2)
  assert state_lib.load_models(copy)[3] == 2


@pytest.mark.parametrize("how", ["no_index", "truncated_data"])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(copy, how, caplog):
  _damage(copy, how)
  files = sorted(os.listdir(os.path.join(copy, "checkpoints")))
  with caplog.at_level(logging.WARNING):
    assert ckpt_lib.latest_checkpoint(copy) == _prefix(copy, 1)
  warned = [r.getMessage() for r in caplog.records if "ckpt-2" in r.getMessage()]
  assert warned and "reading" in warned[0] and "ckpt-1" in warned[0], warned
  assert state_lib.load_models(copy)[3] == 1
  # A reader changes nothing in the workdir.
  assert sorted(os.listdir(os.path.join(copy, "checkpoints"))) == files


def test_non_finite_newest_checkpoint_is_skipped(copy):
  config = from_preset("tiny")
  g, d = build_models(config)
  g.g_snh0.kernel.assign(np.full(g.g_snh0.kernel.shape, np.nan, np.float32))
  state_lib.save_models(copy, config, g, d, step=3)
  assert ckpt_lib.latest_checkpoint(copy) == _prefix(copy, 2)
  assert "non-finite values in generator/" in ckpt_lib.readable_problem(
      _prefix(copy, 3))


def test_no_readable_checkpoint_names_each(copy):
  _damage(copy, "no_index")
  os.remove(_prefix(copy, 1) + ".index")
  with pytest.raises(ckpt_lib.NoReadableCheckpointError,
                     match=r"none can be read: ckpt-2: .*; ckpt-1: "):
    ckpt_lib.latest_checkpoint(copy)


def test_launch_sample_reads_the_newest_readable(copy, tmp_path):
  """The reported case: the quick start's workdir with the newest .index
  deleted; launch.sample found no checkpoint."""
  _damage(copy, "no_index")
  png = str(tmp_path / "grid.png")
  proc = subprocess.run(
      [sys.executable, "-m", "launch.sample", f"--workdir={copy}", "--num=2",
       f"--png={png}", "--bn_stats=moving"], cwd=REPO, capture_output=True,
      text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(png)
  assert any("Skipping checkpoint" in l and "ckpt-2" in l
             for l in proc.stderr.splitlines()), proc.stderr[-3000:]
