"""End-to-end training on the tiny preset with the digits pipeline: one step under
the default strategy and under MirroredStrategy (2 logical CPUs), resume bit
identity, SIGTERM stop, the NaN guard, and the workdir/checkpoint checks."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf import config as config_lib
from sagan_tf.run import safe_checkpoints as safe
from sagan_tf.run import state as state_lib
from sagan_tf.run import workdir as workdir_lib
from sagan_tf import strategy as strategy_lib
from sagan_tf.training import loop as train_lib
from sagan_tf.models.builder import build_models
from sagan_tf.run.checkpoint import CheckpointMismatchError
from sagan_tf.layers.spectral_norm import power_iteration
from tests.test_summaries import read_events

TINY = config_lib.from_preset("tiny").replace(
    log_every=1, sample_every=2, checkpoint_every=2)


def _weights(model):
  return {w.path: w.numpy().copy() for w in model.weights}


def _write_checkpoint_state(ckpt_dir, name):
  with open(os.path.join(ckpt_dir, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "{name}"\n'
            f'all_model_checkpoint_paths: "{name}"\n')


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """4 deterministic steps on the default strategy, uninterrupted."""
  workdir = str(tmp_path_factory.mktemp("straight"))
  logs, after_first = [], {}
  trainer = None

  def on_log(progress):
    logs.append(progress)
    if progress.step == 1:
      after_first.update(d=_weights(trainer.discriminator),
                         g=_weights(trainer.generator))

  state_lib.set_process_switches(TINY, deterministic=True)  # as launch.train
  trainer = train_lib.Trainer(TINY, workdir, on_log=on_log)
  before = dict(d=_weights(trainer.discriminator), g=_weights(trainer.generator))
  result = trainer.run(4)
  trainer.close()
  return dict(workdir=workdir, trainer=trainer, result=result, logs=logs,
              before=before, after_first=after_first)


def test_default_strategy_trains_logs_and_saves(straight):
  result, logs = straight["result"], straight["logs"]
  assert result.step == 4 and not result.stopped
  assert [p.step for p in logs] == [1, 2, 3, 4]
  for p in logs:
    assert all(np.isfinite(v) for v in p.metrics.values()), p.metrics
    np.testing.assert_allclose(p.metrics["d_loss"], p.metrics["d_loss_real"]
                               + p.metrics["d_loss_fake"], rtol=1e-5)
  assert "step 4/4" in logs[-1].line() and "ETA" in logs[-1].line()
  before = straight["before"]
  g, d = straight["trainer"].generator, straight["trainer"].discriminator
  for model, key in ((g, "g"), (d, "d")):
    for w in model.trainable_weights:  # (attention: zero gradient until its gate moves)
      assert not np.array_equal(w.numpy(), before[key][w.path]), w.path
  workdir = straight["workdir"]
  assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
      "step_0000002.png", "step_0000004.png"]
  assert result.checkpoint.endswith("ckpt-4")
  assert ckpt_lib.load_config(workdir) == TINY
  # TensorBoard: the tags docs/training.md names, as the trainer fills them.
  events = read_events(workdir)
  gates = ["attention/g_non_local/sigma_ratio", "attention/d_non_local/sigma_ratio"]
  assert set(events) == {
      "losses/d_loss", "losses/d_loss_real", "losses/d_loss_fake", "losses/g_loss",
      "logits/real", "logits/fake", "lr/generator", "lr/discriminator",
      "speed/steps_per_sec", "speed/images_per_sec", "samples", *gates}
  assert [s for s, _ in events["losses/d_loss"]] == [1, 2, 3, 4]
  assert [s for s, _ in events["speed/steps_per_sec"]] == [2, 3, 4]  # not step 1
  assert [s for s, _ in events["samples"]] == [2, 4]
  for p in logs:
    assert events["losses/g_loss"][p.step - 1] == (
        p.step, pytest.approx(p.metrics["g_loss"], rel=1e-6))
    assert events["logits/fake"][p.step - 1][1] == pytest.approx(
        p.metrics["fake_logits"], rel=1e-6)
  assert events["lr/generator"][-1] == (4, pytest.approx(TINY.g_lr))
  assert events["lr/discriminator"][-1] == (4, pytest.approx(TINY.d_lr))
  for tag, layer in zip(gates, (g.g_non_local, d.d_non_local)):
    assert events[tag][-1] == (4, pytest.approx(float(layer.sigma_ratio.numpy())))
  with Image.open(os.path.join(workdir, "samples", "step_0000004.png")) as png:
    np.testing.assert_array_equal(events["samples"][-1][1],
                                  np.asarray(png.convert("RGB")))


def test_sampling_changes_no_state(straight):
  trainer = straight["trainer"]
  before = _weights(trainer.generator)
  images = trainer._sample_fn().numpy()  # pylint: disable=protected-access
  assert images.shape == (80, 32, 32, 3) and np.abs(images).max() <= 1.0
  after = _weights(trainer.generator)
  assert len(before) > 50
  for name, value in before.items():
    np.testing.assert_array_equal(after[name], value, err_msg=name)
  np.testing.assert_array_equal(trainer._sample_fn().numpy(), images)  # pylint: disable=protected-access


def test_discriminator_u_written_on_real_pass_only(straight):
  # After one step D's u must be ONE power iteration from its initial value (the
  # real pass); the fake passes of the D and G steps must not write it.
  layer = "discriminator/d_optimized_block1/sn_conv1"
  w0 = straight["before"]["d"][layer + "/kernel"]
  u0 = straight["before"]["d"][layer + "/u"]
  u1 = straight["after_first"]["d"][layer + "/u"]
  w_mat = tf.reshape(w0, [-1, w0.shape[-1]])
  _, once = power_iteration(w_mat, tf.constant(u0))
  _, twice = power_iteration(w_mat, once)
  np.testing.assert_allclose(u1, once.numpy(), rtol=1e-5, atol=1e-6)
  assert np.abs(twice.numpy() - once.numpy()).max() > 1e-4  # test can tell
  # The generator writes u on every training forward.
  g_u = "generator/g_block1/snconv1/u"
  assert not np.array_equal(straight["after_first"]["g"][g_u],
                            straight["before"]["g"][g_u])


def test_resume_is_bit_identical_and_sigterm_saves(straight, tmp_path):
  # A fresh trainer resumes from the straight run's step-2 checkpoint...
  src = os.path.join(straight["workdir"], "checkpoints")
  workdir = str(tmp_path / "resumed")
  os.makedirs(os.path.join(workdir, "checkpoints"))
  shutil.copy(os.path.join(straight["workdir"], "config.json"), workdir)
  for f in os.listdir(src):
    if f.startswith("ckpt-2."):
      shutil.copy(os.path.join(src, f), os.path.join(workdir, "checkpoints"))
  _write_checkpoint_state(os.path.join(workdir, "checkpoints"), "ckpt-2")

  lines = []

  def sigterm_during_step_4(progress):
    lines.append(progress.line())
    if progress.step == 3:
      os.kill(os.getpid(), signal.SIGTERM)

  state_lib.set_process_switches(TINY, deterministic=True)  # as launch.train
  trainer = train_lib.Trainer(TINY, workdir, on_log=sigterm_during_step_4)
  assert int(trainer.step.numpy()) == 2
  # ...a SIGTERM stops it after the running step, with a checkpoint...
  stopped = trainer.run(4)
  assert stopped.stopped and stopped.step == 3
  assert stopped.checkpoint.endswith("ckpt-3")
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
  # ...and it then ends where the uninterrupted run ended, bit for bit.
  assert not trainer.run(4).stopped
  trainer.close()
  # Each run's first log line (no speed yet) names the step it is at.
  assert len(lines) == 2 and "speed after step 3" in lines[0], lines
  assert "speed after step 4" in lines[1], lines
  a = ckpt_lib.variables_of(straight["workdir"])
  b = ckpt_lib.variables_of(workdir)
  assert a.keys() == b.keys() and len(a) > 200
  differ = [k for k in a if not np.array_equal(a[k], b[k])]
  assert not differ, differ[:5]


def test_resume_trains_at_the_config_learning_rate(straight, tmp_path):
  # Resuming with another g_lr (launch.train --set=g_lr=...): the checkpoint's
  # Adam holds the old rate as a variable; the run goes on at the config's.
  workdir = str(tmp_path / "new_lr")
  shutil.copytree(straight["workdir"], workdir)
  new_lr = TINY.g_lr * 3
  trainer = train_lib.Trainer(TINY.replace(g_lr=new_lr), workdir)
  assert int(trainer.step.numpy()) == 4
  assert trainer.changed_learning_rates == [
      ("g_lr", float(np.float32(TINY.g_lr)), new_lr)]
  trainer.run(5)
  trainer.close()
  rates = {k.split("/")[0]: float(v)
           for k, v in ckpt_lib.variables_of(workdir).items()
           if "_learning_rate" in k}
  assert rates == {"g_optimizer": float(np.float32(new_lr)),
                   "d_optimizer": float(np.float32(TINY.d_lr))}, rates


def test_mirrored_one_step_with_ema(tmp_path):
  strategy = strategy_lib.make_strategy("mirrored", cpu_replicas=2)
  config = TINY.replace(ema_decay=0.5)
  trainer = train_lib.Trainer(config, str(tmp_path), strategy)
  g_before = _weights(trainer.generator)
  d_before = _weights(trainer.discriminator)
  result = trainer.run(1)
  trainer.close()
  assert all(np.isfinite(v) for v in result.metrics.values()), result.metrics
  kernel = "discriminator/d_block2/sn_conv1/kernel"
  assert not np.array_equal(trainer.discriminator.d_block2.sn_conv1.kernel.numpy(),
                            d_before[kernel])
  # Replicas agree on the state written in the forward passes.
  for var in (trainer.discriminator.d_block2.sn_conv1.u,
              trainer.generator.g_block1.cbn_0.moving_mean):
    local = strategy.experimental_local_results(var.value)
    assert len(local) == 2
    np.testing.assert_array_equal(local[0].numpy(), local[1].numpy())
  # EMA hook: decay 0.5 from step 0, so ema = (init + new) / 2.
  ema = trainer.ema.generator.g_snh0.kernel.numpy()
  new = trainer.generator.g_snh0.kernel.numpy()
  np.testing.assert_allclose(ema, 0.5 * (g_before["generator/g_snh0/kernel"] + new),
                             rtol=1e-5, atol=1e-7)
  keys = ckpt_lib.variables_of(str(tmp_path))
  assert any(k.startswith("ema_generator/") for k in keys)


def test_nan_guard_names_step_and_loss(tmp_path):
  trainer = train_lib.Trainer(TINY, str(tmp_path))

  def diverging_step(iterator):
    trainer.step.assign_add(1)
    bad = float("nan") if int(trainer.step.numpy()) == 3 else 1.0
    return {"d_loss": bad, "d_loss_real": 0.5, "d_loss_fake": 0.5,
            "g_loss": float("inf") if bad != 1.0 else 0.0, "real_logits": 0.0,
            "fake_logits": 0.0}
  trainer.train_step = diverging_step
  trainer.write_samples = lambda: None
  with pytest.raises(safe.NonFiniteLossError,
                     match=r"step 3: d_loss=nan, g_loss=inf"):
    trainer.run(6)
  trainer.close()


def test_resume_with_other_model_shape_names_fields(straight):
  with pytest.raises(ValueError, match="different model shape") as e:
    train_lib.Trainer(TINY.replace(gf_dim=8, z_dim=8, g_lr=1e-3),
                      straight["workdir"])
  assert "gf_dim: workdir 4 vs requested 8" in str(e.value)
  assert "z_dim: workdir 16 vs requested 8" in str(e.value)
  assert "g_lr" not in str(e.value)  # not a model-shape field


def test_checkpoint_with_other_variables_names_them(tmp_path):
  # A checkpoint of a generator without attention under a config.json with it.
  no_attention = TINY.replace(g_attention=())
  g, d = build_models(no_attention)
  state_lib.save_models(str(tmp_path), no_attention, g, d, step=5)
  workdir_lib.save_config(str(tmp_path), TINY)
  with pytest.raises(CheckpointMismatchError,
                     match=r"missing from the checkpoint.*generator/g_non_local/"):
    train_lib.Trainer(TINY, str(tmp_path))


def test_starts_from_models_only_checkpoint(tmp_path):
  # A workdir written by save_models (e.g. launch.convert): no optimizer state.
  g, d = build_models(TINY)
  g.g_snh0.bias.assign(tf.fill(g.g_snh0.bias.shape, 0.25))
  state_lib.save_models(str(tmp_path), TINY, g, d, step=7)
  trainer = train_lib.Trainer(TINY, str(tmp_path))
  trainer.close()
  assert int(trainer.step.numpy()) == 7
  assert set(trainer.absent_on_restore) == {"g_optimizer", "d_optimizer"}
  np.testing.assert_array_equal(trainer.generator.g_snh0.bias.numpy(), 0.25)


def test_launcher_rejects_malformed_override(tmp_path):
  run = subprocess.run(
      [sys.executable, "-m", "launch.train", "--preset=tiny",
       f"--workdir={tmp_path}", "--set=gf_dim"], capture_output=True, text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=120)
  assert run.returncode != 0
  assert "--set expects field=value, got 'gf_dim'" in run.stderr
