"""Written-out name maps from TF1 SAGAN checkpoints to sagan_tf's Keras variables.

One entry per Keras variable: ``(checkpoint name, Keras variable, checkpoint
shape)``; ``sagan_tf.interop.convert`` checks every shape and assigns. Two layouts:

* ``"official"``: brain-research/self-attention-gan, every variable under
  ``model/``. Variables ``w``/``Matrix``/``biases``/``bias``/``u``,
  ``embedding_map``, CBN ``gamma``/``beta``/``mean``/``var``, ``g_bn``
  ``gamma``/``beta``/``moving_mean``/``moving_variance``. Every shape equals ours.
* ``"tfgan_estimator"``: TF-GAN ``examples/self_attention_estimator``, scopes
  ``generator/`` and ``discriminator/`` (bare, when its network functions are
  called directly) or ``Generator/generator/`` and ``Discriminator/discriminator/``
  (what ``GANEstimator``/``TPUGANEstimator`` write: ``tfgan.gan_model`` opens
  ``variable_scope('Generator')``/``('Discriminator')`` around them). ``tf.layers``
  names (``snconv1/snconv1/kernel``, ``g_snh0/dense/kernel``), attention under
  ``g_ops``/``d_ops``, and ``u`` stored as ``<kernel scope>/<full kernel
  name>/spectral_normalize/spectral_norm/spectral_norm_u`` (the full name, outer
  scope included, repeated: TF-GAN's custom getter opens a variable scope named
  after the variable). The embedding's ``u`` is
  ``d_embedding/spectral_normalize/spectral_norm/spectral_norm_u``. Two layouts
  differ from ours and are reshaped: CBN gamma/beta ``[classes, 1, 1, C]`` ->
  ``[classes, C]`` with moving statistics ``[C]`` -> ``[1, 1, 1, C]``; ``g_bn``
  gamma/beta ``[1, 1, 1, C]`` -> ``[C]``.

A ``Scopes`` names the generator's and the discriminator's scope in a checkpoint
(``BASE_SCOPES`` are the bare ones); ``sagan_tf.interop.convert.detect_scopes`` finds them.

Checkpoint variables that are not model state are recognised by
``is_training_state``: optimiser slots (last name component ``Adam``, ``Adam_<n>``,
``Momentum``, ``RMSProp``...), ``beta1_power``/``beta2_power`` (with ``_<n>``
suffixes, at any scope: TF-GAN's ``gan_train_ops`` puts them under
``generator_train/`` and ``discriminator_train/``), ``global_step``, the
``dummy_global_step_*`` of TF-GAN's sync-replicas training, and the official
``d_step``/``g_step`` counters.
"""
from __future__ import annotations

import re
from typing import NamedTuple

LAYOUTS = ("official", "tfgan_estimator")

_SLOT_RE = re.compile(
    r"^(Adam|Adam_\d+|Momentum|Momentum_\d+|RMSProp|RMSProp_\d+|Adagrad|"
    r"ExponentialMovingAverage)$")
_COUNTER_RE = re.compile(
    r"^(global_step|d_step|g_step|beta[12]_power(_\d+)?|"
    r"dummy_global_step_(generator|discriminator))$")

_TFGAN_U = "spectral_normalize/spectral_norm/spectral_norm_u"


class Scopes(NamedTuple):
  """The generator's and the discriminator's variable scope in a checkpoint."""
  generator: str
  discriminator: str


BASE_SCOPES = {"official": Scopes("model", "model"),
               "tfgan_estimator": Scopes("generator", "discriminator")}

# The variable each layout's generator / discriminator is recognised by, relative
# to its scope (``sagan_tf.interop.convert.detect_scopes``).
PROBES = {"official": Scopes("g_snh0/Matrix", "d_optimized_block1/sn_conv1/w"),
          "tfgan_estimator": Scopes("g_snh0/dense/kernel",
                                    "d_optimized_block1/sn_conv1/sn_conv1/kernel")}


def is_training_state(name: str) -> bool:
  """True for checkpoint variables that are optimiser/step state, not the model."""
  leaf = name.rsplit("/", 1)[-1]
  return bool(_SLOT_RE.match(leaf) or _COUNTER_RE.match(leaf))


def check_layout(layout):
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")


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


def generator_name_map(generator, layout: str, scope: str | None = None):
  """[(checkpoint name, Keras variable, checkpoint shape)] for a built generator.

  Args:
    generator: a built ``sagan_tf.models.generator.Generator``.
    layout: ``"official"`` or ``"tfgan_estimator"``.
    scope: the generator's scope in the checkpoint; None: the bare one
      (``BASE_SCOPES``), e.g. ``"Generator/generator"`` for a TF-GAN estimator.
  """
  check_layout(layout)
  s = scope or BASE_SCOPES[layout].generator
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


def discriminator_name_map(discriminator, layout: str, scope: str | None = None):
  """[(checkpoint name, Keras variable, checkpoint shape)] for a built D.

  Args:
    discriminator: a built ``sagan_tf.models.discriminator.Discriminator``.
    layout: ``"official"`` or ``"tfgan_estimator"``.
    scope: the discriminator's scope in the checkpoint; None: the bare one.
  """
  check_layout(layout)
  s = scope or BASE_SCOPES[layout].discriminator
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


def probe_names(layout: str, scopes: Scopes) -> dict:
  """Checkpoint names of the tensors ``sagan_tf.interop.convert.infer_config`` reads."""
  g, d = scopes
  if layout == "official":
    return dict(
        g_in=f"{g}/g_snh0/Matrix", g_block=f"{g}/g_block{{i}}/snconv1/w",
        g_attn=f"{g}/g_non_local/sn_conv_theta/w",
        d_first=f"{d}/d_optimized_block1/sn_conv1/w",
        d_attn=f"{d}/d_non_local/sn_conv_theta/w",
        emb=f"{d}/d_embedding/embedding_map")
  return dict(
      g_in=f"{g}/g_snh0/dense/kernel",
      g_block=f"{g}/g_block{{i}}/snconv1/snconv1/kernel",
      g_attn=f"{g}/g_ops/sn_conv_theta/weights",
      d_first=f"{d}/d_optimized_block1/sn_conv1/sn_conv1/kernel",
      d_attn=f"{d}/d_ops/sn_conv_theta/weights",
      emb=f"{d}/d_embedding/embedding_map")
