"""Attention maps of the generator's self-attention blocks, as arrays and figures.

The SAGAN paper (Zhang et al. 2019, Fig. 1 and 5) shows, for a few query locations
of a generated image, where the last generator attention layer looks. For each
attention block at resolution ``r`` the generator returns
``attn [N, r*r, r*r/4]``: one row per query position (row-major ``y * r + x``), one
column per *key* position, the keys being the 2x2-max-pooled ``(r/2) x (r/2)`` grid
(row-major). Here:

* a query pixel ``(y, x)`` of the ``S x S`` output image maps to the block position
  ``(y * r // S, x * r // S)`` (the block pixel that covers it);
* its row, reshaped to ``[r/2, r/2]``, is the attention distribution (sums to 1);
* for display it is upsampled with nearest neighbours to ``S x S`` (each key cell
  covers ``2S/r x 2S/r`` image pixels). ``upsample_maps`` divides by that cell area
  so the upsampled map still sums to 1; the figure scales each overlay by its own
  maximum, so colours compare locations within one map, not across maps.

Maps are computed with ``training=False, update_u=False``: looking at attention
changes neither the spectral-norm vectors nor the BN statistics.

There is no official counterpart (the official code does not export attention maps);
this module and ``SelfAttention(return_attention=True)`` are additions.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from sagan_tf import images as images_lib

Query = Tuple[int, int]

# Distinct marker colours for the queries (RGB).
_MARKER_COLOURS = ((0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0),
                   (255, 128, 0), (128, 128, 255), (255, 255, 255), (255, 0, 0))


def query_position(query: Query, image_size: int, resolution: int) -> Tuple[int, int]:
  """Block position `(row, col)` at ``resolution`` of an image pixel `(y, x)`."""
  y, x = (int(q) for q in query)
  if not (0 <= y < image_size and 0 <= x < image_size):
    raise ValueError(f"Query {query} lies outside the {image_size}x{image_size} "
                     f"image.")
  return y * resolution // image_size, x * resolution // image_size


def select_queries(attn, resolution: int, image_size: int,
                   queries: Sequence[Query]) -> np.ndarray:
  """Picks the query rows of one block's attention and lays the keys out in 2-D.

  Args:
    attn: `[N, r*r, r*r/4]` attention of the block at ``resolution`` r.
    resolution: r, the block's spatial size.
    image_size: S, the output image size the queries refer to.
    queries: image pixels `(y, x)`.

  Returns:
    float32 `[N, Q, r/2, r/2]`; each `[r/2, r/2]` map sums to 1.
  """
  attn = np.asarray(attn, np.float32)
  r, k = int(resolution), int(resolution) // 2
  if attn.shape[1:] != (r * r, k * k):
    raise ValueError(f"Attention at resolution {r} should be [N, {r * r}, "
                     f"{k * k}], got {attn.shape}.")
  rows = []
  for q in queries:
    qy, qx = query_position(q, image_size, r)
    rows.append(attn[:, qy * r + qx, :])
  return np.stack(rows, axis=1).reshape(attn.shape[0], len(queries), k, k)


def parse_queries(text: Optional[str]):
  """"y,x;y,x" -> [(y, x), ...]; "" or None -> None."""
  if not text or not str(text).strip():
    return None
  out = []
  for part in str(text).replace(" ", "").split(";"):
    if not part:
      continue
    yx = part.split(",")
    if len(yx) != 2:
      raise ValueError(f"query {part!r} is not 'y,x'.")
    out.append((int(yx[0]), int(yx[1])))
  return out


def default_queries(image_size: int):
  """Four queries, one per quadrant centre: `(S/4, S/4)`, `(S/4, 3S/4)`...."""
  a, b = image_size // 4, (3 * image_size) // 4
  return [(a, a), (a, b), (b, a), (b, b)]


def generate_with_attention(generator, z, labels):
  """Images `[N, S, S, 3]` in [-1, 1] and the raw maps {r: `[N, r*r, r*r/4]`}.

  Inference mode without any state change (``training=False, update_u=False``).
  """
  images, raw = generator(tf.convert_to_tensor(z, tf.float32),
                          tf.convert_to_tensor(labels, tf.int32),
                          training=False, update_u=False, return_attention=True)
  return images.numpy(), {r: a.numpy() for r, a in raw.items()}


def attention_maps(generator, z, labels, queries: Sequence[Query],
                   return_images: bool = False):
  """Attention distributions of each generator attention block for the queries.

  Args:
    generator: a ``sagan_tf.models.generator.Generator`` with at least one attention block.
    z: `[N, z_dim]` noise; labels: `[N]` int classes.
    queries: pixels `(y, x)` of the output image.
    return_images: also return the generated images.

  Returns:
    {resolution r: float32 `[N, Q, r/2, r/2]`}, each map summing to 1 (and the
    images `[N, S, S, 3]` in [-1, 1] first when ``return_images``).
  """
  images, raw = generate_with_attention(generator, z, labels)
  if not raw:
    raise ValueError("The generator has no attention block.")
  size = images.shape[1]
  maps = {r: select_queries(a, r, size, queries) for r, a in sorted(raw.items())}
  return (images, maps) if return_images else maps


def upsample_maps(maps, image_size: int) -> np.ndarray:
  """Nearest-neighbour upsampling `[..., k, k]` -> `[..., S, S]`, still summing to 1.

  Each key cell covers `(S/k)^2` pixels, whose values are divided by that area.
  """
  maps = np.asarray(maps, np.float32)
  k = maps.shape[-1]
  if image_size % k:
    raise ValueError(f"Image size {image_size} is not a multiple of the key grid "
                     f"{k}.")
  f = image_size // k
  up = np.repeat(np.repeat(maps, f, axis=-2), f, axis=-1)
  return up / float(f * f)


def _heat_colours(t):
  """A jet-like colour map: t in [0, 1] `[...]` -> RGB floats in [0, 1] `[..., 3]`."""
  t = np.clip(t, 0.0, 1.0)[..., None]
  centres = np.array([0.75, 0.5, 0.25], np.float32)  # r, g, b
  return np.clip(1.5 - np.abs(4.0 * t - 4.0 * centres), 0.0, 1.0)


def _overlay(image_u8, heat):
  """Blends a heat map `[H, W]` (any scale) over a uint8 image `[H, W, 3]`.

  The map is scaled by its maximum; the colour covers the image more where the
  attention is higher (opacity 0.25 to 0.75), so the image stays readable.
  """
  peak = float(heat.max())
  t = heat / peak if peak > 0 else heat
  alpha = (0.25 + 0.5 * t)[..., None]
  mixed = (1 - alpha) * image_u8.astype(np.float32) / 255.0 + alpha * _heat_colours(t)
  return np.clip(mixed * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _mark(panel, point, colour, radius):
  """Draws a ring with a dot at `point` (y, x) of a uint8 panel (in place)."""
  h, w, _ = panel.shape
  yy, xx = np.mgrid[0:h, 0:w]
  d2 = (yy - point[0]) ** 2 + (xx - point[1]) ** 2
  ring = (d2 <= radius ** 2) & (d2 >= (radius - 1.5) ** 2)
  panel[ring] = (0, 0, 0)
  panel[(d2 <= (radius - 1.5) ** 2) & (d2 >= (radius - 3) ** 2)] = colour
  panel[d2 <= 1] = colour


def render_attention_figure(images, maps: Dict[int, np.ndarray],
                            queries: Sequence[Query], path: Optional[str] = None,
                            panel_size: int = 128, pad: int = 4) -> np.ndarray:
  """Draws the paper's figure: per sample and block, the image with the queries
  marked, then one heat-map overlay per query.

  Args:
    images: `[N, S, S, 3]` in [-1, 1] (float) or uint8.
    maps: {r: `[N, Q, r/2, r/2]`} from ``attention_maps``.
    queries: the Q image pixels `(y, x)` the maps belong to.
    path: where to write the PNG (optional).
    panel_size: minimum panel side; images are enlarged by an integer factor.
    pad: white space between panels.

  Returns:
    The figure, uint8 `[rows*(P+pad)-pad, (1+Q)*(P+pad)-pad, 3]` with one row per
    (sample, resolution) pair, P the panel side.
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = images_lib.to_uint8(images)
  n, s = images.shape[0], images.shape[1]
  scale = max(1, math.ceil(panel_size / s))
  p = s * scale
  radius = max(3, p // 24)
  centre = lambda q: (int(q[0]) * scale + scale // 2, int(q[1]) * scale + scale // 2)
  rows = []
  for i in range(n):
    big = np.repeat(np.repeat(images[i], scale, 0), scale, 1)
    for res in sorted(maps):
      m = np.asarray(maps[res])[i]
      if m.shape[0] != len(queries):
        raise ValueError(f"Maps at {res} have {m.shape[0]} queries, expected "
                         f"{len(queries)}.")
      first = big.copy()
      for j, q in enumerate(queries):
        _mark(first, centre(q), _MARKER_COLOURS[j % len(_MARKER_COLOURS)], radius)
      panels = [first]
      heat = upsample_maps(m, p)  # [Q, p, p]
      for j, q in enumerate(queries):
        panel = _overlay(big, heat[j])
        _mark(panel, centre(q), _MARKER_COLOURS[j % len(_MARKER_COLOURS)], radius)
        panels.append(panel)
      rows.append(panels)
  cols = 1 + len(queries)
  fig = np.full((len(rows) * (p + pad) - pad, cols * (p + pad) - pad, 3), 255,
                np.uint8)
  for r_i, panels in enumerate(rows):
    for c_i, panel in enumerate(panels):
      fig[r_i * (p + pad):r_i * (p + pad) + p,
          c_i * (p + pad):c_i * (p + pad) + p] = panel
  if path is not None:
    images_lib.save_png(path, fig)
  return fig


def attention_summary(images, maps, queries, step, name="attention_maps",
                      **render_kwargs) -> np.ndarray:
  """Writes the figure as a TensorBoard image summary to the default writer.

  Returns the figure (uint8 `[H, W, 3]`).
  """
  fig = render_attention_figure(images, maps, queries, **render_kwargs)
  tf.summary.image(name, fig[None], step=step)
  return fig
