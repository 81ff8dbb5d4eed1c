"""Command-line launchers (absl flags); the logic lives in sagan_tf.

Importing this package, which ``python -m launch.<name>`` does before the
launcher's own imports, sets the process defaults that must be in place before
TensorFlow starts (``PROCESS_ENV``); a value already in the environment wins.

* ``TF_CPU_ALLOCATOR_USE_BFC=true``: TensorFlow's BFC allocator for host memory,
  which keeps freed buffers for reuse. The default allocator hands large buffers
  back to the OS, so every step faults its activations and gradients in again:
  on the 2-core development CPU, the ``imagenet128`` batch-4 train step took about
  300k minor page faults and 0.8 s of system time per step with XLA (1M and 3 s
  without), and about 2k and 0.02 s with BFC (docs/speed.md has the step times).
  Library users who do not start through a launcher set it themselves, before
  TensorFlow is imported.
"""
import os

PROCESS_ENV = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}

for _name, _value in PROCESS_ENV.items():
  os.environ.setdefault(_name, _value)
