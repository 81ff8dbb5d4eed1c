"""Architecture tables (block layouts per image size) and numerics variants.

One generator and one discriminator class serve every size; this module holds the
data that tells them apart (compare_gan-style channel tables), so there are no
copy-pasted variants as in the official ``generator_test``/``generator_test_64``.

Block layouts (channel multipliers of gf_dim / df_dim):

* 128 (the official ``generator_test``/``discriminator_test``): G z -> 4x4x16gf, up
  blocks 16, 8, 4, 2, 1 (8 -> 128 px), attention after the 32x32 block; D optimized
  block 1 (64 px), blocks 2, 4, 8, 16 (downsampling), 16 (no downsampling),
  attention after the 32x32 block. With 1000 classes and gf=df=64 this is exactly
  the official graph: G 42,078,852 and D 39,463,618 trainable parameters.
* 64: the 128 layout with its widest downsampling stage dropped on each side: G up
  blocks 16, 8, 4, 2 (8 -> 64 px); D optimized block 1 (32 px), blocks 2, 4, 8
  (downsampling), 16 (no downsampling). Attention at 32x32 in both, the resolution
  the paper found best at 128 and the one whose cost (HW x HW/4 map) stays modest;
  the official ``*_test_64`` variants move it to 64x64, which users can choose with
  ``g_attention=(64,)``.
* 32 (CIFAR-10): the SN-GAN ResNet layout with constant width: G z -> 4x4x4gf, up
  blocks 4, 4, 4 (8 -> 32 px); D optimized block 4 (16 px), block 4 (8 px), two
  blocks 4 without downsampling. Attention at 16x16 in both: the middle feature map,
  since at 32x32 the generator's attention would act on its last block only.
  With gf=df=64 the channels are 256 in both. In G that is the width of SN-GAN's
  official 32x32 ResNet generator (chainer sngan_projection ``ch=256``) and of
  mmgeneration's ``sngan_proj_32x32``; in D it is BigGAN's 32x32 table
  (BigGAN-PyTorch ``D_arch[32]``: four blocks of 4*ch, the same downsampling, at
  its default ch=64). SN-GAN's official 32x32 discriminator and mmgeneration's
  ``sngan_proj_32x32`` are narrower, 128 channels: ``df_dim=32`` gives that width.

Numerics variants: ``official`` (brain-research code) and ``tfgan_estimator`` (the
TF-GAN ``examples/self_attention_estimator`` port, needed to load its checkpoints).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class Architecture:
  g_in: int  # channel multiplier of the 4x4 map produced by the first dense layer
  g_blocks: Tuple[int, ...]  # output channel multiplier of each x2 up block
  d_blocks: Tuple[Tuple[int, bool], ...]  # (channel multiplier, downsample)
  g_attention: Tuple[int, ...]  # resolutions after which attention sits
  d_attention: Tuple[int, ...]


ARCHITECTURES = {
    128: Architecture(16, (16, 8, 4, 2, 1),
                      ((1, True), (2, True), (4, True), (8, True), (16, True),
                       (16, False)), (32,), (32,)),
    64: Architecture(16, (16, 8, 4, 2),
                     ((1, True), (2, True), (4, True), (8, True), (16, False)),
                     (32,), (32,)),
    32: Architecture(4, (4, 4, 4),
                     ((4, True), (4, True), (4, False), (4, False)), (16,), (16,)),
}


def architecture(image_size: int) -> Architecture:
  if image_size not in ARCHITECTURES:
    raise ValueError(f"image_size must be one of {sorted(ARCHITECTURES)}, "
                     f"got {image_size}.")
  return ARCHITECTURES[image_size]


@dataclasses.dataclass(frozen=True)
class Variant:
  """Numerics that differ between the official code and the TF-GAN port."""
  name: str
  u_space: str  # spectral-norm vector space: "out" (official) or "in" (TF-GAN)
  clip_sigma: bool  # W / max(1, sigma) in conv/dense/embedding (not attention)
  cbn_decay: float
  cbn_epsilon: float
  bn_decay: float
  bn_epsilon: float
  bn_bessel: bool
  g_update_u_at_inference: bool  # official G writes u on every forward
  d_update_u_on_fake: bool  # official D writes u on its real pass only
  # The train step reads u as TF 1.x RefVariables did in the official graph
  # (sagan_tf.training.step: D's fake pass reads u before the real pass writes it;
  # the SN W-gradients through u W^T take u' where u is written in the step).
  tf1_variable_reads: bool = False


VARIANTS = {
    "official": Variant("official", "out", False, 0.999, 1e-5, 0.9999, 1.001e-5,
                        True, True, False, tf1_variable_reads=True),
    "tfgan_estimator": Variant("tfgan_estimator", "in", True, 0.999, 1e-3, 0.999,
                               1e-3, False, False, True),
}


def variant(name: str) -> Variant:
  if name not in VARIANTS:
    raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {name!r}.")
  return VARIANTS[name]
