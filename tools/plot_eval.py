r"""Plots FID and class accuracy against step from a workdir's eval results (PNG).

    python tools/plot_eval.py --workdir=runs/digits32 --output=docs/digits32_eval.png

Reads every WORKDIR/eval/metrics_<step>[_<bn mode>].json (written by launch.eval
or by training with --set=eval_every=N) of one BN-statistics mode (--bn_stats,
needed when there are several) and draws two panels with PIL (no matplotlib):
FID (left) and class accuracy (right, when measured) against the step.
"""
import json
import os

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "sagan_tf workdir with eval/ results.")
flags.DEFINE_string("output", None, "PNG to write.")
flags.DEFINE_string("title", None, "Title (default: the workdir).")
flags.DEFINE_string("bn_stats", None, "Plot the results of this BN-statistics "
                    "mode (needed when the workdir holds several).")
flags.mark_flags_as_required(["workdir", "output"])

W, H, PAD = 360, 240, 40


def _panel(draw, x0, points, name, lo=None, hi=None):
  from PIL import ImageDraw  # noqa: F401  pylint: disable=g-import-not-at-top
  steps = [s for s, _ in points]
  values = [v for _, v in points]
  lo = min(values) if lo is None else lo
  hi = max(values) if hi is None else hi
  hi = hi if hi > lo else lo + 1
  s_lo, s_hi = min(steps), max(max(steps), min(steps) + 1)
  box = (x0 + PAD, PAD, x0 + W - 10, H - PAD)
  draw.rectangle(box, outline="black")
  to_xy = lambda s, v: (box[0] + (s - s_lo) / (s_hi - s_lo) * (box[2] - box[0]),
                        box[3] - (v - lo) / (hi - lo) * (box[3] - box[1]))
  xy = [to_xy(s, v) for s, v in points]
  if len(xy) > 1:
    draw.line(xy, fill=(30, 90, 200), width=2)
  for x, y in xy:
    draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(30, 90, 200))
  draw.text((box[0], 8), name, fill="black")
  draw.text((box[0] - 36, box[1] - 4), f"{hi:.3g}", fill="black")
  draw.text((box[0] - 36, box[3] - 8), f"{lo:.3g}", fill="black")
  draw.text((box[0], box[3] + 6), f"step {s_lo}", fill="black")
  draw.text((box[2] - 60, box[3] + 6), f"{s_hi}", fill="black")
  s, v = points[-1]
  draw.text((box[2] - 90, box[1] + 6), f"last {v:.3f}", fill=(30, 90, 200))


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  from sagan_tf import images  # pylint: disable=g-import-not-at-top
  results = []
  from sagan_tf.run import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  for path in sorted(tf.io.gfile.glob(os.path.join(
      workdir_lib.eval_dir(FLAGS.workdir), "metrics_*.json"))):
    with tf.io.gfile.GFile(path) as f:
      results.append(json.load(f))
  if not results:
    raise app.UsageError(f"No eval/metrics_*.json in {FLAGS.workdir!r}.")
  mode_of = lambda r: r.get("bn_stats", {}).get("mode", "?")
  found = sorted({mode_of(r) for r in results})
  if FLAGS.bn_stats:
    results = [r for r in results if mode_of(r) == FLAGS.bn_stats]
    if not results:
      raise app.UsageError(f"No --bn_stats={FLAGS.bn_stats} results in "
                           f"{FLAGS.workdir!r} (it has {found}).")
  elif len(found) > 1:
    raise app.UsageError(f"{FLAGS.workdir!r} holds results of the BN modes "
                         f"{found}: pick one with --bn_stats.")
  results.sort(key=lambda r: r["step"])
  fid = [(r["step"], r["metrics"]["FID"]) for r in results]
  acc = [(r["step"], r["metrics"]["class_accuracy"]) for r in results
         if r["metrics"].get("class_accuracy") is not None]
  canvas = Image.new("RGB", (2 * W, H + 16), "white")
  draw = ImageDraw.Draw(canvas)
  _panel(draw, 0, fid, "FID (digit classifier features)", lo=0.0)
  if acc:
    _panel(draw, W, acc, "class accuracy", lo=0.0, hi=1.0)
  modes = sorted({r.get("bn_stats", {}).get("mode", "?") for r in results})
  draw.text((PAD, H), f"{FLAGS.title or FLAGS.workdir}  (BN statistics: "
            f"{', '.join(modes)})", fill="black")
  import numpy as np  # pylint: disable=g-import-not-at-top
  images.save_png(FLAGS.output, np.asarray(canvas))
  print(FLAGS.output)


if __name__ == "__main__":
  app.run(main)
