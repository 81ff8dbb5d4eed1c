"""launch/__init__.py: the process defaults every launcher starts with."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Allocates and frees a 64 MiB tensor 20 times; prints the minor page faults of
# the last 10 (after the allocator has seen the size).
_FAULTS = """
import resource, sys
import launch
import tensorflow as tf
f = tf.function(lambda s: tf.reduce_sum(tf.fill([16, 1024, 1024], s)))
for i in range(20):
  if i == 10:
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(tf.constant(float(i))).numpy()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _run(code, **env):
  full = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
  full.update(env, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout.strip().splitlines()[-1]


def test_bfc_allocator_by_default_and_the_environment_wins():
  code = "import os, launch; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"
  assert _run(code) == "true"
  assert _run(code, TF_CPU_ALLOCATOR_USE_BFC="false") == "false"


def test_bfc_allocator_stops_the_per_step_page_faults():
  # The reason for the default: TensorFlow's default host allocator returns
  # large buffers to the OS, so each step faults them in again (64 MiB: 16k
  # pages of 4 KiB per call); BFC keeps them.
  default = int(_run(_FAULTS, TF_CPU_ALLOCATOR_USE_BFC="false"))
  bfc = int(_run(_FAULTS))
  assert default > 10 * 8000, default
  assert bfc < 10 * 1000, bfc
