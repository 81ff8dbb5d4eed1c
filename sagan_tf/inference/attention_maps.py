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
  The figure is drawn with matplotlib (a dependency for figures only, imported
  when one is drawn).

Maps are computed with ``training=False, update_u=False``: looking at attention
changes neither the spectral-norm vectors nor the BN statistics.

There is no official counterpart (the official code does not export attention maps);
this module and ``SelfAttention(return_attention=True)`` are additions.
"""
from __future__ import annotations

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


# Figure layout in pixels: column titles above, row labels on the left.
_TOP, _LEFT, _DPI = 20, 18, 100


def _figure_size(rows: int, cols: int, panel: int, pad: int) -> Tuple[int, int]:
  """(height, width) in pixels of the attention figure."""
  return _TOP + rows * (panel + pad), _LEFT + cols * (panel + pad)


def render_attention_figure(images, maps: Dict[int, np.ndarray],
                            queries: Sequence[Query], path: Optional[str] = None,
                            panel_size: int = 128, pad: int = 4) -> np.ndarray:
  """Draws the paper's figure with matplotlib: per sample and block, the image
  with the queries marked, then one heat map per query over the image.

  Each heat map is scaled by its own maximum (matplotlib's ``jet``, more opaque
  where the attention is higher, so the image stays readable); the query it
  belongs to is the ringed dot of the same colour; column titles name the query
  pixels, row labels the sample and the block's resolution.

  Args:
    images: `[N, S, S, 3]` in [-1, 1] (float) or uint8.
    maps: {r: `[N, Q, r/2, r/2]`} from ``attention_maps``.
    queries: the Q image pixels `(y, x)` the maps belong to.
    path: where to write the PNG (optional).
    panel_size: the side of each panel in pixels.
    pad: space between panels in pixels.

  Returns:
    The figure, uint8 `[20 + rows*(P+pad), 18 + (1+Q)*(P+pad), 3]` with one row
    per (sample, resolution) pair, P = ``panel_size``; the panel of row i and
    column j starts at pixel (20 + i*(P+pad), 18 + j*(P+pad)).
  """
  # Figures only: the rest of sagan_tf runs without matplotlib. The object API
  # (Figure + the Agg canvas) leaves pyplot's global state alone.
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = images_lib.to_uint8(images)
  n, s = images.shape[0], images.shape[1]
  rows = [(i, res) for i in range(n) for res in sorted(maps)]
  for res in sorted(maps):
    if np.asarray(maps[res]).shape[1] != len(queries):
      raise ValueError(f"Maps at {res} have {np.asarray(maps[res]).shape[1]} "
                       f"queries, expected {len(queries)}.")
  cols = 1 + len(queries)
  height, width = _figure_size(len(rows), cols, panel_size, pad)
  fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, facecolor="white")
  canvas = FigureCanvasAgg(fig)
  font = dict(fontsize=7)
  colour = lambda j: np.array(_MARKER_COLOURS[j % len(_MARKER_COLOURS)]) / 255.0
  radius = max(3.0, 0.04 * panel_size)  # marker size in points at 100 dpi
  for r_i, (i, res) in enumerate(rows):
    heat = upsample_maps(np.asarray(maps[res])[i], s)  # [Q, S, S]
    for c_i in range(cols):
      left = _LEFT + c_i * (panel_size + pad)
      top = _TOP + r_i * (panel_size + pad)
      ax = fig.add_axes([left / width, 1 - (top + panel_size) / height,
                         panel_size / width, panel_size / height])
      ax.set_axis_off()
      ax.imshow(images[i], interpolation="nearest")
      if c_i:
        h = heat[c_i - 1]
        peak = float(h.max())
        t = h / peak if peak > 0 else h
        ax.imshow(t, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.25 + 0.5 * t,
                  interpolation="nearest")
      marked = range(len(queries)) if c_i == 0 else [c_i - 1]
      for j in marked:
        y, x = queries[j]
        ax.plot([x], [y], "o", markersize=radius, markerfacecolor=colour(j),
                markeredgecolor="black", markeredgewidth=1.0)
      ax.set_xlim(-0.5, s - 0.5)
      ax.set_ylim(s - 0.5, -0.5)
      if r_i == 0:
        name = "queries" if c_i == 0 else f"query {tuple(queries[c_i - 1])}"
        fig.text((left + panel_size / 2) / width, 1 - (_TOP / 2) / height, name,
                 ha="center", va="center", **font)
      if c_i == 0:
        fig.text((_LEFT / 2) / width, 1 - (top + panel_size / 2) / height,
                 f"sample {i}, {res}x{res}", rotation=90, ha="center",
                 va="center", **font)
  canvas.draw()
  out = np.array(canvas.buffer_rgba())[..., :3]
  assert out.shape[:2] == (height, width), (out.shape, height, width)
  if path is not None:
    images_lib.save_png(path, out)
  return out


def attention_summary(images, maps, queries, step, name="attention_maps",
                      **render_kwargs) -> np.ndarray:
  """Writes the figure as a TensorBoard image summary to the default writer.

  Returns the figure (uint8 `[H, W, 3]`).
  """
  fig = render_attention_figure(images, maps, queries, **render_kwargs)
  tf.summary.image(name, fig[None], step=step)
  return fig
