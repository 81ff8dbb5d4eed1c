"""The tools README's official-code claims rest on, run end to end on this host.

Each test runs one tool as README runs it (its own process), against the
unmodified official code in ``../shared/official_src`` (``$SAGAN_SHARED_DIR/
official_src``; skipped, with the reason, only where it is absent) or the installed
TF-GAN wheel, on the smallest config that exercises what the claim is about, and
checks the tool's output against README's bounds:

* ``tools/check_official_towers.py``: tower batch norm against the official
  two-tower generator (README "Tower batch norm");
* ``tools/make_official_reference.py``: the official forward fixture ``official_a``
  written again (like the committed one within the conversion bounds), loaded by
  ``sagan_tf.interop.convert`` and reproduced within those bounds, the official commit
  recorded;
* ``tools/make_tfgan_reference.py``: an estimator-scoped TF-GAN checkpoint
  (``tfgan_estimator_a``'s config) written from the installed wheel, loaded and
  reproduced the same way, the wheel's version recorded;
* ``tools/time_official.py``: a tiny config through both paths, every figure it
  promises printed (no timing is asserted: the machine is shared).

``make_official_train_reference.py`` and ``compare_train_gradients.py`` are
tested with the training parity (tests/test_train_parity.py).
"""
import ast
import importlib.metadata
import importlib.util
import json
import os
import re

import numpy as np
import pytest

from sagan_tf.perf import host_cpu
from tests.test_convert import Loaded, _reproduce
from tests.tools_import import run_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
SHARED = os.environ.get("SAGAN_SHARED_DIR", os.path.join(REPO, "..", "shared"))
# README "Tower batch norm": the official towers against bn_group_size = the tower
# batch (measured 7e-6 to 9e-6: float rounding), the image bound of the
# conversion tests; the control (one group over both towers) is far off (1.73).
TOWER_BOUND, CONTROL_MIN = 1e-4, 0.1


@pytest.fixture(scope="module")
def official_src():
  path = os.path.join(SHARED, "official_src")
  if not os.path.isfile(os.path.join(path, "model.py")):
    pytest.skip(f"official code not found at {path} (set SAGAN_SHARED_DIR)")
  return os.path.abspath(path)


def _ok(proc):
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def _fixture_flags(name, keys):
  with open(os.path.join(DATA, name, "config.json")) as f:
    cfg = json.load(f)
  return cfg, [f"--{k}={cfg[k]}" for k in keys]


def test_check_official_towers(official_src, tmp_path):
  out = _ok(run_tool("check_official_towers", f"--official_src={official_src}",
                     f"--output={tmp_path}", "--trials=2"))
  diff = float(re.search(
      r"max \|official towers - sagan_tf bn_group_size=2\|: (\S+)", out).group(1))
  control = float(re.search(r"control, bn_group_size=0: (\S+)", out).group(1))
  assert diff < TOWER_BOUND, out
  assert control > CONTROL_MIN, out
  # Every official moving statistic matches one rule within 1e-5: sagan_tf's
  # sequential update or one tower's; g_bn's (read inside its update op) never
  # lost a tower's update.
  assert "no rule within" not in out, out
  trials = [ast.literal_eval(t) for t in re.findall(
      r"trial \d+: variables matching each rule: (\{.*\})", out)]
  assert len(trials) == 2, out
  for counts in trials:
    assert counts.get("sequential (g_bn)", 0) > 0, out
    assert not [k for k in counts if "g_bn" in k and "sequential" not in k], out


def _like_committed(new, old):
  """Every array of a rewritten fixture against the committed one, within the
  bounds sagan_tf is held to (test_convert): images 1e-4, logits 1e-4 relative,
  u and BN statistics 1e-5; inputs and flags exactly. (Not --compare_to's 1e-5
  of the scale: g_train, batch norm over 2 examples, moves 1.2e-5 of its scale
  between hosts' rounding.)"""
  assert sorted(new.files) == sorted(old.files)
  for k in old.files:
    a, c = new[k], old[k]
    if k in ("g_eval", "g_train"):
      np.testing.assert_allclose(a, c, rtol=0, atol=1e-4, err_msg=k)
    elif k in ("d_real", "d_fake"):
      np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4 * np.abs(c).max(),
                                 err_msg=k)
    elif k.startswith(("u_", "bn_")):
      np.testing.assert_allclose(a, c, rtol=0, atol=1e-5, err_msg=k)
    else:  # z, labels, real images, flags
      np.testing.assert_array_equal(a, c, err_msg=k)


def test_make_official_reference_end_to_end(official_src, tmp_path):
  cfg, flags = _fixture_flags("official_a", (
      "gf_dim", "df_dim", "num_classes", "z_dim", "batch_size", "generator_type",
      "discriminator_type", "tf_seed", "assign_seed", "input_seed"))
  _ok(run_tool("make_official_reference", f"--official_src={official_src}",
               f"--output={tmp_path}", *flags))
  # The committed fixture written again (same seeds, protocol and values).
  _like_committed(np.load(tmp_path / "reference.npz"),
                  np.load(os.path.join(DATA, "official_a", "reference.npz")))
  with open(tmp_path / "config.json") as f:
    written = json.load(f)
  # The official commit it ran (from SOURCE.txt: not a git checkout) and the
  # same files as the committed fixture's.
  assert written["source"]["commit"] == cfg["source"]["commit"]
  assert re.fullmatch(r"[0-9a-f]{40}", written["source"]["commit"])
  assert written["source"]["sha256"] == cfg["source"]["sha256"]
  m = Loaded(str(tmp_path), "official")
  assert (m.g.num_classes, m.g.gf_dim, m.d.df_dim, m.g.z_dim) == (
      cfg["num_classes"], cfg["gf_dim"], cfg["df_dim"], cfg["z_dim"])
  assert m.g.attention_resolutions == (32,) == m.d.attention_resolutions
  _reproduce(m)


def _tfgan_src():
  spec = importlib.util.find_spec("tensorflow_gan")  # does not run its __init__
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("tensorflow-gan is not installed (requirements-nodeps.txt)")
  return os.path.dirname(list(spec.submodule_search_locations)[0])


def test_make_tfgan_reference_end_to_end(tmp_path):
  src = _tfgan_src()
  cfg, flags = _fixture_flags("tfgan_estimator_a", (
      "gf_dim", "df_dim", "num_classes", "z_dim", "batch_size", "train_steps",
      "tf_seed", "assign_seed", "input_seed"))
  _ok(run_tool("make_tfgan_reference", f"--tfgan_src={src}",
               f"--output={tmp_path}", *flags))
  with open(tmp_path / "config.json") as f:
    written = json.load(f)
  assert written["global_step"] == cfg["train_steps"]
  assert written["source"]["commit"] == (
      f"tensorflow_gan {importlib.metadata.version('tensorflow-gan')} "
      "(installed wheel; no commit)")
  m = Loaded(str(tmp_path), "tfgan_estimator")
  assert m.scopes == ("Generator/generator", "Discriminator/discriminator")
  assert int(m.reader.get_tensor("global_step")) == cfg["train_steps"]
  assert m.g.variant.name == "tfgan_estimator"
  _reproduce(m)


def test_time_official_end_to_end(official_src):
  sizes = dict(gf_dim=2, df_dim=4, num_classes=3, z_dim=16, batch_size=2)
  out = _ok(run_tool(
      "time_official", f"--official_src={official_src}",
      *[f"--{k}={v}" for k, v in sizes.items()], "--steps=1", "--warmup=0",
      "--rounds=1", "--jit_compile=false", "--official_allocators=default"))
  lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
  head, records, summary = lines[0], lines[1:-1], lines[-1]["summary"]
  assert head["config"] == dict(sizes, steps=1, warmup=0)
  assert head["host_cpu"] == host_cpu.describe()
  assert [r["path"] for r in records] == ["official", "sagan_tf(jit=false)"]
  for r in records:
    assert 0 < r["s_per_step_min"] <= r["s_per_step_median"] <= r["s_per_step_max"]
  sagan = records[1]
  assert sagan["xla"] is False and sagan["host_allocator"] == "bfc"
  assert sagan["host_cpu"] == head["host_cpu"]
  assert sagan["flops_per_step"] > 0 and sagan["conv_gflops_per_s"] > 0
  assert 0 < sagan["fraction_of_peak"]
  assert set(summary) == {"official", "sagan_tf(jit=false)"}
  assert all(s["rounds"] == 1 for s in summary.values())
