"""Config.jit_compile true / false / "auto" and its one resolution (sagan_tf.training.jit_choice)."""
import json
import types

import pytest
import tensorflow as tf

# Not launch.benchmark: it defines absl flags that launch.train (imported by other
# test files in the same process) defines too.
from launch import jit_flag
from launch import train as launch_train
from sagan_tf.models import architecture
from sagan_tf import config as config_lib
from sagan_tf.training import jit_choice
from sagan_tf.training import step as step_lib

TINY = config_lib.from_preset("tiny")
ONE = tf.distribute.get_strategy()


def test_default_is_auto_and_json_keeps_old_booleans():
  assert config_lib.Config().jit_compile == "auto"
  assert all(config_lib.from_preset(n).jit_compile == "auto"
             for n in config_lib.PRESETS)
  assert config_lib.Config.from_json(TINY.to_json()).jit_compile == "auto"
  old = json.loads(TINY.to_json())
  for value in (True, False):  # config.json files written before "auto"
    old["jit_compile"] = value
    assert config_lib.Config.from_json(json.dumps(old)).jit_compile is value


def test_override_parses_the_three_values_and_names_a_bad_one():
  for text, want in (("auto", "auto"), ("AUTO", "auto"), ("true", True),
                     ("1", True), ("false", False), ("no", False)):
    assert config_lib.override(TINY, {"jit_compile": text}).jit_compile == want
  with pytest.raises(ValueError, match="jit_compile must be true, false or auto"):
    config_lib.override(TINY, {"jit_compile": "fast"})
  with pytest.raises(ValueError, match=r"Config.jit_compile='yes please': must be "
                                       r"True, False or 'auto'"):
    TINY.replace(jit_compile="yes please")
  with pytest.raises(ValueError, match="Config.jit_compile=1"):
    TINY.replace(jit_compile=1)  # not a bool


def test_launch_flag_and_train_config(tmp_path):
  parser = jit_flag._TriStateParser()  # pylint: disable=protected-access
  assert [parser.parse(v) for v in ("auto", "true", "false")] == ["auto", True, False]
  with pytest.raises(ValueError, match="true, false or auto"):
    parser.parse("maybe")
  # No flag: the preset's auto, or a --set value; the flag wins over --set.
  def build(**kwargs):
    return launch_train.build_config(str(tmp_path), "tiny", **kwargs).jit_compile
  assert build() == "auto"
  assert build(sets=["jit_compile=false"]) is False
  assert build(jit_compile=True, sets=["jit_compile=false"]) is True
  assert build(jit_compile="auto", sets=["jit_compile=true"]) == "auto"


def test_explicit_values_are_kept():
  for value in (True, False):
    choice = jit_choice.resolve(TINY.replace(jit_compile=value), ONE)
    assert choice.enabled is value and "in the config" in choice.reason


def test_auto_rule():
  big = TINY.replace(image_size=128, gf_dim=64, df_dim=64)
  assert jit_choice.resolve(big, ONE, deterministic=False).enabled
  assert "128 px" in jit_choice.resolve(big, ONE, deterministic=False).reason
  on = {  # measured faster: cifar10_32, digits32; 64 px lies between
      "32 px, width 64": TINY.replace(gf_dim=64, df_dim=64),
      "32 px, width 8": TINY.replace(gf_dim=8, df_dim=8),
      "64 px, width 64": big.replace(image_size=64),
  }
  for name, config in on.items():
    assert jit_choice.resolve(config, ONE, deterministic=False).enabled, name
  off = {
      "32 px, width 4": jit_choice.resolve(TINY, ONE, deterministic=False),
      "128 px, width 8": jit_choice.resolve(big.replace(gf_dim=8, df_dim=8), ONE,
                                            deterministic=False),
      "64 px, width 8": jit_choice.resolve(
          big.replace(image_size=64, gf_dim=8, df_dim=8), ONE, deterministic=False),
      "narrow G": jit_choice.resolve(big.replace(gf_dim=32), ONE,
                                     deterministic=False),
      "narrow D": jit_choice.resolve(big.replace(df_dim=8), ONE,
                                     deterministic=False),
      "determinism": jit_choice.resolve(big, ONE, deterministic=True),
      "2 replicas": jit_choice.resolve(
          big, types.SimpleNamespace(num_replicas_in_sync=2), deterministic=False),
      "inference": jit_choice.resolve(big, ONE, workload="generate",
                                      deterministic=False),
  }
  for name, choice in off.items():
    assert not choice.enabled, name
    assert choice.reason.startswith("auto: off"), (name, choice.reason)


def test_auto_reads_tensorflow_determinism(monkeypatch):
  big = TINY.replace(image_size=128, gf_dim=64, df_dim=64)
  monkeypatch.setattr(jit_choice, "_op_determinism_enabled", lambda: True)
  assert not jit_choice.resolve(big, ONE).enabled
  monkeypatch.setattr(jit_choice, "_op_determinism_enabled", lambda: False)
  assert jit_choice.resolve(big, ONE).enabled


def test_train_step_compiles_what_auto_resolves(monkeypatch):
  """TrainStep goes through resolve (constructing it compiles nothing)."""
  model = types.SimpleNamespace(variant=architecture.variant(TINY.variant))

  def compiled(config):
    ts = step_lib.TrainStep(config, ONE, model, model, None, None, None)
    return ts._compiled  # pylint: disable=protected-access
  assert not compiled(TINY)  # auto at width 4: off
  monkeypatch.setattr(jit_choice, "AUTO_MIN_WIDTH_SMALL", 4)
  assert compiled(TINY)  # the same config once the rule says on
  assert not compiled(TINY.replace(jit_compile=False))
