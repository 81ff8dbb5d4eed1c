"""launch/__init__.py: the process defaults every launcher starts with."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAUNCHERS = sorted(
    f[:-3] for f in os.listdir(os.path.join(REPO, "launch"))
    if f.endswith(".py")
    and "app.run(main)" in open(os.path.join(REPO, "launch", f)).read())

# Imports launcher NAME (as `python -m launch.NAME` does, without running main);
# prints TF_CPU_ALLOCATOR_USE_BFC as it was when TensorFlow was first imported
# ("<unset>" if it was not), and whether the launcher's import brought TF in.
_AT_TF_IMPORT = """
import importlib, importlib.abc, os, sys
seen = []
class Watch(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name == "tensorflow" and not seen:
      seen.append(os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "<unset>"))
    return None
assert "tensorflow" not in sys.modules
sys.meta_path.insert(0, Watch())
importlib.import_module("launch." + sys.argv[1])
by_import = bool(seen)
import tensorflow
print(seen[0], by_import)
"""

# What a launched process runs with: `launch` imported first, then TensorFlow;
# one op, then the allocator TensorFlow really uses (launch.benchmark's probe)
# and whether oneDNN's ops are on in this process (TF_ENABLE_ONEDNN_OPTS and
# the CPU decide it; oneDNN brings its own host allocator when BFC is off).
_IN_EFFECT = """
import launch
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
from launch.benchmark import host_allocator
tf.reduce_sum(tf.fill([1024, 1024], 1.0)).numpy()
print(host_allocator(), _pywrap_util_port.IsMklEnabled())
"""


def _run(code, *args, **env):
  full = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
  full.update(env, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=full,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout.strip().splitlines()[-1]


def test_bfc_allocator_by_default_and_the_environment_wins():
  code = "import os, launch; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"
  assert _run(code) == "true"
  assert _run(code, TF_CPU_ALLOCATOR_USE_BFC="false") == "false"


def test_every_launcher_sets_the_allocator_before_tensorflow_starts():
  assert len(LAUNCHERS) >= 6, LAUNCHERS  # benchmark convert eval export sample train
  for name in LAUNCHERS:
    value, _ = _run(_AT_TF_IMPORT, name).split()
    assert value == "true", (name, value)
  # The check sees a TF import where one happens at the launcher's import.
  assert _run(_AT_TF_IMPORT, "train").split()[1] == "True"


def test_bfc_allocator_is_the_one_in_effect_in_a_launched_process():
  # The page faults it saves per step (the reason for the default) are a
  # benchmark figure (launch.benchmark's minor_page_faults_per_step), not a
  # test: how often the default allocator faults depends on the host's kernel.
  # Run with TF_ENABLE_ONEDNN_OPTS=0 as well as without: without BFC the
  # allocator is oneDNN's where oneDNN is on, TensorFlow's plain one elsewhere.
  assert _run(_IN_EFFECT).split()[0] == "bfc"
  allocator, onednn = _run(_IN_EFFECT, TF_CPU_ALLOCATOR_USE_BFC="false").split()
  assert allocator == ("onednn" if onednn == "True" else "default")
