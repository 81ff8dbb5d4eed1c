"""tools/plot_eval.py: which results it plots, in what order, and the PNG."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.tools_import import load_tool

plot_eval = load_tool("plot_eval")


def _write(workdir, step, fid, acc=None, mode="standing"):
  folder = os.path.join(workdir, "eval")
  os.makedirs(folder, exist_ok=True)
  metrics = {"FID": fid}
  if acc is not None:
    metrics["class_accuracy"] = acc
  with open(os.path.join(folder, f"metrics_{step:09d}_{mode}.json"), "w") as f:
    json.dump({"step": step, "metrics": metrics, "bn_stats": {"mode": mode}}, f)


def test_series_in_step_order_of_one_mode(tmp_path):
  w = str(tmp_path)
  _write(w, 1500, 58.6, 0.98)
  _write(w, 500, 49.8, 0.21)
  _write(w, 1000, 27.1, 0.62)
  _write(w, 1000, 99.0, 0.10, mode="moving")
  loaded = plot_eval.load_results(w)
  assert len(loaded) == 4
  shuffled = sorted(loaded, key=lambda r: -r["metrics"]["FID"])  # not by step
  fid, acc = plot_eval.series(plot_eval.select(shuffled, "standing"))
  assert fid == [(500, 49.8), (1000, 27.1), (1500, 58.6)]
  assert acc == [(500, 0.21), (1000, 0.62), (1500, 0.98)]
  with pytest.raises(ValueError, match=r"BN modes \['moving', 'standing'\].*--bn_stats"):
    plot_eval.select(plot_eval.load_results(w))
  with pytest.raises(ValueError, match=r"No --bn_stats=batch results"):
    plot_eval.select(plot_eval.load_results(w), "batch")


def test_figure_draws_the_points(tmp_path):
  fig = plot_eval.figure([(500, 49.8), (1000, 27.1)], [(500, 0.2), (1000, 0.6)],
                         "run")
  fid_ax, acc_ax = fig.axes
  np.testing.assert_allclose(fid_ax.lines[0].get_xydata(),
                             [[500, 49.8], [1000, 27.1]])
  np.testing.assert_allclose(acc_ax.lines[0].get_xydata(),
                             [[500, 0.2], [1000, 0.6]])
  assert acc_ax.get_ylim() == (0.0, 1.0) and fid_ax.get_ylim()[0] == 0.0
  assert fid_ax.get_xlabel() == "step"
  # Without class accuracy: one panel.
  assert len(plot_eval.figure([(5, 1.0)], [], "run").axes) == 1


def test_main_writes_a_png_and_fails_in_one_line(tmp_path, capsys):
  w = str(tmp_path / "w")
  _write(w, 500, 49.8, 0.21)
  _write(w, 1000, 27.1, 0.62)
  out = str(tmp_path / "eval.png")
  assert plot_eval.main([f"--workdir={w}", f"--output={out}"]) == 0
  with Image.open(out) as png:
    assert png.size == (930, 360)
    pixels = np.asarray(png.convert("RGB")).astype(int)
  # The blue of the curves is on the figure.
  blue = (abs(pixels - [0x1e, 0x5a, 0xc8]).sum(axis=-1) < 30).sum()
  assert blue > 100
  assert plot_eval.main([f"--workdir={tmp_path / 'empty'}", f"--output={out}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "No eval/metrics_*.json" in err[0]


def test_fidelity_and_diversity_panel(tmp_path):
  w = str(tmp_path)
  for step, p, r in ((1000, 0.3, 0.6), (500, 0.2, 0.7)):
    _write(w, step, 50.0, 0.5)
    path = os.path.join(w, "eval", f"metrics_{step:09d}_standing.json")
    with open(path) as f:
      result = json.load(f)
    result["metrics"].update(precision=p, recall=r, coverage=0.9)
    with open(path, "w") as f:
      json.dump(result, f)
  results = plot_eval.select(plot_eval.load_results(w))
  manifold = plot_eval.manifold_series(results)
  assert manifold == {"precision": [(500, 0.2), (1000, 0.3)],
                      "recall": [(500, 0.7), (1000, 0.6)],
                      "coverage": [(500, 0.9), (1000, 0.9)]}
  fig = plot_eval.figure(*plot_eval.series(results), "run", manifold)
  assert len(fig.axes) == 3
  right = fig.axes[2]
  assert [line.get_label() for line in right.lines] == [
      "precision", "recall", "coverage"]
  np.testing.assert_allclose(right.lines[1].get_xydata(), [[500, 0.7], [1000, 0.6]])
  assert right.get_ylim() == (0.0, 1.0)
  # A metric missing at some step is left out rather than drawn with gaps.
  del results[0]["metrics"]["recall"]
  assert set(plot_eval.manifold_series(results)) == {"precision", "coverage"}
  out = str(tmp_path / "eval.png")
  assert plot_eval.main([f"--workdir={w}", f"--output={out}"]) == 0
  with Image.open(out) as png:
    assert png.size == (1380, 360)
