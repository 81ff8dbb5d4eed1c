"""sagan_tf.run.lock: refusal naming the holder, stale-lock takeover (dead pid
on this host, old heartbeat elsewhere), the override, the heartbeat, and the same
through tf.io.gfile (``ram://``, standing in for gs://)."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from sagan_tf.run import lock as workdir_lock


def _write(workdir, **fields):
  now = time.time()
  record = dict(host=socket.gethostname(), pid=os.getpid(), started=now - 100,
                heartbeat=now, token="other")
  record.update(fields)
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(os.path.join(workdir, workdir_lock.LOCK_FILE), "w") as f:
    f.write(json.dumps(record))


def _holder(workdir):
  with tf.io.gfile.GFile(os.path.join(workdir, workdir_lock.LOCK_FILE)) as f:
    return json.loads(f.read())


@pytest.fixture
def live_pid():
  proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  yield proc.pid
  proc.kill()
  proc.wait()


def _dead_pid():
  proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  return int(proc.stdout)


def test_acquire_writes_holder_and_release_removes_it(tmp_path):
  lock = workdir_lock.WorkdirLock(str(tmp_path / "w"))
  lock.acquire()
  held = _holder(str(tmp_path / "w"))
  assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
  assert held["token"] == lock.token and abs(held["heartbeat"] - time.time()) < 60
  lock.release()
  assert not os.path.exists(tmp_path / "w" / workdir_lock.LOCK_FILE)


def test_live_holder_on_this_host_is_refused_by_name(tmp_path, live_pid):
  workdir = str(tmp_path)
  _write(workdir, pid=live_pid)
  with pytest.raises(workdir_lock.WorkdirLockedError) as e:
    workdir_lock.WorkdirLock(workdir).acquire()
  msg = str(e.value)
  assert repr(workdir) in msg and f"pid {live_pid}" in msg, msg
  assert f"host {socket.gethostname()}" in msg and "--take_over_lock" in msg, msg
  assert _holder(workdir)["pid"] == live_pid  # untouched


def test_dead_pid_on_this_host_is_stale(tmp_path):
  workdir = str(tmp_path)
  _write(workdir, pid=_dead_pid())
  lock = workdir_lock.WorkdirLock(workdir)
  lock.acquire()
  assert _holder(workdir)["token"] == lock.token
  lock.release()


def test_other_host_is_judged_by_its_heartbeat(tmp_path):
  workdir = str(tmp_path)
  _write(workdir, host="elsewhere", pid=1, heartbeat=time.time() - 30)
  with pytest.raises(workdir_lock.WorkdirLockedError, match="host elsewhere"):
    workdir_lock.WorkdirLock(workdir, stale_after_s=600).acquire()
  _write(workdir, host="elsewhere", pid=1, heartbeat=time.time() - 700)
  lock = workdir_lock.WorkdirLock(workdir, stale_after_s=600)
  lock.acquire()
  assert _holder(workdir)["token"] == lock.token
  lock.release()


def test_take_over_overrides_a_live_holder(tmp_path, live_pid):
  workdir = str(tmp_path)
  _write(workdir, pid=live_pid)
  lock = workdir_lock.WorkdirLock(workdir, take_over=True)
  lock.acquire()
  assert _holder(workdir)["token"] == lock.token
  lock.release()


def test_heartbeat_is_refreshed(tmp_path):
  lock = workdir_lock.WorkdirLock(str(tmp_path), heartbeat_s=0.05)
  lock.acquire()
  first = _holder(str(tmp_path))["heartbeat"]
  deadline = time.time() + 20
  while _holder(str(tmp_path))["heartbeat"] == first and time.time() < deadline:
    time.sleep(0.05)
  assert _holder(str(tmp_path))["heartbeat"] > first
  assert _holder(str(tmp_path))["started"] == pytest.approx(lock._started)  # pylint: disable=protected-access
  lock.release()


def test_gfile_workdir(live_pid):
  workdir = f"ram://lock_test_{os.getpid()}/w"
  lock = workdir_lock.WorkdirLock(workdir, settle_s=0.01)
  lock.acquire()
  assert _holder(workdir)["token"] == lock.token
  with pytest.raises(workdir_lock.WorkdirLockedError, match=f"pid {os.getpid()}"):
    workdir_lock.WorkdirLock(workdir, settle_s=0.01).acquire()
  lock.release()
  assert not tf.io.gfile.exists(os.path.join(workdir, workdir_lock.LOCK_FILE))
  _write(workdir, pid=live_pid, heartbeat=time.time() - 700)
  stale = workdir_lock.WorkdirLock(workdir, settle_s=0.01, stale_after_s=600)
  stale.acquire()
  stale.release()
