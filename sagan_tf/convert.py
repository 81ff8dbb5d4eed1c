"""Import TF1 SAGAN checkpoints: the official code and the TF-GAN estimator port.

``load_tf1_checkpoint(path, layout)`` builds a sagan_tf ``Generator`` and
``Discriminator`` and fills every variable from a TF1 checkpoint, through a
written-out name map (one entry per Keras variable), a shape check per entry and a
single error that names every checkpoint variable left unused, every model variable
not found and every shape that does not match.

Layouts:

* ``"official"``: brain-research/self-attention-gan (``generator_test`` /
  ``discriminator_test`` and their ``_64`` forms, or the attention-free
  ``generator`` / ``discriminator``), scope ``model/``. Variables
  ``w``/``Matrix``/``biases``/``bias``/``u``, ``embedding_map``, CBN
  ``gamma``/``beta``/``mean``/``var``, ``g_bn`` ``gamma``/``beta``/
  ``moving_mean``/``moving_variance``. Every shape equals ours.
* ``"tfgan_estimator"``: TF-GAN ``examples/self_attention_estimator``, scopes
  ``generator/`` and ``discriminator/``, ``tf.layers`` names (``snconv1/snconv1/
  kernel``, ``g_snh0/dense/kernel``), attention under ``g_ops``/``d_ops``, and
  ``u`` stored as ``<kernel scope>/<kernel name>/spectral_normalize/spectral_norm/
  spectral_norm_u``. Two layouts differ from ours and are reshaped: CBN
  gamma/beta ``[classes, 1, 1, C]`` -> ``[classes, C]`` with moving statistics
  ``[C]`` -> ``[1, 1, 1, C]``; ``g_bn`` gamma/beta ``[1, 1, 1, C]`` -> ``[C]``.

Checkpoint variables that are not model state are skipped by rule
(``is_training_state``): optimiser slots (last name component ``Adam``,
``Adam_<n>``, ``Momentum``, ``RMSProp``...), ``beta1_power``/``beta2_power``
(with ``_<n>`` suffixes), ``global_step``, and the official ``d_step``/``g_step``
counters. Anything else must map onto a model variable or the load fails.

Where the attention sits is read from the checkpoint: the channel count of the
attention's theta kernel names the block it follows (the official ``*_test_64``
puts it after ``g_block4``/``d_optimized_block1``, i.e. at 64x64 for 128 px);
no attention scope means no attention (the official ``generator``/``discriminator``).
``g_attention``/``d_attention`` arguments override the inference. ``num_classes``,
``gf_dim``, ``df_dim``, ``z_dim`` and ``image_size`` are inferred from the shapes
when not given (image size from the number of generator blocks).

The models are the sagan_tf ones with ``variant=layout`` (see
``sagan_tf.architecture.VARIANTS``): the official generator writes ``u`` on every
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

import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from sagan_tf import architecture as arch_lib
from sagan_tf.discriminator import Discriminator
from sagan_tf.generator import Generator

LAYOUTS = ("official", "tfgan_estimator")

_SLOT_RE = re.compile(
    r"^(Adam|Adam_\d+|Momentum|Momentum_\d+|RMSProp|RMSProp_\d+|Adagrad|"
    r"ExponentialMovingAverage)$")
_COUNTER_RE = re.compile(r"^(global_step|d_step|g_step|beta[12]_power(_\d+)?)$")

_TFGAN_U = "spectral_normalize/spectral_norm/spectral_norm_u"


class CheckpointMismatchError(ValueError):
  """The checkpoint and the model do not match; the message lists every problem."""


def is_training_state(name: str) -> bool:
  """True for checkpoint variables that are optimiser/step state, not the model."""
  return bool(_SLOT_RE.match(name.rsplit("/", 1)[-1]) or _COUNTER_RE.match(name))


# --- Name maps --------------------------------------------------------------------
# An entry is (checkpoint name, Keras variable, checkpoint shape expected). The
# value read is reshaped to the Keras variable's shape after the shape check.


def _shape(v):
  return tuple(int(d) for d in v.shape)


def _entry(name, var, ckpt_shape=None):
  return (name, var, tuple(ckpt_shape) if ckpt_shape is not None else _shape(var))


def _sn_official(scope, layer, kernel_name="w", bias_name="biases"):
  out = [_entry(f"{scope}/{kernel_name}", layer.kernel),
         _entry(f"{scope}/u", layer.u)]
  if layer.use_bias:
    out.append(_entry(f"{scope}/{bias_name}", layer.bias))
  return out


def _tfgan_u(kernel_name):
  return f"{kernel_name.rsplit('/', 1)[0]}/{kernel_name}/{_TFGAN_U}"


def _sn_tfgan(kernel_name, layer):
  out = [_entry(kernel_name, layer.kernel),
         _entry(_tfgan_u(kernel_name), layer.u)]
  if layer.use_bias:
    out.append(_entry(kernel_name.rsplit("/", 1)[0] + "/bias", layer.bias))
  return out


def _conv(layout, scope, layer):
  if layout == "official":
    return _sn_official(scope, layer)
  leaf = scope.rsplit("/", 1)[-1]
  return _sn_tfgan(f"{scope}/{leaf}/kernel", layer)


def _dense(layout, scope, layer):
  if layout == "official":
    return _sn_official(scope, layer, "Matrix", "bias")
  return _sn_tfgan(f"{scope}/dense/kernel", layer)


def _embedding(layout, scope, layer):
  u_name = f"{scope}/u" if layout == "official" else f"{scope}/{_TFGAN_U}"
  return [_entry(f"{scope}/embedding_map", layer.embeddings),
          _entry(u_name, layer.u)]


def _attention(layout, scope, layer):
  out = []
  for sub in (layer.theta, layer.phi, layer.g, layer.attn_conv):
    if layout == "official":
      out += _sn_official(f"{scope}/{sub.name}", sub)
    else:
      out += _sn_tfgan(f"{scope}/{sub.name}/weights", sub)
  out.append(_entry(f"{scope}/sigma_ratio", layer.sigma_ratio))
  return out


def _cbn(layout, scope, layer):
  if layout == "official":
    return [_entry(f"{scope}/gamma", layer.gamma),
            _entry(f"{scope}/beta", layer.beta),
            _entry(f"{scope}/mean", layer.moving_mean),
            _entry(f"{scope}/var", layer.moving_variance)]
  nc, c = _shape(layer.gamma)
  return [_entry(f"{scope}/gamma", layer.gamma, (nc, 1, 1, c)),
          _entry(f"{scope}/beta", layer.beta, (nc, 1, 1, c)),
          _entry(f"{scope}/moving_mean", layer.moving_mean, (c,)),
          _entry(f"{scope}/moving_variance", layer.moving_variance, (c,))]


def _bn(layout, scope, layer):
  c = _shape(layer.gamma)[0]
  affine = (c,) if layout == "official" else (1, 1, 1, c)
  return [_entry(f"{scope}/gamma", layer.gamma, affine),
          _entry(f"{scope}/beta", layer.beta, affine),
          _entry(f"{scope}/moving_mean", layer.moving_mean),
          _entry(f"{scope}/moving_variance", layer.moving_variance)]


def _attention_scope(layout, model_scope, keras_name, prefix):
  """Official ``g_non_local``/``d_non_local``; TF-GAN ``g_ops``/``d_ops``."""
  if layout == "official":
    return f"{model_scope}/{keras_name}"
  return f"{model_scope}/{prefix}_ops"


def generator_name_map(generator: Generator, layout: str):
  """[(checkpoint name, Keras variable, checkpoint shape)] for a built generator."""
  _check_layout(layout)
  s = "model" if layout == "official" else "generator"
  if len(generator.attention_layers) > 1:
    raise ValueError("TF1 checkpoints hold at most one generator attention block.")
  out = _dense(layout, f"{s}/g_snh0", generator.g_snh0)
  for name in generator.block_names:
    block = getattr(generator, name)
    out += _cbn(layout, f"{s}/{name}/cbn_0", block.cbn_0)
    out += _conv(layout, f"{s}/{name}/snconv1", block.snconv1)
    out += _cbn(layout, f"{s}/{name}/cbn_1", block.cbn_1)
    out += _conv(layout, f"{s}/{name}/snconv2", block.snconv2)
    out += _conv(layout, f"{s}/{name}/snconv3", block.snconv3)
  for _, layer in generator.attention_layers:
    out += _attention(layout, _attention_scope(layout, s, layer.name, "g"), layer)
  out += _bn(layout, f"{s}/g_bn", generator.g_bn)
  out += _conv(layout, f"{s}/g_snconv_last", generator.g_snconv_last)
  return out


def discriminator_name_map(discriminator: Discriminator, layout: str):
  """[(checkpoint name, Keras variable, checkpoint shape)] for a built D."""
  _check_layout(layout)
  s = "model" if layout == "official" else "discriminator"
  if len(discriminator.attention_layers) > 1:
    raise ValueError("TF1 checkpoints hold at most one discriminator attention "
                     "block.")
  out = []
  for name in discriminator.block_names:
    block = getattr(discriminator, name)
    out += _conv(layout, f"{s}/{name}/sn_conv1", block.sn_conv1)
    out += _conv(layout, f"{s}/{name}/sn_conv2", block.sn_conv2)
    if block.learnable_shortcut:
      out += _conv(layout, f"{s}/{name}/sn_conv3", block.sn_conv3)
  for _, layer in discriminator.attention_layers:
    out += _attention(layout, _attention_scope(layout, s, layer.name, "d"), layer)
  out += _dense(layout, f"{s}/d_sn_linear", discriminator.d_sn_linear)
  out += _embedding(layout, f"{s}/d_embedding", discriminator.d_embedding)
  return out


def _check_layout(layout):
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")


# --- Inferring the configuration ---------------------------------------------------


def _names(layout):
  """Checkpoint names of the tensors the inference reads."""
  if layout == "official":
    return dict(
        g_in="model/g_snh0/Matrix", g_block="model/g_block{i}/snconv1/w",
        g_attn="model/g_non_local/sn_conv_theta/w",
        d_first="model/d_optimized_block1/sn_conv1/w",
        d_attn="model/d_non_local/sn_conv_theta/w",
        emb="model/d_embedding/embedding_map",
        cbn="model/g_block1/cbn_0/gamma")
  return dict(
      g_in="generator/g_snh0/dense/kernel",
      g_block="generator/g_block{i}/snconv1/snconv1/kernel",
      g_attn="generator/g_ops/sn_conv_theta/weights",
      d_first="discriminator/d_optimized_block1/sn_conv1/sn_conv1/kernel",
      d_attn="discriminator/d_ops/sn_conv_theta/weights",
      emb="discriminator/d_embedding/embedding_map",
      cbn="generator/g_block1/cbn_0/gamma")


def _check_layout_matches(shapes, layout):
  """A clear error when the checkpoint was written by the other code."""
  if _names(layout)["g_in"] in shapes:
    return
  for other in LAYOUTS:
    if other != layout and _names(other)["g_in"] in shapes:
      raise CheckpointMismatchError(
          f"This looks like a {other!r} checkpoint (it has "
          f"{_names(other)['g_in']!r}), not {layout!r}: pass layout={other!r}.")


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
                 image_size=None, g_attention=None, d_attention=None) -> dict:
  """Fills the None arguments from checkpoint shapes ``{name: shape}``."""
  _check_layout(layout)
  n = _names(layout)
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
    var.assign(np.reshape(value, _shape(var)).astype(var.dtype))


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
  _check_layout_matches(shapes, layout)
  cfg = infer_config(shapes, layout, num_classes=num_classes, gf_dim=gf_dim,
                     df_dim=df_dim, z_dim=z_dim, image_size=image_size,
                     g_attention=g_attention, d_attention=d_attention)
  generator, discriminator = build_models_for(cfg, layout)
  entries = (generator_name_map(generator, layout)
             + discriminator_name_map(discriminator, layout))
  assign_from_checkpoint(reader, entries, models=(generator, discriminator))
  return generator, discriminator


def build_models_for(cfg: dict, layout: str):
  """Built (generator, discriminator) for an ``infer_config`` dict."""
  generator = Generator(image_size=cfg["image_size"], gf_dim=cfg["gf_dim"],
                        num_classes=cfg["num_classes"], z_dim=cfg["z_dim"],
                        attention=cfg["g_attention"], variant=layout)
  discriminator = Discriminator(image_size=cfg["image_size"],
                                df_dim=cfg["df_dim"],
                                num_classes=cfg["num_classes"],
                                attention=cfg["d_attention"], variant=layout)
  generator.build_variables()
  discriminator.build_variables()
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
  """Loads a TF1 checkpoint and writes it as a sagan_tf workdir (step 0).

  Args:
    source: TF1 checkpoint prefix or directory.
    layout: "official" or "tfgan_estimator" (also the Config variant).
    output: the workdir to write (``config.json`` + ``checkpoints/``).
    overwrite: allow an ``output`` that already holds a workdir.
    **dims: num_classes, gf_dim, df_dim, z_dim, image_size, g_attention,
      d_attention (None or absent: inferred), as for ``load_tf1_checkpoint``.

  Returns:
    (config, checkpoint path written).
  """
  # Imported here: sagan_tf.checkpoint imports the model builders, not this module.
  from sagan_tf import checkpoint as ckpt_lib
  from sagan_tf.config import Config

  _check_layout(layout)
  if not overwrite and (tf.io.gfile.exists(f"{output}/config.json")
                        or ckpt_lib.latest_checkpoint(output)):
    raise FileExistsError(
        f"{output!r} already holds a sagan_tf workdir; choose another output "
        f"(or pass overwrite=True).")
  generator, discriminator = load_tf1_checkpoint(source, layout, **dims)
  config = Config(image_size=generator.image_size,
                  num_classes=generator.num_classes, z_dim=generator.z_dim,
                  gf_dim=generator.gf_dim, df_dim=discriminator.df_dim,
                  g_attention=tuple(generator.attention_resolutions),
                  d_attention=tuple(discriminator.attention_resolutions),
                  variant=layout).validate()
  path = ckpt_lib.save_models(output, config, generator, discriminator, step=0)
  return config, path
