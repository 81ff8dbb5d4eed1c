"""Shared test setup: two logical CPU devices, quiet TF, and the shared fixtures."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# MirroredStrategy tests need two logical CPUs; this must run before TF
# initialises its devices, so it lives here rather than in a test.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SAGAN_SHARED_DIR", os.path.join(REPO, "..", "shared"))
FIXTURES = os.path.join(SHARED, "fixtures")


@pytest.fixture
def fixtures_dir():
  """Path of ../shared/fixtures; skips (with the reason) only where it is absent."""
  if not os.path.isdir(FIXTURES):
    pytest.skip(f"shared fixtures not found at {FIXTURES} (set SAGAN_SHARED_DIR)")
  return FIXTURES


@pytest.fixture(autouse=True)
def _restore_op_determinism():
  """A deterministic run (``state.set_process_switches``) turns TF op determinism
  on for the whole process (right for a training job); turn it off after each test
  (module fixtures may have turned it on before this one starts) so later tests
  (XLA, collectives) see TensorFlow's default."""
  yield
  from sagan_tf import tf_compat  # pylint: disable=g-import-not-at-top
  if tf_compat.op_determinism_enabled():
    tf_compat.disable_op_determinism()


@pytest.fixture(autouse=True)
def _fresh_collective_keys():
  """Two MirroredStrategies in one process (several tests) must not share
  collective keys (see ``tf_compat.fresh_collective_keys``)."""
  from sagan_tf import tf_compat  # pylint: disable=g-import-not-at-top
  tf_compat.fresh_collective_keys()
  yield
