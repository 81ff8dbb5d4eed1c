"""``--strategy=multiworker`` end to end: two ``launch.train`` worker processes on
localhost (MultiWorkerMirroredStrategy over TF_CONFIG, one CPU replica each) train
the tiny preset for 3 steps into one shared workdir, and end with identical weights;
then train on until SIGTERM reaches one worker (TensorFlow's
PreemptionCheckpointHandler: both save the same step and exit with code 42), resume
(every worker from the chief's checkpoints), and refuse to start when the workers'
restored steps differ.

Each worker runs ``tests/multiworker_worker.py`` (``launch.train`` plus records of
its initial checkpoint and of its input pipeline), with no GPU and a time limit.
"""
import json
import re
import shutil
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 480  # a safety net for hangs; a loaded 2-core machine needs ~4 min
STEPS = 3
TINY = config_lib.from_preset("tiny")
PREEMPTED = 42  # launch.train's exit code after a signal-triggered save


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  try:
    for s in socks:
      s.bind(("localhost", 0))
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


def _launch_workers(workdirs, record_dir, steps=STEPS, sigterm=None):
  """Starts worker i on workdirs[i] and waits for both; returns [(exit, output)].

  ``sigterm=(i, text)``: send SIGTERM to worker i once worker 0's output holds
  ``text``. A worker still running TIMEOUT_S after the start, or 20 s after its
  peer failed, is killed (exit code -9) rather than left waiting for the peer.
  """
  ports = _free_ports(2)
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  procs = []
  for index in range(2):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               SAGAN_MW_RECORD=record_dir, TF_CONFIG=json.dumps(
                   {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    log = open(os.path.join(record_dir, f"log_{index}.txt"), "w+")
    procs.append((subprocess.Popen(
        [sys.executable, "-m", "tests.multiworker_worker", "--preset=tiny",
         "--strategy=multiworker", f"--workdir={workdirs[index]}",
         f"--steps={steps}", "--deterministic"], cwd=REPO, env=env, stdout=log,
        stderr=subprocess.STDOUT), log))
  deadline = time.monotonic() + TIMEOUT_S
  failed_at = None
  while any(p.poll() is None for p, _ in procs):
    if sigterm is not None:
      with open(os.path.join(record_dir, "log_0.txt")) as f:
        if sigterm[1] in f.read():
          procs[sigterm[0]][0].send_signal(signal.SIGTERM)
          sigterm = None
    now = time.monotonic()
    if failed_at is None and any(p.poll() not in (None, 0, PREEMPTED)
                                 for p, _ in procs):
      failed_at = now
    if now > deadline or (failed_at is not None and now > failed_at + 20):
      for p, _ in procs:
        if p.poll() is None:
          p.kill()
          p.wait()
      break
    time.sleep(0.5)
  results = []
  for proc, log in procs:
    log.seek(0)
    results.append((proc.returncode, log.read()))
    log.close()
  return results


def _launch(tmp_path_factory, name, make_workdirs, steps=STEPS, sigterm=None):
  """_launch_workers in fresh directories, once more if a port was taken between
  _free_ports and the gRPC server start. Returns (workdirs, record_dir, results)."""
  for _ in range(2):
    workdirs = make_workdirs()
    record_dir = str(tmp_path_factory.mktemp(name + "_record"))
    results = _launch_workers(workdirs, record_dir, steps, sigterm)
    if all(rc in (0, PREEMPTED) for rc, _ in results) or not any(
        "ddress already in use" in out for _, out in results):
      break
  return workdirs, record_dir, results


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  def shared():
    workdir = str(tmp_path_factory.mktemp("mw_workdir"))
    return [workdir, workdir]
  workdirs, record_dir, results = _launch(tmp_path_factory, "mw", shared)
  return dict(workdir=workdirs[0], record_dir=record_dir, results=results)


def _outputs(run_or_results):
  results = (run_or_results["results"] if isinstance(run_or_results, dict)
             else run_or_results)
  return "\n".join(f"--- worker {i} (exit {rc}) ---\n{out[-6000:]}"
                   for i, (rc, out) in enumerate(results))


def _checkpoint(path):
  reader = tf.train.load_checkpoint(path)
  return {k: reader.get_tensor(k) for k, _ in tf.train.list_variables(path)
          if k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
          and not k.startswith("save_counter/")}


def test_both_workers_finish_and_save(run):
  assert [rc for rc, _ in run["results"]] == [0, 0], _outputs(run)
  workdir = run["workdir"]
  for i, (_, out) in enumerate(run["results"]):
    assert "MultiWorkerMirroredStrategy" in out or "CollectiveAllReduce" in out, (
        _outputs(run))
    assert "with 2 replica(s)" in out, _outputs(run)
    assert f"step {STEPS}/{STEPS}" in out and f"Done at step {STEPS}" in out, (
        _outputs(run))
  # Chief (worker 0) owns the run's files; worker 1 saves into a private copy.
  assert os.path.exists(os.path.join(workdir, "checkpoints", f"ckpt-{STEPS}.index"))
  assert os.path.exists(os.path.join(workdir, "tmp_worker_1", "checkpoints",
                                     f"ckpt-{STEPS}.index"))
  assert not os.path.exists(os.path.join(workdir, "tmp_worker_0"))
  assert os.path.exists(os.path.join(workdir, "config.json"))
  assert os.listdir(os.path.join(workdir, "samples")) == [f"step_{STEPS:07d}.png"]
  events = [f for f in os.listdir(workdir) if f.startswith("events.out.tfevents")]
  assert len(events) == 1, events  # only the chief writes TensorBoard logs


def test_workers_start_alike_and_end_with_identical_weights(run):
  assert [rc for rc, _ in run["results"]] == [0, 0], _outputs(run)
  workdir, record_dir = run["workdir"], run["record_dir"]
  chief = ckpt_lib.variables_of(workdir)
  worker = ckpt_lib.variables_of(os.path.join(workdir, "tmp_worker_1"))
  assert sorted(chief) == sorted(worker)
  assert any(k.startswith(("generator/", "discriminator/")) for k in chief)
  assert any(k.startswith(("g_optimizer/", "d_optimizer/")) for k in chief)
  for key in chief:
    np.testing.assert_array_equal(chief[key], worker[key], err_msg=key)
  assert chief["step/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS

  init = [_checkpoint(os.path.join(record_dir, f"worker_{i}_init"))
          for i in range(2)]
  assert sorted(init[0]) == sorted(chief)
  for key in init[0]:
    np.testing.assert_array_equal(init[0][key], init[1][key], err_msg=key)
  assert init[0]["step/.ATTRIBUTES/VARIABLE_VALUE"] == 0
  # Training happened: every trainable variable of G and D (saved once, under the
  # optimizers' paths) moved away from its initial value.
  trainable = [k for k in chief if "_optimizer/_trainable_variables/" in k]
  assert len(trainable) > 20
  unchanged = [k for k in trainable if np.array_equal(chief[k], init[0][k])]
  assert not unchanged, unchanged

def test_global_batch_is_split_and_data_sharded_per_worker(run):
  assert [rc for rc, _ in run["results"]] == [0, 0], _outputs(run)
  records = []
  for i in range(2):
    with open(os.path.join(run["record_dir"], f"worker_{i}.json")) as f:
      records.append(json.load(f))
  # One pipeline per worker, feeding its one replica global_batch / 2 examples.
  assert [len(r) for r in records] == [1, 1], records
  first = [r[0] for r in records]
  size = TINY.image_size
  for i, p in enumerate(first):
    assert p["batch_size"] == TINY.batch_size // 2, p
    assert p["image_shape"] == [TINY.batch_size // 2, size, size, 3], p
    assert p["num_input_pipelines"] == 2 and p["num_replicas_in_sync"] == 2, p
    assert p["input_pipeline_id"] == i, p
  # Different shards: the two workers' first batches hold different images.
  assert first[0]["images_sha1"] != first[1]["images_sha1"], first


def _copy_workdir(run, tmp_path_factory, name):
  copy = os.path.join(str(tmp_path_factory.mktemp(name)), "workdir")
  shutil.copytree(run["workdir"], copy)
  return copy


@pytest.fixture(scope="module")
def preempted(run, tmp_path_factory):
  """The finished run trained on towards step 1000; SIGTERM to worker 1 (not the
  chief) once worker 0 has logged step 5."""
  assert [rc for rc, _ in run["results"]] == [0, 0], _outputs(run)

  def copied():
    workdir = _copy_workdir(run, tmp_path_factory, "mw_preempt")
    return [workdir, workdir]
  workdirs, _, results = _launch(tmp_path_factory, "mw_preempt", copied,
                                 steps=1000, sigterm=(1, "step 5/1000"))
  return dict(workdir=workdirs[0], results=results)


def test_sigterm_to_one_worker_saves_the_same_step_on_all(preempted):
  results, workdir = preempted["results"], preempted["workdir"]
  assert [rc for rc, _ in results] == [PREEMPTED, PREEMPTED], _outputs(results)
  steps = []
  for _, out in results:
    m = re.search(r"Preempted \(all workers saved\) at step (\d+)", out)
    assert m, _outputs(results)
    steps.append(int(m.group(1)))
  assert steps[0] == steps[1] and 5 <= steps[0] < 1000, steps
  step = steps[0]
  chief = ckpt_lib.variables_of(workdir)
  worker = ckpt_lib.variables_of(os.path.join(workdir, "tmp_worker_1"))
  assert chief["step/.ATTRIBUTES/VARIABLE_VALUE"] == step
  for key in chief:
    np.testing.assert_array_equal(chief[key], worker[key], err_msg=key)
  assert not os.path.exists(os.path.join(workdir, "lock.json"))  # released


def test_worker_resumes_from_the_chief_checkpoints(preempted, tmp_path_factory):
  # Rerun both workers after the preemption. Worker 1's private copy is gone
  # (e.g. a new machine): it must resume from the chief's WORKDIR/checkpoints like
  # worker 0, not start a new run.
  assert [rc for rc, _ in preempted["results"]] == [PREEMPTED, PREEMPTED], (
      _outputs(preempted["results"]))
  step = int(ckpt_lib.variables_of(preempted["workdir"])[
      "step/.ATTRIBUTES/VARIABLE_VALUE"])

  def without_private_copy():
    workdir = os.path.join(str(tmp_path_factory.mktemp("mw_resume")), "workdir")
    shutil.copytree(preempted["workdir"], workdir)
    shutil.rmtree(os.path.join(workdir, "tmp_worker_1"))
    return [workdir, workdir]
  workdirs, _, results = _launch(tmp_path_factory, "mw_resume",
                                 without_private_copy, steps=step + 1)
  assert [rc for rc, _ in results] == [0, 0], _outputs(results)
  ckpt = os.path.join(workdirs[0], "checkpoints", f"ckpt-{step}")
  for _, out in results:
    assert f"Resumed from {ckpt} (step {step})" in out, _outputs(results)
    assert f"Done at step {step + 1}" in out, _outputs(results)


def test_workers_at_different_steps_stop_with_an_error(run, tmp_path_factory):
  # Unshared workdirs: worker 0 finds a checkpoint at step 3, worker 1 none. Both
  # must stop at start-up with a clear error instead of training mixed states.
  assert [rc for rc, _ in run["results"]] == [0, 0], _outputs(run)

  def unshared():
    return [_copy_workdir(run, tmp_path_factory, "mw_unshared"),
            str(tmp_path_factory.mktemp("mw_unshared_empty"))]
  _, _, results = _launch(tmp_path_factory, "mw_unshared", unshared)
  for rc, out in results:
    assert rc not in (0, -9), _outputs(results)  # failed, was not killed
    assert "workers restored different steps" in out, _outputs(results)
