"""Training loop: the steps, checkpoint saves, logging, sample grids, signals.

    state.set_process_switches(config, deterministic)   # the launcher's job
    trainer = Trainer(config, workdir, strategy)   # builds, restores if possible
    result = trainer.run()                          # to config.train_steps
    # or: train(config, workdir, strategy, on_log=...)

The run's state (what a checkpoint holds) is ``sagan_tf.run.state.RunState``; paths and
resume checks (same model shape in config.json, checkpoint variables that match
the models) are ``sagan_tf.run.workdir``'s. The trainer rewrites ``config.json`` at
each start, saves checkpoints, writes TensorBoard scalars and sample grids.

Checkpoints are written every ``config.checkpoint_every`` steps, at the end, and
when SIGTERM or SIGINT arrives (the current step finishes, a checkpoint is written
and ``run`` returns with ``stopped=True``; a second signal acts as usual). Under
``MultiWorkerMirroredStrategy`` TensorFlow's ``PreemptionCheckpointHandler`` does
this instead: SIGTERM to any worker makes all workers agree on a step, save it and
return with ``preempted=True`` (a hand-written handler would save on one worker
only and leave the others failing with ``UnavailableError``). On TPU one Python
process drives every core, so the local handler is already coordinated (TF's
handler supports only Google-internal TPUs: on Cloud TPU VMs it does nothing).

Damage control (``sagan_tf.run.safe_checkpoints``): a resume uses the newest readable,
finite checkpoint and sets newer damaged ones aside; no save writes NaN/inf
(``NonFiniteWeightsError``); a failed write raises ``CheckpointWriteError`` naming
the intact previous checkpoint. One trainer per workdir: the chief holds
``sagan_tf.run.lock`` until ``close`` (a second trainer gets
``WorkdirLockedError`` naming the holder).

Resume: the data position is not checkpointed: the input pipeline is rebuilt with
``skip_batches = step * d_steps`` (one real batch per D step), which with a seeded
pipeline yields the batches the uninterrupted run would have seen, under every
strategy (a checkpointed iterator does not work on TPU). The noise is a function of
the step (``sagan_tf.training.step``). With op determinism (``set_process_switches``)
a run stopped at step k and resumed to n ends bit-identical to one run to n.
The learning rates are the config's, not the checkpoint's
(``state.set_learning_rates``), so ``--set=g_lr=...`` on a resume takes effect.

Multi-worker (``MultiWorkerMirroredStrategy``): WORKDIR must be one shared directory.
Only the chief writes config.json, summaries and PNGs; every worker must take part
in saving, so the others write their copies to ``WORKDIR/tmp_<task>_<id>/``. Every
worker restores the chief's latest checkpoint, and all stop with an error if they
restored different steps.

Deliberate deviations from the official code: training state lives in one TF2
checkpoint (official: TF1 ``MonitoredTrainingSession`` checkpoints every 10 min,
and resuming restarted the input pipeline from a fresh shuffle).
"""
from __future__ import annotations

import dataclasses
import shutil
import signal
import tempfile
import threading
import time
from typing import Callable, Dict, Optional

import tensorflow as tf

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import safe_checkpoints as safe
from sagan_tf.run import state as state_lib
from sagan_tf import strategy as strategy_lib
from sagan_tf.training import cond_transition
from sagan_tf.training import summaries
from sagan_tf.training import step as step_lib
from sagan_tf.run import workdir as workdir_lib
from sagan_tf.run import lock as workdir_lock
from sagan_tf.config import Config
from sagan_tf.data import pipeline as data


def default_dataset_fn(strategy, config: Config, skip_batches: int):
  """The input pipeline of ``sagan_tf.data.pipeline`` (distributed, seeded, skippable)."""
  return data.distributed_dataset(strategy, config, skip_batches=skip_batches)


# The errors of a resume or a save, importable from here too.
UnreadableCheckpointsError = safe.UnreadableCheckpointsError
NonFiniteWeightsError = safe.NonFiniteWeightsError
CheckpointWriteError = safe.CheckpointWriteError


class _Preempted(Exception):
  """Raised by the PreemptionCheckpointHandler's exit_fn after its save."""


@dataclasses.dataclass
class TrainResult:
  step: int  # global step reached
  stopped: bool  # True if a signal or request_stop() ended the run early
  checkpoint: Optional[str]  # the last checkpoint written or restored
  metrics: Dict[str, float]  # last logged metrics (empty if none logged)
  sample_png: Optional[str]  # the last sample grid written
  preempted: bool = False  # multi-worker: stopped by the coordinated handler


class Trainer:
  """Builds (or restores) a run in ``workdir`` and trains it.

  Args:
    config: the run's Config.
    workdir: run directory (created if missing).
    strategy: a ``tf.distribute`` strategy (default: the default strategy).
    dataset_fn: ``(strategy, config, skip_batches) -> distributed dataset`` of
      (images, labels) per-replica batches; default ``sagan_tf.data.pipeline``.
    on_log: called with a ``summaries.Progress`` at every log step.
    on_eval: ``(step, generator) -> result`` called every ``config.eval_every``
      steps and at the end (when eval_every > 0) with the generator samples come
      from (the EMA one if kept); see ``eval.train_eval``.
    take_over_lock: take the workdir lock even if its holder looks alive.
    lock_heartbeat_s: seconds between lock heartbeats (``workdir_lock``).

  Raises:
    workdir_lock.WorkdirLockedError: another trainer holds the workdir.
    UnreadableCheckpointsError: checkpoint files, none readable.
  """

  def __init__(self, config: Config, workdir: str, strategy=None, *,
               dataset_fn: Callable = default_dataset_fn,
               on_log: Optional[Callable[[summaries.Progress], None]] = None,
               on_eval: Optional[Callable] = None,
               take_over_lock: bool = False,
               lock_heartbeat_s: float = workdir_lock.HEARTBEAT_S):
    self.config = config.validate()
    self.on_eval = on_eval
    self.last_eval = None
    self.workdir = workdir
    self.strategy = strategy or tf.distribute.get_strategy()
    self.on_log = on_log
    self.chief = strategy_lib.is_chief(self.strategy)
    strategy_lib.replica_batch_size(self.strategy, config.batch_size)
    self._lock = None
    self._preemption = None
    self._preemption_dir = None
    if self.chief:  # the other workers of a multi-worker run share its lock
      self._lock = workdir_lock.WorkdirLock(
          workdir, heartbeat_s=lock_heartbeat_s, take_over=take_over_lock)
      self._lock.acquire()
    try:
      self._build(dataset_fn)
    except BaseException:
      self._release()
      raise

  def _build(self, dataset_fn):
    config, workdir = self.config, self.workdir
    ckpt_lib.check_resumable(workdir, config)
    self.state = state = state_lib.RunState.create(config, self.strategy)
    self.generator, self.discriminator = state.generator, state.discriminator
    self.g_optimizer, self.d_optimizer = state.g_optimizer, state.d_optimizer
    self.step, self.ema = state.step, state.ema
    self.checkpoint = state.checkpoint
    # Names of the variables holding NaN/inf, checked at restore and every save.
    self.nonfinite_variables = safe.FiniteCheck(state.items())
    # Every worker reads the chief's checkpoints; only the chief sets aside.
    self.restored, self.absent_on_restore, self.skipped_checkpoints = (
        state.restore_newest(workdir, self.nonfinite_variables,
                             set_aside=self.chief))
    # [(field, checkpoint's rate, config's rate)]: the config's rates rule.
    self.changed_learning_rates = (state_lib.set_learning_rates(
        config, self.g_optimizer, self.d_optimizer) if self.restored else [])
    ckpt_dir = workdir_lib.checkpoint_dir(workdir)
    if not self.chief:  # every worker saves; only the chief's copy is kept
      ckpt_dir = workdir_lib.worker_checkpoint_dir(
          workdir, strategy_lib.worker_id(self.strategy))
    # Built after the restore: it reads the state file the restore may rewrite.
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, ckpt_dir, max_to_keep=config.keep_checkpoints,
        step_counter=self.step)
    self._check_workers_agree()
    if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
      self._preemption = self._make_preemption_handler()
    self._saved_step = int(self.step.numpy()) if self.restored else None
    if self.chief:
      workdir_lib.save_config(workdir, config)

    self.train_step = step_lib.TrainStep(
        config, self.strategy, self.generator, self.discriminator,
        self.g_optimizer, self.d_optimizer, self.step, ema=self.ema,
        lecam=state.lecam)
    skip = int(self.step.numpy()) * config.d_steps
    self.dataset = dataset_fn(self.strategy, config, skip_batches=skip)
    self.iterator = iter(self.dataset)
    self.writer = summaries.SummaryWriter(workdir, enabled=self.chief)
    z, labels, self.sample_grid = summaries.fixed_sample_inputs(config)
    self.sample_model = sample_model = state.sample_generator
    self._sample_fn = tf.function(
        lambda: summaries.sample_images(self.strategy, sample_model, z, labels))
    self._stop = threading.Event()
    self.last_checkpoint = self.restored

  def close(self):
    """Closes the TensorBoard writer (the trainer cannot log afterwards) and
    releases the workdir lock."""
    self.writer.close()
    self._release()

  def _release(self):
    if self._lock is not None:
      self._lock.release()
    if self._preemption_dir is not None:
      shutil.rmtree(self._preemption_dir, ignore_errors=True)
      self._preemption_dir = None

  # -- setup -----------------------------------------------------------------

  def _check_workers_agree(self):
    """Multi-worker: stops every worker if they restored different steps (e.g.
    workdirs that are not one shared directory), instead of training on."""
    step = int(self.step.numpy())
    mean = strategy_lib.mean_if_replicas_differ(self.strategy, step)
    if mean is not None:
      raise workdir_lib.ConfigMismatchError(
          f"The workers restored different steps (this worker {step}, mean "
          f"{mean:g}): every worker must use the same --workdir on a shared file "
          f"system (or bucket).")

  # -- control ---------------------------------------------------------------

  def request_stop(self, signum=None, frame=None):  # pylint: disable=unused-argument
    """Asks the loop to finish the current step, save and return (signal-safe)."""
    self._stop.set()

  def save(self) -> str:
    """Writes a checkpoint numbered by the global step; returns its path.

    Raises:
      NonFiniteWeightsError: a variable holds NaN/inf; nothing was written.
      CheckpointWriteError: the write failed (e.g. no space left on the device);
        the previous checkpoint and the state file naming it are untouched.
    """
    step = int(self.step.numpy())
    self.last_checkpoint = safe.save_checked(
        self.manager, step, self.nonfinite_variables, self.last_checkpoint)
    self._saved_step = step
    return self.last_checkpoint

  def _make_preemption_handler(self):
    def save():  # all workers call it at the agreed step
      if self._saved_step != int(self.step.numpy()):
        self.save()

    def preempted():  # after the save: leave the loop, not the process
      raise _Preempted()
    self._preemption_dir = tempfile.mkdtemp(prefix="sagan_preemption_")
    return strategy_lib.preemption_handler(self.strategy, save, preempted,
                                           self._preemption_dir)

  def _install_signal_handlers(self):
    if (threading.current_thread() is not threading.main_thread()
        or self._preemption is not None):  # multi-worker: TF's handler has SIGTERM
      return {}
    saved = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      saved[sig] = signal.getsignal(sig)

      def handler(signum, frame, _old=saved[sig]):
        self.request_stop()
        signal.signal(signum, _old)  # a second signal acts as usual
      signal.signal(sig, handler)
    return saved

  # -- loop --------------------------------------------------------------------

  def extra_scalars(self) -> Dict[str, float]:
    out = {f"attention/{k}": float(v) for k, v in summaries.attention_gates(
        self.generator, self.discriminator).items()}
    out["lr/generator"] = float(self.g_optimizer.learning_rate.numpy())
    out["lr/discriminator"] = float(self.d_optimizer.learning_rate.numpy())
    # The step just trained: the counter is already past it.
    out.update(cond_transition.scalars(self.config, self.step.numpy() - 1))
    return out

  def write_samples(self) -> Optional[str]:
    images = self._sample_fn().numpy()
    return self.writer.samples(int(self.step.numpy()), images, self.sample_grid)

  def run(self, until: Optional[int] = None) -> TrainResult:
    """Trains until global step ``until`` (default ``config.train_steps``).

    Returns early, after saving a checkpoint, when ``request_stop`` is called or
    SIGTERM/SIGINT arrives; raises ``safe.NonFiniteLossError`` if a logged
    loss is NaN or infinite.
    """
    cfg = self.config
    target = cfg.train_steps if until is None else int(until)
    step = int(self.step.numpy())
    self._stop.clear()
    saved_handlers = self._install_signal_handlers()
    metrics, png = {}, None
    t0, s0, first = None, step, step + 1
    preempted = False
    try:
      while step < target and not self._stop.is_set():
        out = self.train_step(self.iterator)
        step += 1
        if step == first:  # speed leaves out the first step (tracing, compiling)
          t0, s0 = time.perf_counter(), step
        final = step >= target or self._stop.is_set()
        if step % cfg.log_every == 0 or final:
          metrics = {k: float(v) for k, v in out.items()}
          try:
            safe.check_finite(step, metrics)
          except safe.NonFiniteLossError as e:
            raise safe.NonFiniteLossError(
                f"{e} ({safe.intact(self.last_checkpoint)}.)") from None
          now = time.perf_counter()
          sps = (step - s0) / (now - t0) if step > s0 else float("nan")
          progress = summaries.Progress(
              step, target, metrics, sps, sps * cfg.batch_size * cfg.d_steps)
          self.writer.scalars(step, progress, self.extra_scalars())
          if self.on_log is not None:
            self.on_log(progress)
          t0, s0 = now, step
        if step % cfg.sample_every == 0 or final:
          png = self.write_samples() or png
        if self.on_eval is not None and cfg.eval_every and (
            step % cfg.eval_every == 0 or final):
          self.last_eval = self.on_eval(step, self.sample_model)
        if step % cfg.checkpoint_every == 0 or final:
          self.save()
        if self._preemption is not None:  # all workers save the agreed step
          self._preemption.save_checkpoint_if_preempted()
      if self._saved_step != step:  # stop requested after the step's bookkeeping
        self.save()
    except _Preempted:
      preempted = True
    finally:
      for sig, old in saved_handlers.items():
        signal.signal(sig, old)
      self.writer.flush()
    return TrainResult(step=step, stopped=preempted or (
        self._stop.is_set() and step < target), checkpoint=self.last_checkpoint,
                       metrics=metrics, sample_png=png, preempted=preempted)


def train(config: Config, workdir: str, strategy=None, *, until=None,
          dataset_fn=default_dataset_fn, on_log=None,
          on_eval=None) -> TrainResult:
  """Builds or resumes the run in ``workdir`` and trains it to ``until``
  (default ``config.train_steps``); see ``Trainer``."""
  trainer = Trainer(config, workdir, strategy, dataset_fn=dataset_fn,
                    on_log=on_log, on_eval=on_eval)
  try:
    return trainer.run(until)
  finally:
    trainer.close()
