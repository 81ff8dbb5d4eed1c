"""Workdir config compatibility (sagan_tf.run.workdir) and the checkpoint/model
variable comparison (sagan_tf.run.checkpoint)."""
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import state as state_lib
from sagan_tf.run import workdir as workdir_lib
from sagan_tf.models.builder import build_models

TINY = config_lib.from_preset("tiny")


def _objects(config):
  g, d = build_models(config)
  g_opt, d_opt = state_lib.make_optimizers(config, g, d)
  return dict(step=tf.Variable(0, dtype=tf.int64), generator=g, discriminator=d,
              g_optimizer=g_opt, d_optimizer=d_opt)


def test_expected_variables_are_what_the_saver_writes(tmp_path):
  objects = _objects(TINY)
  path = tf.train.Checkpoint(**objects).write(str(tmp_path / "ckpt"))
  assert ckpt_lib.expected_variables(objects) == ckpt_lib.checkpoint_variables(path)


def test_matching_checkpoint_passes_and_optional_objects_may_be_absent(tmp_path):
  objects = _objects(TINY)
  path = tf.train.Checkpoint(step=objects["step"], generator=objects["generator"],
                             discriminator=objects["discriminator"]).write(
                                 str(tmp_path / "ckpt"))
  absent = ckpt_lib.check_checkpoint_matches(
      path, objects, optional=("g_optimizer", "d_optimizer", "ema_generator"))
  assert absent == ("g_optimizer", "d_optimizer")
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r"missing from the checkpoint \(2\): d_optimizer/\* \(all\), "
                           r"g_optimizer/\* \(all\)$"):
    ckpt_lib.check_checkpoint_matches(path, objects)


def test_mismatch_names_reshaped_variables(tmp_path):
  g, _ = build_models(TINY.replace(gf_dim=8))
  path = tf.train.Checkpoint(generator=g).write(str(tmp_path / "ckpt"))
  g4, _ = build_models(TINY)
  with pytest.raises(ckpt_lib.CheckpointMismatchError) as e:
    ckpt_lib.check_checkpoint_matches(path, dict(generator=g4))
  assert ("generator/g_block1/snconv1/kernel (checkpoint [3, 3, 32, 32], "
          "model [3, 3, 16, 16])") in str(e.value)
  assert "more)" in str(e.value)  # long lists are cut


def test_config_compatibility_names_fields():
  workdir_lib.check_config_compatible(TINY, TINY.replace(g_lr=1.0, train_steps=9), "W")
  with pytest.raises(ValueError, match=r"variant: workdir 'official' vs requested "
                                       r"'tfgan_estimator'"):
    workdir_lib.check_config_compatible(TINY, TINY.replace(variant="tfgan_estimator"),
                                      "W")
