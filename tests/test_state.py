"""sagan_tf.run.state: what a checkpoint holds, building under a strategy and a dtype
policy, and the process-wide switches a launcher sets."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf import config as config_lib
from sagan_tf.models import builder as models
from sagan_tf.run import state as state_lib
from sagan_tf import tf_compat

TINY = config_lib.from_preset("tiny")


def test_items_are_the_checkpoint_keys(tmp_path):
  state = state_lib.RunState.create(TINY.replace(ema_decay=0.5, lecam_weight=0.3))
  assert tuple(state.items()) == state_lib.ITEMS
  path = state.checkpoint.write(str(tmp_path / "ckpt"))
  tops = {k.split("/", 1)[0] for k in ckpt_lib.checkpoint_variables(path)}
  assert tops == set(state_lib.ITEMS)
  assert state.sample_generator is state.ema.generator
  plain = state_lib.RunState.create(TINY)
  assert tuple(plain.items()) == state_lib.ITEMS[:-2]  # no EMA, no LeCam
  assert plain.sample_generator is plain.generator


def test_create_builds_under_the_policy_and_restores_it():
  with models.dtype_policy("float32"):
    state = state_lib.RunState.create(TINY.replace(mixed_precision=True,
                                                   ema_decay=0.5))
    assert keras.config.dtype_policy().name == "float32"
  for g in (state.generator, state.ema.generator):
    assert g.g_block1.compute_dtype == "bfloat16"


def test_set_process_switches_seeds_and_makes_deterministic():
  def first_kernel():
    return models.build_generator(TINY).g_snh0.kernel.numpy()
  state_lib.set_process_switches(TINY)
  a = first_kernel()
  assert not tf_compat.op_determinism_enabled()
  state_lib.set_process_switches(TINY, deterministic=True)
  np.testing.assert_array_equal(first_kernel(), a)
  assert tf_compat.op_determinism_enabled()
  state_lib.set_process_switches(TINY.replace(seed=TINY.seed + 1))
  assert not np.array_equal(first_kernel(), a)
  with pytest.raises(ValueError, match="jit_compile"):
    state_lib.set_process_switches(TINY.replace(jit_compile=True),
                                   deterministic=True)


def test_models_only_items_restore_into_models(tmp_path):
  g, d = models.build_models(TINY)
  g.g_snh0.bias.assign(tf.fill(g.g_snh0.bias.shape, 0.5))
  path = state_lib.save_models(str(tmp_path), TINY, g, d, step=3, ema_generator=g)
  for use_ema in (False, True):
    g2, _, step = state_lib.restore_models(path, TINY, use_ema, has_ema=True)
    assert step == 3
    np.testing.assert_array_equal(g2.g_snh0.bias.numpy(), 0.5)


def test_set_learning_rates_overrides_the_restored_rates(tmp_path):
  # A checkpoint holds the Adams' rates as variables, so a restore brings back
  # the old rate; set_learning_rates makes the config's rule and reports it.
  old = state_lib.RunState.create(TINY.replace(g_lr=1e-4, d_lr=4e-4))
  path = old.checkpoint.write(str(tmp_path / "ckpt"))
  new_config = TINY.replace(g_lr=3e-4, d_lr=4e-4)
  new = state_lib.RunState.create(new_config)
  new.checkpoint.read(path).assert_existing_objects_matched()
  f32 = lambda x: float(np.float32(x))
  assert float(new.g_optimizer.learning_rate.numpy()) == f32(1e-4)  # restored
  changed = state_lib.set_learning_rates(new_config, new.g_optimizer,
                                         new.d_optimizer)
  assert changed == [("g_lr", f32(1e-4), 3e-4)]  # d_lr unchanged: not listed
  assert float(new.g_optimizer.learning_rate.numpy()) == f32(3e-4)
  assert float(new.d_optimizer.learning_rate.numpy()) == f32(4e-4)
  assert state_lib.set_learning_rates(new_config, new.g_optimizer,
                                      new.d_optimizer) == []
