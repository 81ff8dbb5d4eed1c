r"""Plots FID, class accuracy and precision/recall/coverage against step from a
workdir's eval results (PNG).

    python tools/plot_eval.py --workdir=runs/digits32 --output=docs/digits32_eval.png

Reads every WORKDIR/eval/metrics_<step>[_<bn mode>].json (written by launch.eval
or by training with --set=eval_every=N) of one BN-statistics mode (--bn_stats,
needed when there are several) and draws, with matplotlib, FID (left), class
accuracy (middle, when measured) and fidelity against diversity (right, when
measured: precision, recall and coverage, one line each) against the step:
labelled axes, a grid, every evaluation marked and the last value written beside
it. A generator that trades diversity for sharpness shows as precision rising
while recall falls.
"""
import argparse
import json
import os
import sys

import tensorflow as tf
# Figures only: no other part of the project needs matplotlib. The object API
# (Figure + the Agg canvas) leaves pyplot's global state alone.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sagan_tf.run import workdir as workdir_lib

_BLUE = "#1e5ac8"


def load_results(workdir):
  """Every eval/metrics_*.json of ``workdir``, as dicts (unsorted)."""
  results = []
  for path in sorted(tf.io.gfile.glob(os.path.join(
      workdir_lib.eval_dir(workdir), "metrics_*.json"))):
    with tf.io.gfile.GFile(path) as f:
      results.append(json.load(f))
  return results


def bn_mode(result):
  return result.get("bn_stats", {}).get("mode", "?")


def select(results, bn_stats=None, where="the workdir"):
  """The results of one BN-statistics mode, sorted by step.

  Raises:
    ValueError: no results, none of ``bn_stats``, or several modes and no
      ``bn_stats`` to pick one.
  """
  if not results:
    raise ValueError(f"No eval/metrics_*.json in {where}: evaluate it first "
                     f"(launch.eval, or train with --set=eval_every=N).")
  found = sorted({bn_mode(r) for r in results})
  if bn_stats:
    results = [r for r in results if bn_mode(r) == bn_stats]
    if not results:
      raise ValueError(f"No --bn_stats={bn_stats} results in {where} (it has "
                       f"{found}).")
  elif len(found) > 1:
    raise ValueError(f"{where} holds results of the BN modes {found}: pick one "
                     f"with --bn_stats.")
  return sorted(results, key=lambda r: r["step"])


def series(results):
  """([(step, FID)], [(step, class accuracy)] where measured) of sorted results."""
  fid = [(r["step"], r["metrics"]["FID"]) for r in results]
  acc = [(r["step"], r["metrics"]["class_accuracy"]) for r in results
         if r["metrics"].get("class_accuracy") is not None]
  return fid, acc


# The k-NN metrics of the right panel, with their line colours.
MANIFOLD = (("precision", "#e07b1a"), ("recall", _BLUE), ("coverage", "#3a9a3a"))


def manifold_series(results):
  """{name: [(step, value)]} of MANIFOLD's metrics, those measured at every step."""
  out = {}
  for name, _ in MANIFOLD:
    points = [(r["step"], r["metrics"][name]) for r in results
              if r["metrics"].get(name) is not None]
    if points and len(points) == len(results):
      out[name] = points
  return out


def _panel(ax, points, label, ylim=None, color=_BLUE, title=None):
  steps = [s for s, _ in points]
  values = [v for _, v in points]
  ax.plot(steps, values, "-o", color=color, linewidth=2, markersize=5,
          label=label)
  ax.set_xlabel("step")
  ax.set_ylabel(title or label)
  ax.set_title(title or label)
  ax.grid(True, alpha=0.3)
  if ylim is not None:
    ax.set_ylim(*ylim)
  ax.annotate(f"{values[-1]:.3g}", (steps[-1], values[-1]),
              textcoords="offset points", xytext=(6, 6), color=color)


def figure(fid, acc, title, manifold=None):
  """The matplotlib Figure: FID, class accuracy when ``acc`` is not empty, and
  the ``manifold_series`` lines in one panel when ``manifold`` is not empty."""
  manifold = manifold or {}
  panels = 1 + bool(acc) + bool(manifold)
  fig = Figure(figsize=(0.3 + 4.5 * panels, 3.6), dpi=100)
  FigureCanvasAgg(fig)
  axes = list(fig.subplots(1, panels, squeeze=False)[0])
  top = max(v for _, v in fid)
  _panel(axes.pop(0), fid, "FID (lower is better)", ylim=(0.0, 1.08 * top))
  if acc:
    _panel(axes.pop(0), acc, "class accuracy", ylim=(0.0, 1.0))
  if manifold:
    ax = axes.pop(0)
    for name, color in MANIFOLD:
      if name in manifold:
        _panel(ax, manifold[name], name, ylim=(0.0, 1.0), color=color,
               title="fidelity and diversity")
    ax.legend(loc="best", fontsize="small")
  fig.suptitle(title)
  fig.tight_layout()
  return fig


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True,
                      help="sagan_tf workdir with eval/ results.")
  parser.add_argument("--output", required=True, help="PNG to write.")
  parser.add_argument("--title", default=None,
                      help="Title (default: the workdir).")
  parser.add_argument("--bn_stats", default=None,
                      help="Plot the results of this BN-statistics mode "
                      "(needed when the workdir holds several).")
  args = parser.parse_args(argv)
  try:
    results = select(load_results(args.workdir), args.bn_stats,
                     where=repr(args.workdir))
  except ValueError as e:
    print(f"plot_eval.py: {e}", file=sys.stderr)
    return 2
  fid, acc = series(results)
  title = (f"{args.title or args.workdir}  (BN statistics: "
           f"{bn_mode(results[0])})")
  fig = figure(fid, acc, title, manifold_series(results))
  with tf.io.gfile.GFile(args.output, "wb") as f:
    fig.savefig(f, format="png")
  print(args.output)
  return 0


if __name__ == "__main__":
  sys.exit(main())
