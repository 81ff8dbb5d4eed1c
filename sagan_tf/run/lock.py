"""One trainer per workdir: a lock file that works on local disks and through
``tf.io.gfile`` (NFS, ``gs://``).

    lock = WorkdirLock(workdir)
    lock.acquire()     # raises WorkdirLockedError naming the workdir and the holder
    ...                # a daemon thread refreshes the heartbeat
    lock.release()     # also run at interpreter exit

``WORKDIR/lock.json`` holds the holder's host, pid, start time, a random token and
a heartbeat time (seconds since the epoch) that a daemon thread rewrites every
``heartbeat_s`` seconds. A lock is *stale*, and is taken over with a warning, when

* it was written on this host and its pid no longer exists (kill -9, OOM), or
* its heartbeat is older than ``stale_after_s`` (a holder on another host that
  died, or a host that is gone), or
* it cannot be parsed and the file itself is older than ``stale_after_s``.

``take_over=True`` (``launch.train --take_over_lock``) ignores a live lock; so
does deleting ``WORKDIR/lock.json``. Creating the lock is atomic on local and NFS
paths (``O_EXCL``); through ``tf.io.gfile`` (object stores) it is write, wait
``settle_s``, read back and compare tokens, which catches all but two starts
within the same ``settle_s`` seconds.

Multi-worker: only the chief takes the lock (the trainer's choice); the other
workers of the same run never look at it.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from typing import Optional, Tuple

from absl import logging
import tensorflow as tf

from sagan_tf.run import workdir as workdir_lib

LOCK_FILE = workdir_lib.LOCK_FILE
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0


class WorkdirLockedError(RuntimeError):
  """Another live trainer holds the workdir."""


@dataclasses.dataclass
class Holder:
  host: str
  pid: int
  started: float  # seconds since the epoch
  heartbeat: float  # seconds since the epoch
  token: str

  def describe(self, now: float) -> str:
    return (f"host {self.host}, pid {self.pid}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(self.started))},"
            f" heartbeat {now - self.heartbeat:.0f} s ago")


def _is_local(path: str) -> bool:
  return "://" not in path


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


class WorkdirLock:
  """The lock of one workdir (see module doc).

  Args:
    workdir: run directory (local path or any ``tf.io.gfile`` URL).
    heartbeat_s: seconds between heartbeat rewrites.
    stale_after_s: a heartbeat older than this marks the lock stale.
    take_over: take the lock even if its holder looks alive.
    settle_s: wait between writing and reading back on non-local paths.
  """

  def __init__(self, workdir: str, heartbeat_s: float = HEARTBEAT_S,
               stale_after_s: float = STALE_AFTER_S, take_over: bool = False,
               settle_s: float = 2.0):
    self.workdir = workdir
    self.path = workdir_lib.lock_path(workdir)
    self.heartbeat_s = heartbeat_s
    self.stale_after_s = stale_after_s
    self.take_over = take_over
    self.settle_s = settle_s
    self.token = uuid.uuid4().hex
    self.held = False
    self._stop = threading.Event()
    self._thread = None

  # -- reading ---------------------------------------------------------------

  def read(self) -> Tuple[Optional[Holder], Optional[str]]:
    """(holder, None), or (None, problem) if the file is unreadable, or
    (None, None) if there is no lock file."""
    try:
      with tf.io.gfile.GFile(self.path) as f:
        raw = json.loads(f.read())
      return Holder(**{f.name: raw[f.name] for f in dataclasses.fields(Holder)}), None
    except tf.errors.NotFoundError:
      return None, None
    except (ValueError, KeyError, TypeError) as e:
      return None, f"unreadable lock file ({e})"

  def stale_reason(self, holder: Optional[Holder], problem: Optional[str],
                   now: float) -> Optional[str]:
    """Why the lock on disk may be taken over, or None if its holder is alive."""
    if holder is None:
      try:
        age = now - tf.io.gfile.stat(self.path).mtime_nsec / 1e9
      except tf.errors.NotFoundError:
        return "gone"
      return (f"{problem}, {age:.0f} s old" if age > self.stale_after_s else None)
    if holder.host == socket.gethostname() and not _pid_alive(holder.pid):
      return f"process {holder.pid} on this host is gone"
    if now - holder.heartbeat > self.stale_after_s:
      return (f"heartbeat {now - holder.heartbeat:.0f} s old (stale after "
              f"{self.stale_after_s:.0f} s)")
    return None

  # -- writing ---------------------------------------------------------------

  def _record(self, started: float) -> str:
    return json.dumps(dict(host=socket.gethostname(), pid=os.getpid(),
                           started=started, heartbeat=time.time(),
                           token=self.token))

  def _create(self) -> bool:
    """Creates the lock file if there is none; True if this lock now holds it."""
    self._started = time.time()
    text = self._record(self._started)
    if _is_local(self.path):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        return False
      with os.fdopen(fd, "w") as f:
        f.write(text)
      return True
    if tf.io.gfile.exists(self.path):
      return False
    with tf.io.gfile.GFile(self.path, "w") as f:
      f.write(text)
    time.sleep(self.settle_s)  # let a concurrent writer finish, then compare
    holder, _ = self.read()
    return holder is not None and holder.token == self.token

  def acquire(self) -> None:
    """Takes the lock, taking over a stale one; raises WorkdirLockedError."""
    tf.io.gfile.makedirs(self.workdir)
    for _ in range(3):
      if self._create():
        self.held = True
        atexit.register(self.release)
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name="workdir-lock-heartbeat")
        self._thread.start()
        return
      holder, problem = self.read()
      now = time.time()
      reason = self.stale_reason(holder, problem, now)
      if reason is None and not self.take_over:
        who = holder.describe(now) if holder else problem
        raise WorkdirLockedError(
            f"{self.workdir!r} is in use by another trainer ({who}; lock file "
            f"{self.path}). Stop that trainer first; if it is dead, rerun with "
            f"--take_over_lock (or delete {self.path}).")
      logging.warning("Taking over the lock of %s from %s: %s.", self.workdir,
                      holder.describe(now) if holder else "an unknown holder",
                      reason or "--take_over_lock")
      try:
        tf.io.gfile.remove(self.path)
      except tf.errors.NotFoundError:
        pass
    raise WorkdirLockedError(
        f"Could not take the lock {self.path}: other trainers keep creating it.")

  def _beat(self):
    while not self._stop.wait(self.heartbeat_s):
      try:
        holder, _ = self.read()
        if holder is None or holder.token != self.token:
          logging.error("The lock %s was taken over by %s; this trainer no "
                        "longer holds %s.", self.path,
                        holder.describe(time.time()) if holder else "nobody",
                        self.workdir)
          return
        tmp = f"{self.path}.{self.token}.tmp"
        with tf.io.gfile.GFile(tmp, "w") as f:
          f.write(self._record(holder.started))
        tf.io.gfile.rename(tmp, self.path, overwrite=True)
      except (tf.errors.OpError, OSError) as e:  # keep trying: shares hiccup
        logging.warning("Could not refresh the lock %s: %s", self.path, e)

  def release(self) -> None:
    """Stops the heartbeat and deletes the lock file if this lock holds it."""
    if not self.held:
      return
    self.held = False
    self._stop.set()
    if self._thread is not None and self._thread is not threading.current_thread():
      self._thread.join(timeout=10)
    holder, _ = self.read()
    if holder is not None and holder.token == self.token:
      try:
        tf.io.gfile.remove(self.path)
      except tf.errors.NotFoundError:
        pass
    atexit.unregister(self.release)
