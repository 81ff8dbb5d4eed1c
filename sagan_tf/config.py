"""Run configuration as data: a frozen dataclass, named presets, overrides, JSON.

Presets (each docstring line is the command that runs it)::

    imagenet128  python -m launch.train --preset=imagenet128 --workdir=W --data_dir=D
    cifar10_32   python -m launch.train --preset=cifar10_32 --workdir=W
    digits32     python -m launch.train --preset=digits32 --workdir=W   (offline)
    tiny         python -m launch.train --preset=tiny --workdir=W --steps=6
    biggan_schedule128  python -m launch.train --preset=biggan_schedule128 --workdir=W --data_dir=D

``imagenet128`` is the official run (train_imagenet.py + model.py defaults): global
batch 256, G lr 1e-4, D lr 4e-4, Adam beta1 0 and beta2 0.999 (the official code
leaves TF's default 0.999; the paper reports 0.9: set ``beta2`` to compare), hinge
loss, one D step per G step, z_dim 128, gf=df=64, and:

* tower batch norm over groups of 64 (``bn_group_size=64``): the official run was
  4 towers x 64 (train_imagenet.py ``num_towers=4``, ``batch_size=64``) and each
  tower normalised over its own 64 examples; ``bn_group_size=0`` normalises over
  all 256 instead.
* input pipeline as the official training reader (``utils_ori.get_imagenet_batches``
  called from model.py): files interleaved 64 at a time
  (``interleave_cycle_length=64``, model.py ``data_parallelism``) and a 100,000
  record shuffle buffer on the undecoded records (``shuffle_buffer=100_000``,
  train_imagenet.py ``shuffle_buffer_size``). Here it is the shuffle window
  (``sagan_tf.data.order``) and two windows of encoded records are held, the one
  being read out and the next, at a fresh start as on a resume: about 2 x 4.9 GB
  of host memory for the official raw 128x128 TFRecords (49,152 bytes each; the
  official sliding buffer held one) and more for TFDS imagenet2012 (full-size
  training JPEGs, about 110 KB on average by the archive's size: roughly
  2 x 11 GB); lower ``shuffle_buffer`` on smaller hosts.
* 1,000,000 steps (G steps, each after one D step): the paper reports its ImageNet
  results at 1M iterations. The official train_imagenet.py stops at
  ``StopAtStepHook(num_steps=2000000)``, an upper bound on the job rather than the
  reported run; pass ``--set=train_steps=2000000`` (or ``--steps=2000000``) to run
  as long as that hook.

``digits32`` (the offline quick start) deviates from the official settings to
learn in about ten CPU minutes: a small model (gf=df=8), batch 32, G and D lr 4e-4
with Adam beta2 0.9, DiffAugment ``translation,cutout`` on every D input, an EMA
generator (decay 0.995, averaging from step 1000; sample, eval and export use it),
mode seeking of weight 0.15 in the G loss (``sagan_tf.training.mode_seeking``),
2500 steps; it evaluates itself every 500 steps in the features of the digit
classifier (``eval_every``, ``eval.train_eval``).

The model size and learning rates were chosen by runs of 1000-2000 steps (session
3, class accuracy of samples drawn with standing statistics): gf=df=16 at lr 2e-4
read 0.30 at step 600 and its step costs four times as much; gf=df=8 at lr 2e-4
read 0.20 at step 1000; at lr 4e-4 0.75 at step 1000 and 0.999 at step 1500; at lr
8e-4 0.90 at step 1000 with FID jumping from 34 to 106 (unstable); an EMA generator
(decay 0.999 from step 0) stayed at chance up to step 750 (it averages the early
weights). The augmentation, the EMA, mode seeking and the length were chosen by
``tools/recipe_table.py`` over seeds 0-2 on both offline digit sets, ``digits`` and
``glyphs``, by FID, recall, coverage and class accuracy together (docs/training.md,
2026-12-05 to 12-07, AVX2 host; median of 3 seeds, 5,000 samples in each set's own
classifier). Against the previous recipe (no augmentation, EMA or mode seeking,
1500 steps): glyphs FID 62.3 -> 26.9, recall 0.44 -> 0.49, coverage 0.48 -> 0.67,
class accuracy 0.56 -> 0.71; digits FID 6.4, class accuracy 0.967, recall 0.54,
coverage 0.80 (the previous recipe, seed 0: FID 39.7-47, recall 0.01, coverage
0.36-0.38). Without mode seeking (2000 steps) the digits samples lost their
diversity once the class signal was learned (recall 0.03, one style per class),
and a lower G lr, LeCam and transitional conditioning only delayed that; with
``ms_weight=0.3`` the classes came too late for 2500 steps (class accuracy 0.935);
2250 steps at 0.15 leave it short too (0.92-0.94).

``biggan_schedule128`` is ``imagenet128`` with BigGAN's training schedule (Brock et
al. 2019): two D steps per G step, Adam beta2 0.999, global batch 256, and an EMA
generator (decay 0.9999, averaging from step 20,000; see ``sagan_tf.models.ema``).
Everything else, tower batch norm and the input pipeline included, is
``imagenet128``'s (BigGAN itself normalised over the whole batch: add
``--set=bn_group_size=0``).

The library never reads flags: launchers build a ``Config`` with ``from_preset`` and
``override`` and pass it down.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Dict, Mapping, Optional, Tuple, Union

JIT_AUTO = "auto"
# DiffAugment policies (Zhao et al. 2020) that Config.diffaug may name.
DIFFAUG_POLICIES = ("color", "translation", "cutout")


def parse_diffaug(text: str) -> Tuple[str, ...]:
  """``"color, translation"`` -> ``("color", "translation")``; ``""`` -> ``()``.

  Raises ValueError naming an unknown or repeated policy.
  """
  names = tuple(p.strip() for p in text.split(",") if p.strip())
  unknown = [p for p in names if p not in DIFFAUG_POLICIES]
  if unknown or len(set(names)) != len(names):
    raise ValueError(f"policies must be distinct names from {DIFFAUG_POLICIES}, "
                     f"got {text!r}")
  return names


def parse_jit_compile(value) -> Union[bool, str]:
  """``True``, ``False`` or ``"auto"`` from a bool or a string (flag, JSON).

  Raises ValueError naming the accepted values.
  """
  if isinstance(value, bool):
    return value
  text = str(value).strip().lower()
  if text in ("1", "true", "yes", "on"):
    return True
  if text in ("0", "false", "no", "off"):
    return False
  if text == JIT_AUTO:
    return JIT_AUTO
  raise ValueError(f"jit_compile must be true, false or auto, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Config:
  """Every knob of a run. Validated by ``validate()``."""
  # Model.
  image_size: int = 128
  num_classes: int = 1000
  z_dim: int = 128
  gf_dim: int = 64
  df_dim: int = 64
  g_attention: Optional[Tuple[int, ...]] = None  # None: the architecture default
  d_attention: Optional[Tuple[int, ...]] = None
  variant: str = "official"
  # Examples per generator batch-norm group in training (tower BN, see
  # sagan_tf.layers.normalization); 0 = the whole global batch.
  bn_group_size: int = 0
  # Optimisation.
  batch_size: int = 256  # global, over all replicas
  g_lr: float = 1e-4
  d_lr: float = 4e-4
  beta1: float = 0.0
  beta2: float = 0.999
  loss: str = "hinge"  # "hinge" or "kl"
  d_steps: int = 1  # D steps per G step
  train_steps: int = 1_000_000
  # Exponential moving average of the generator weights (0 = off).
  ema_decay: float = 0.0
  ema_start: int = 0
  # Data-efficient training, both off in every preset (the official code has
  # neither): DiffAugment policies, comma-separated from DIFFAUG_POLICIES
  # (sagan_tf.training.diffaug), and the LeCam regulariser's weight, the decay of
  # its averages of D's outputs and the step it starts at (sagan_tf.models.lecam).
  diffaug: str = ""
  lecam_weight: float = 0.0
  lecam_decay: float = 0.99
  lecam_start: int = 1000
  # Transitional conditioning (Shahbazi et al. 2022; sagan_tf.training.cond_transition):
  # the class condition's weight rises from 0 at step cond_transition_start to 1 at
  # cond_transition_end; both 0 is off.
  cond_transition_start: int = 0
  cond_transition_end: int = 0
  # Mode-seeking regularisation of G (Mao et al. 2019; sagan_tf.training.mode_seeking):
  # the weight of its term in the G loss; 0 is off.
  ms_weight: float = 0.0
  # Data.
  dataset: str = "imagenet2012"  # "digits", "glyphs", "tfrecord" or a tfds name
  data_dir: Optional[str] = None  # tfds data_dir
  tfrecord_pattern: str = ""  # glob of official-format TFRecords
  split: str = "train"
  shuffle_buffer: int = 10_000  # raw (encoded) examples
  interleave_cycle_length: int = 16  # files read concurrently
  # Numerics and speed.
  mixed_precision: bool = False  # Keras "mixed_bfloat16" policy
  # XLA for the train step: True, False, or "auto" (on where it is supported and
  # measured faster; resolved by sagan_tf.training.jit_choice.resolve).
  jit_compile: Union[bool, str] = JIT_AUTO
  # Bookkeeping.
  seed: int = 0
  log_every: int = 100
  sample_every: int = 1000
  checkpoint_every: int = 1000
  keep_checkpoints: int = 5
  # Evaluate every N steps and at the end (0 = off); see eval.train_eval.
  eval_every: int = 0

  def replace(self, **changes) -> "Config":
    return dataclasses.replace(self, **changes).validate()

  def validate(self) -> "Config":
    """Raises ValueError naming the offending field; returns self."""
    def need(cond, field, why):
      if not cond:
        raise ValueError(f"Config.{field}={getattr(self, field)!r}: {why}")
    need(self.image_size in (32, 64, 128), "image_size", "must be 32, 64 or 128")
    for f in ("num_classes", "z_dim", "gf_dim", "df_dim", "batch_size", "d_steps",
              "train_steps", "log_every", "sample_every", "checkpoint_every",
              "keep_checkpoints", "shuffle_buffer", "interleave_cycle_length"):
      need(getattr(self, f) > 0, f, "must be positive")
    for f in ("g_lr", "d_lr"):
      need(getattr(self, f) > 0, f, "must be positive")
    for f in ("beta1", "beta2"):
      need(0.0 <= getattr(self, f) < 1.0, f, "must be in [0, 1)")
    need(0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1); 0 is off")
    need(self.ema_start >= 0, "ema_start", "must be >= 0")
    try:
      parse_diffaug(self.diffaug)
    except ValueError as e:
      need(False, "diffaug", str(e))
    need(self.lecam_weight >= 0.0, "lecam_weight", "must be >= 0; 0 is off")
    need(0.0 <= self.lecam_decay < 1.0, "lecam_decay", "must be in [0, 1)")
    need(self.lecam_start >= 0, "lecam_start", "must be >= 0")
    need(self.ms_weight >= 0.0, "ms_weight", "must be >= 0; 0 is off")
    need(self.ms_weight == 0.0 or self.batch_size % 2 == 0, "ms_weight",
         f"pairs examples within the batch: batch_size={self.batch_size} must be "
         f"even")
    start, end = self.cond_transition_start, self.cond_transition_end
    need(start >= 0, "cond_transition_start", "must be >= 0")
    need(end >= 0, "cond_transition_end", "must be >= 0; 0 is off")
    need(end == 0 or end > start, "cond_transition_end",
         f"must be greater than cond_transition_start ({end} <= {start}), or 0 (off)")
    need(end > 0 or start == 0, "cond_transition_start",
         f"is {start} with cond_transition_end 0: set the end > start, or both to 0 "
         f"(off)")
    need(self.bn_group_size >= 0, "bn_group_size",
         "must be >= 0 (0 = normalise over the whole global batch)")
    need(self.bn_group_size == 0 or self.batch_size % self.bn_group_size == 0,
         "bn_group_size", f"must divide batch_size={self.batch_size} (or be 0): "
         "set bn_group_size=0 (statistics over the whole batch) or set "
         f"bn_group_size={_largest_divisor_below(self.batch_size, self.bn_group_size)} "
         f"(a divisor of {self.batch_size})")
    need(self.eval_every >= 0, "eval_every", "must be >= 0; 0 is off")
    need(isinstance(self.jit_compile, bool) or self.jit_compile == JIT_AUTO,
         "jit_compile", "must be True, False or 'auto'")
    need(self.loss in ("hinge", "kl"), "loss", "must be 'hinge' or 'kl'")
    need(self.variant in ("official", "tfgan_estimator"), "variant",
         "must be 'official' or 'tfgan_estimator'")
    need(self.dataset != "tfrecord" or bool(self.tfrecord_pattern),
         "tfrecord_pattern", "is required when dataset='tfrecord'")
    return self

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "Config":
    raw = json.loads(text)
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f"Unknown config fields {unknown} in JSON.")
    for key in ("g_attention", "d_attention"):
      if raw.get(key) is not None:
        raw[key] = tuple(raw[key])
    return cls(**raw).validate()


_IMAGENET128 = Config(bn_group_size=64, shuffle_buffer=100_000,
                      interleave_cycle_length=64)

PRESETS: Dict[str, Config] = {
    "imagenet128": _IMAGENET128,
    "cifar10_32": Config(
        image_size=32, num_classes=10, batch_size=64, d_steps=5,
        dataset="cifar10", train_steps=100_000, g_lr=1e-4, d_lr=4e-4),
    # Offline default: scikit-learn's bundled 8x8 digits resized to 32x32.
    "digits32": Config(
        image_size=32, num_classes=10, gf_dim=8, df_dim=8, batch_size=32,
        dataset="digits", train_steps=2500, g_lr=4e-4, d_lr=4e-4, beta1=0.0,
        beta2=0.9, diffaug="translation,cutout", ema_decay=0.995, ema_start=1000,
        ms_weight=0.15,
        log_every=50, sample_every=250, checkpoint_every=250,
        shuffle_buffer=2048, eval_every=500),
    "tiny": Config(
        image_size=32, num_classes=10, gf_dim=4, df_dim=4, z_dim=16, batch_size=4,
        dataset="digits", train_steps=6, log_every=1, sample_every=3,
        checkpoint_every=3, shuffle_buffer=64),
    "biggan_schedule128": dataclasses.replace(
        _IMAGENET128, batch_size=256, d_steps=2, beta2=0.999, ema_decay=0.9999,
        ema_start=20000),
}


def from_preset(name: str) -> Config:
  if name not in PRESETS:
    raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name].validate()


def _parse(field_type, text: str):
  """Parses a command-line string into a field's type."""
  origin = typing.get_origin(field_type)
  args = typing.get_args(field_type)
  if origin is typing.Union:  # Optional[X]
    if text.lower() in ("", "none"):
      return None
    return _parse([a for a in args if a is not type(None)][0], text)
  if origin in (tuple, Tuple):
    return tuple(int(p) for p in text.replace(" ", "").split(",") if p)
  if field_type is bool:
    if text.lower() in ("1", "true", "yes"):
      return True
    if text.lower() in ("0", "false", "no"):
      return False
    raise ValueError(f"not a boolean: {text!r}")
  return field_type(text)


def _largest_divisor_below(n: int, limit: int) -> int:
  """The largest divisor of ``n`` that is at most ``limit`` (1 at least)."""
  return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def override(config: Config, overrides: Mapping[str, Any]) -> Config:
  """Returns config with fields replaced; string values are parsed by type.

  Raises ValueError naming an unknown field or a value that does not parse.
  """
  hints = typing.get_type_hints(Config)
  changes = {}
  for key, value in overrides.items():
    if key not in hints:
      raise ValueError(f"Unknown config field {key!r}; fields are "
                       f"{sorted(hints)}.")
    if key == "jit_compile":
      try:
        value = parse_jit_compile(value)
      except ValueError as e:
        raise ValueError(f"Cannot parse {key}={value!r}: {e}") from None
    elif isinstance(value, str):
      try:
        value = _parse(hints[key], value)
      except ValueError as e:
        raise ValueError(f"Cannot parse {key}={value!r}: {e}") from None
    changes[key] = value
  return config.replace(**changes)
