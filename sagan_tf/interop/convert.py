"""Import TF1 SAGAN checkpoints: the official code and the TF-GAN estimator port.

``load_tf1_checkpoint(path, layout)`` builds a sagan_tf ``Generator`` and
``Discriminator`` and fills every variable from a TF1 checkpoint, through a
written-out name map (one entry per Keras variable), a shape check per entry and a
single error that names every checkpoint variable left unused, every model variable
not found and every shape that does not match.

Layouts (the name maps are in ``sagan_tf.interop.tf1_names``):

* ``"official"``: brain-research/self-attention-gan (``generator_test`` /
  ``discriminator_test`` and their ``_64`` forms, or the attention-free
  ``generator`` / ``discriminator``), scope ``model/``.
* ``"tfgan_estimator"``: TF-GAN ``examples/self_attention_estimator``, scopes
  ``generator/`` and ``discriminator/`` when its network functions were called
  directly, ``Generator/generator/`` and ``Discriminator/discriminator/`` in a
  checkpoint ``GANEstimator``/``TPUGANEstimator`` wrote. ``detect_scopes`` finds
  the scopes in the checkpoint (any outer scope around the bare ones).

Checkpoint variables that are not model state (optimiser slots, ``beta*_power``,
``global_step``, step counters; ``tf1_names.is_training_state``) are skipped.
Anything else must map onto a model variable or the load fails. The checkpoint's
``global_step`` (both codes keep one) becomes the step of the converted workdir
(``checkpoint_step``).

Where the attention sits is read from the checkpoint: the channel count of the
attention's theta kernel names the block it follows (the official ``*_test_64``
puts it after ``g_block4``/``d_optimized_block1``, i.e. at 64x64 for 128 px);
no attention scope means no attention (the official ``generator``/``discriminator``).
``g_attention``/``d_attention`` arguments override the inference. ``num_classes``,
``gf_dim``, ``df_dim``, ``z_dim`` and ``image_size`` are inferred from the shapes
when not given (image size from the number of generator blocks).

The models are the sagan_tf ones with ``variant=layout`` (see
``sagan_tf.models.architecture.VARIANTS``): the official generator writes ``u`` on every
forward (also at inference) and its discriminator on the real pass only; TF-GAN's
generator writes ``u`` only when training and its discriminator on both passes.
Checked against checkpoints written by both codes (tests/test_convert.py): images
within 1e-4, logits within 1e-4 relative, ``u`` and BN statistics within 1e-5.

Deliberate deviations from the checkpoints' own code (all at float32 rounding):

* Batch moments come from ``tf.nn.moments`` (TF-GAN: ``E[x^2] - E[x]^2`` via
  ``sufficient_statistics``; official ``g_bn``: the fused kernel), and moving
  averages are ``v * d + x * (1 - d)`` rather than ``v - (v - x) * (1 - d)``.
* Upsampling is reshape+tile (official: ``resize_nearest_neighbor``), equal at x2.
* Logits are `[N]` (TF1 `[N, 1]`).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from sagan_tf.models import architecture as arch_lib
from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import state as state_lib
from sagan_tf.run import workdir as workdir_lib
from sagan_tf.run.checkpoint import CheckpointMismatchError
from sagan_tf.config import Config
from sagan_tf.models.builder import build_models
from sagan_tf.models.builder import config_of
from sagan_tf.interop.tf1_names import BASE_SCOPES
from sagan_tf.interop.tf1_names import check_layout as _check_layout
from sagan_tf.interop.tf1_names import discriminator_name_map
from sagan_tf.interop.tf1_names import generator_name_map
from sagan_tf.interop.tf1_names import is_training_state
from sagan_tf.interop.tf1_names import LAYOUTS
from sagan_tf.interop.tf1_names import probe_names
from sagan_tf.interop.tf1_names import PROBES
from sagan_tf.interop.tf1_names import Scopes

__all__ = ["CheckpointMismatchError", "LAYOUTS", "Scopes", "checkpoint_step",
           "convert_to_workdir", "detect_scopes", "discriminator_name_map",
           "generator_name_map", "infer_config", "is_training_state",
           "load_tf1_checkpoint", "open_checkpoint"]


# --- Inferring the configuration ---------------------------------------------------


# --- Finding the scopes -------------------------------------------------------------


def _find_scope(shapes, base, probe, who):
  """The scope holding ``<base>/<probe>``, with any outer scope; ``base`` if none."""
  suffix = f"{base}/{probe}"
  found = sorted(name[:-len(probe) - 1] for name in shapes
                 if name == suffix or name.endswith("/" + suffix))
  if len(found) > 1:
    raise CheckpointMismatchError(
        f"The checkpoint holds {len(found)} {who}s ({', '.join(found)}); "
        f"convert one of them: copy its variables into a checkpoint of their own.")
  return found[0] if found else base


def detect_scopes(shapes: Dict[str, Sequence[int]], layout: str) -> Scopes:
  """The generator's and discriminator's scopes in a checkpoint ``{name: shape}``.

  The bare scopes of ``layout`` (``tf1_names.BASE_SCOPES``) under any outer scope:
  e.g. ``Generator/generator`` and ``Discriminator/discriminator`` for a TF-GAN
  ``GANEstimator`` checkpoint, ``generator``/``discriminator`` for TF-GAN's
  network functions called directly. A side not found keeps its bare scope (the
  load then names what is missing).
  """
  _check_layout(layout)
  base, probe = BASE_SCOPES[layout], PROBES[layout]
  return Scopes(_find_scope(shapes, base.generator, probe.generator, "generator"),
                _find_scope(shapes, base.discriminator, probe.discriminator,
                            "discriminator"))


def _check_layout_matches(shapes, layout, scopes):
  """A clear error when the checkpoint was written by the other code."""
  if probe_names(layout, scopes)["g_in"] in shapes:
    return
  for other in LAYOUTS:
    if other == layout:
      continue
    name = probe_names(other, detect_scopes(shapes, other))["g_in"]
    if name in shapes:
      raise CheckpointMismatchError(
          f"This looks like a {other!r} checkpoint (it has {name!r}), not "
          f"{layout!r}: pass layout={other!r}.")


def checkpoint_step(reader) -> int:
  """The training step a TF1 checkpoint was saved at: its ``global_step``, else 0."""
  if "global_step" not in reader.get_variable_to_shape_map():
    return 0
  value = np.asarray(reader.get_tensor("global_step"))
  ok = value.size == 1 and np.issubdtype(value.dtype, np.integer)
  if not ok or int(value.reshape(())) < 0:
    raise CheckpointMismatchError(
        f"The checkpoint's global_step is {value!r}, not a step count (a "
        f"non-negative integer scalar).")
  return int(value.reshape(()))

def _need(shapes, name, what):
  if name not in shapes:
    raise CheckpointMismatchError(
        f"Cannot infer {what}: the checkpoint has no {name!r}; pass it explicitly "
        f"or check the layout.")
  return shapes[name]


def _attention_resolution(shapes, name, channels_by_resolution, who):
  """Resolution whose block output has the attention's input channel count."""
  if name not in shapes:
    return ()
  c = shapes[name][2]
  for res, ch in channels_by_resolution:
    if ch == c:
      return (res,)
  raise CheckpointMismatchError(
      f"{who} attention {name!r} takes {c} channels, which no block output of "
      f"this architecture has ({channels_by_resolution}); pass the attention "
      f"resolution explicitly.")


def infer_config(shapes: Dict[str, Sequence[int]], layout: str,
                 num_classes=None, gf_dim=None, df_dim=None, z_dim=None,
                 image_size=None, g_attention=None, d_attention=None,
                 scopes: Optional[Scopes] = None) -> dict:
  """Fills the None arguments from checkpoint shapes ``{name: shape}``.

  ``scopes`` None: ``detect_scopes(shapes, layout)``.
  """
  _check_layout(layout)
  n = probe_names(layout, scopes or detect_scopes(shapes, layout))
  if image_size is None:
    blocks = 0
    while n["g_block"].format(i=blocks + 1) in shapes:
      blocks += 1
    by_blocks = {len(a.g_blocks): s for s, a in arch_lib.ARCHITECTURES.items()}
    if blocks not in by_blocks:
      raise CheckpointMismatchError(
          f"Cannot infer image_size: found {blocks} generator blocks "
          f"({n['g_block'].format(i='N')}); pass image_size.")
    image_size = by_blocks[blocks]
  arch = arch_lib.architecture(image_size)
  if z_dim is None:
    z_dim = int(_need(shapes, n["g_in"], "z_dim")[0])
  if gf_dim is None:
    width = int(_need(shapes, n["g_in"], "gf_dim")[1])
    gf_dim = width // (16 * arch.g_in)
  if df_dim is None:
    df_dim = int(_need(shapes, n["d_first"], "df_dim")[-1]) // arch.d_blocks[0][0]
  if num_classes is None:
    num_classes = int(_need(shapes, n["emb"], "num_classes")[0])
  if g_attention is None:
    g_channels = [(8 * 2 ** i, m * gf_dim) for i, m in enumerate(arch.g_blocks)]
    g_attention = _attention_resolution(shapes, n["g_attn"], g_channels,
                                        "Generator")
  if d_attention is None:
    d_channels, res = [], image_size
    for m, down in arch.d_blocks:
      res //= 2 if down else 1
      d_channels.append((res, m * df_dim))
    d_attention = _attention_resolution(shapes, n["d_attn"], d_channels,
                                        "Discriminator")
  return dict(image_size=int(image_size), num_classes=int(num_classes),
              gf_dim=int(gf_dim), df_dim=int(df_dim), z_dim=int(z_dim),
              g_attention=tuple(g_attention), d_attention=tuple(d_attention))


# --- Loading ------------------------------------------------------------------------


def assign_from_checkpoint(reader, entries: List[Tuple[str, tf.Variable, tuple]],
                           models=()):
  """Assigns every entry from ``reader``; raises one error listing every problem.

  Args:
    reader: a ``tf.train.load_checkpoint`` reader.
    entries: the name map (both models).
    models: the Keras models whose every variable the map must cover.
  """
  shapes = reader.get_variable_to_shape_map()
  model_names = {name for name in shapes if not is_training_state(name)}
  missing, bad_shape, problems = [], [], []
  mapped = set()
  for name, var, ckpt_shape in entries:
    if name not in shapes:
      missing.append(f"{name} (for {var.path}, shape {list(ckpt_shape)})")
      continue
    mapped.add(name)
    if tuple(shapes[name]) != ckpt_shape:
      bad_shape.append(f"{name}: checkpoint {list(shapes[name])}, model expects "
                       f"{list(ckpt_shape)} (for {var.path})")
  unused = sorted(model_names - mapped)
  covered = {id(var) for _, var, _ in entries}
  for model in models:
    for var in model.weights:
      if id(var) not in covered:
        problems.append(f"{var.path} has no entry in the name map")
  if missing or bad_shape or unused or problems:
    lines = ["The checkpoint does not match the model."]
    for title, items in (("Model variables not found in the checkpoint",
                          missing),
                         ("Shape mismatches", bad_shape),
                         ("Checkpoint variables left unused", unused),
                         ("Model variables without a map entry", problems)):
      if items:
        lines.append(f"{title} ({len(items)}):")
        lines += [f"  {item}" for item in items]
    raise CheckpointMismatchError("\n".join(lines))
  for name, var, _ in entries:
    value = reader.get_tensor(name)
    var.assign(np.reshape(value, tuple(var.shape)).astype(var.dtype))


def load_tf1_checkpoint(path: str, layout: str = "official",
                        num_classes: Optional[int] = None,
                        gf_dim: Optional[int] = None,
                        df_dim: Optional[int] = None,
                        z_dim: Optional[int] = None,
                        image_size: Optional[int] = None,
                        g_attention: Optional[Sequence[int]] = None,
                        d_attention: Optional[Sequence[int]] = None):
  """Builds sagan_tf models and fills them from a TF1 SAGAN checkpoint.

  Args:
    path: the checkpoint prefix (``.../model.ckpt-N``) or a directory holding a
      ``checkpoint`` state file.
    layout: ``"official"`` or ``"tfgan_estimator"``; also the models' variant.
    num_classes, gf_dim, df_dim, z_dim, image_size: None infers each from the
      checkpoint shapes.
    g_attention, d_attention: resolutions of the attention blocks; None infers
      them from the checkpoint (``()`` for none).

  Returns:
    (generator, discriminator), built and restored.

  Raises:
    FileNotFoundError: no checkpoint at ``path``.
    ValueError: unknown layout.
    CheckpointMismatchError: the checkpoint does not fit the model; the message
      names every unused, missing or mis-shaped variable.
  """
  _check_layout(layout)
  reader = open_checkpoint(path)
  shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}
  scopes = detect_scopes(shapes, layout)
  _check_layout_matches(shapes, layout, scopes)
  cfg = infer_config(shapes, layout, num_classes=num_classes, gf_dim=gf_dim,
                     df_dim=df_dim, z_dim=z_dim, image_size=image_size,
                     g_attention=g_attention, d_attention=d_attention,
                     scopes=scopes)
  generator, discriminator = build_models(Config(variant=layout, **cfg))
  entries = (generator_name_map(generator, layout, scopes.generator)
             + discriminator_name_map(discriminator, layout,
                                      scopes.discriminator))
  assign_from_checkpoint(reader, entries, models=(generator, discriminator))
  return generator, discriminator


def open_checkpoint(path: str):
  """A checkpoint reader for a prefix or a directory; clear error when absent."""
  prefix = path
  if tf.io.gfile.isdir(path):
    prefix = tf.train.latest_checkpoint(path)
    if prefix is None:
      raise FileNotFoundError(
          f"No TF1 checkpoint in directory {path!r} (no 'checkpoint' state file); "
          f"pass the prefix, e.g. {path}/model.ckpt-N.")
  if not tf.io.gfile.exists(prefix + ".index"):
    raise FileNotFoundError(
        f"No TF1 checkpoint at {path!r} (expected {prefix}.index).")
  return tf.train.load_checkpoint(prefix)


def convert_to_workdir(source: str, layout: str, output: str, overwrite=False,
                       **dims):
  """Loads a TF1 checkpoint and writes it as a sagan_tf workdir.

  The workdir's checkpoint is ``ckpt-<N>`` at step N, the TF1 checkpoint's
  ``global_step`` (0 when it has none), so evaluations and samples of the
  converted run name the step the original training reached.

  Args:
    source: TF1 checkpoint prefix or directory.
    layout: "official" or "tfgan_estimator" (also the Config variant).
    output: the workdir to write (``config.json`` + ``checkpoints/``).
    overwrite: allow an ``output`` that already holds a workdir.
    **dims: num_classes, gf_dim, df_dim, z_dim, image_size, g_attention,
      d_attention (None or absent: inferred), as for ``load_tf1_checkpoint``.

  Returns:
    (config, checkpoint path written, step).
  """
  _check_layout(layout)
  if not overwrite and (workdir_lib.has_config(output)
                        or ckpt_lib.checkpoint_candidates(output)):
    raise FileExistsError(
        f"{output!r} already holds a sagan_tf workdir; choose another output "
        f"(or pass overwrite=True).")
  step = checkpoint_step(open_checkpoint(source))
  generator, discriminator = load_tf1_checkpoint(source, layout, **dims)
  config = config_of(generator, discriminator).validate()
  path = state_lib.save_models(output, config, generator, discriminator, step=step)
  return config, path, step
