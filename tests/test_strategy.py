"""Strategy construction: default and mirrored (over the 2 logical CPUs of
conftest) for real; multi-worker and TPU as WIRING tests only (``*_wiring_*``):
the strategy classes and the TPU cluster calls are mocks, so these check which
calls make_strategy makes, in what order, not that a cluster works. The real
multi-worker run (two worker processes training over gRPC) is
tests/test_multiworker.py; there is no TPU run here (no TPU on this machine)."""
from unittest import mock

import pytest
import tensorflow as tf

from sagan_tf import strategy as strategy_lib


def test_default_strategy():
  s = strategy_lib.make_strategy("default")
  assert s.num_replicas_in_sync == 1
  assert strategy_lib.is_chief(s)
  assert strategy_lib.replica_batch_size(s, 6) == 6
  assert strategy_lib.describe(s).startswith("_DefaultDistributionStrategy with 1")


def test_mirrored_over_existing_logical_cpus():
  # conftest already split the CPU in two and TF has initialised its devices.
  s = strategy_lib.make_strategy("mirrored", cpu_replicas=2)
  assert s.num_replicas_in_sync == 2
  assert strategy_lib.replica_batch_size(s, 8) == 4
  with pytest.raises(ValueError, match="not divisible by the 2 replicas"):
    strategy_lib.replica_batch_size(s, 5)
  assert "MirroredStrategy with 2 replica(s)" in strategy_lib.describe(s)


def test_too_many_cpu_replicas_after_initialisation():
  tf.constant(1.0)  # make sure devices are initialised
  with pytest.raises(RuntimeError, match="already initialised"):
    strategy_lib.make_strategy("mirrored", cpu_replicas=3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="nccl"), "Unknown strategy"),
    (dict(name="default", cpu_replicas=2), "needs strategy 'mirrored'"),
    (dict(name="mirrored", tpu="my-tpu"), "needs strategy 'tpu'"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    strategy_lib.make_strategy(**kwargs)


def test_multiworker_wiring_needs_tf_config(monkeypatch):
  # Wiring only: MultiWorkerMirroredStrategy is a mock (real run: test_multiworker).
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="TF_CONFIG"):
    strategy_lib.make_strategy("multiworker")
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, '
                                  '"task": {"type": "worker", "index": 0}}')
  with mock.patch.object(tf.distribute, "MultiWorkerMirroredStrategy") as mwms:
    assert strategy_lib.make_strategy("multiworker") is mwms.return_value


def test_tpu_wiring_resolves_connects_initialises():
  # Wiring only: resolver, connect, initialise and TPUStrategy are all mocks.
  calls = []
  resolver = object()
  with mock.patch.object(tf.distribute.cluster_resolver, "TPUClusterResolver",
                         side_effect=lambda tpu: calls.append(("resolve", tpu))
                         or resolver), \
       mock.patch.object(tf.config, "experimental_connect_to_cluster",
                         side_effect=lambda r: calls.append(("connect", r))), \
       mock.patch.object(tf.tpu.experimental, "initialize_tpu_system",
                         side_effect=lambda r: calls.append(("init", r))), \
       mock.patch.object(tf.distribute, "TPUStrategy",
                         side_effect=lambda r: calls.append(("strategy", r))
                         or "tpu-strategy"):
    s = strategy_lib.make_strategy("tpu", tpu="my-tpu")
  assert s == "tpu-strategy"
  assert calls == [("resolve", "my-tpu"), ("connect", resolver),
                   ("init", resolver), ("strategy", resolver)]

