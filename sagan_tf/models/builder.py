"""Builds the generator and discriminator described by a ``Config``: the one
builder that training, loading, conversion and the EMA all use.

``dtype_policy`` is the one way sagan_tf sets the Keras dtype policy: layers take
the global policy in force when they are built (e.g. ``mixed_bfloat16``).
"""
from __future__ import annotations

import contextlib
from typing import Optional, Union

import keras

from sagan_tf.config import Config
from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.generator import Generator


@contextlib.contextmanager
def dtype_policy(policy: Union[bool, str, None]):
  """Sets the global Keras dtype policy inside the block, then restores it.

  Args:
    policy: a policy name (``"float32"``, ``"mixed_bfloat16"``), True for
      ``"mixed_bfloat16"`` (``Config.mixed_precision``), or False/None to keep
      the current policy.
  """
  saved = keras.config.dtype_policy()
  name = "mixed_bfloat16" if policy is True else (policy or None)
  if name:
    keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(saved)


def build_generator(config: Config, name: str = "generator",
                    build: bool = True) -> Generator:
  """The ``Generator`` of ``config``, variables created if ``build``."""
  g = Generator(image_size=config.image_size, gf_dim=config.gf_dim,
                num_classes=config.num_classes, z_dim=config.z_dim,
                attention=config.g_attention, variant=config.variant,
                bn_group_size=config.bn_group_size, name=name)
  if build:
    g.build_variables()
  return g


def build_models(config: Config, build=True):
  """Returns (generator, discriminator) for ``config``, variables created if build."""
  g = build_generator(config, build=False)
  d = Discriminator(image_size=config.image_size, df_dim=config.df_dim,
                    num_classes=config.num_classes, attention=config.d_attention,
                    variant=config.variant)
  if build:
    g.build_variables()
    d.build_variables()
  return g, d


def config_of(generator: Generator,
              discriminator: Optional[Discriminator] = None) -> Config:
  """A Config with the model-shape fields of built models (the rest default).

  ``bn_group_size`` is not a model-shape field (the variables do not depend on
  it) and stays 0.
  """
  fields = dict(image_size=generator.image_size, num_classes=generator.num_classes,
                z_dim=generator.z_dim, gf_dim=generator.gf_dim,
                g_attention=tuple(generator.attention_resolutions),
                variant=generator.variant.name)
  if discriminator is not None:
    fields.update(df_dim=discriminator.df_dim,
                  d_attention=tuple(discriminator.attention_resolutions))
  return Config(**fields)
