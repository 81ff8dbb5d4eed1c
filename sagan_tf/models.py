"""Builds the generator and discriminator described by a ``Config``."""
from __future__ import annotations

from sagan_tf.config import Config
from sagan_tf.discriminator import Discriminator
from sagan_tf.generator import Generator


def build_models(config: Config, build=True):
  """Returns (generator, discriminator) for ``config``, variables created if build."""
  g = Generator(image_size=config.image_size, gf_dim=config.gf_dim,
                num_classes=config.num_classes, z_dim=config.z_dim,
                attention=config.g_attention, variant=config.variant,
                bn_group_size=config.bn_group_size)
  d = Discriminator(image_size=config.image_size, df_dim=config.df_dim,
                    num_classes=config.num_classes, attention=config.d_attention,
                    variant=config.variant)
  if build:
    g.build_variables()
    d.build_variables()
  return g, d
