"""tools/recipe_table.py: variants, resuming, the table and figure, end to end on
``tiny`` (both digit classifiers pre-placed in the cache with untrained weights,
so nothing trains them here)."""
import json
import os
import types

import numpy as np
import pytest
from matplotlib.container import BarContainer
from PIL import Image

from eval import digits_classifier as dc
from sagan_tf.run import workdir as workdir_lib
from tests.tools_import import load_tool

recipe_table = load_tool("recipe_table")


def _result(dataset, variant, seed, fid, recall=0.5, acc=0.9, seconds=10.0):
  metrics = dict(FID=fid, class_accuracy=acc, precision=0.4, recall=recall,
                 density=0.8, coverage=0.3)
  return dict(dataset=dataset, variant=variant, seed=seed, metrics=metrics,
              train_seconds=seconds)


def test_parse_variant_any_field_and_commas_in_values():
  v = recipe_table.parse_variant("att=tiny,g_attention=16,32,g_lr=2e-4")
  assert v.name == "att" and v.preset == "tiny"
  assert dict(v.sets) == {"g_attention": "16,32", "g_lr": "2e-4"}
  config = v.config("glyphs", 2, steps=7)
  assert config.g_attention == (16, 32) and config.g_lr == 2e-4
  assert (config.dataset, config.seed, config.train_steps) == ("glyphs", 2, 7)
  assert config.eval_every == 7  # tiny has none: the final evaluation
  assert v.spec() == "att=tiny,g_attention=16,32,g_lr=2e-4"
  assert recipe_table.parse_variant("base=digits32").config(
      "digits", 0).eval_every == 500  # the preset's own
  for bad in ("tiny", "a b=tiny", "x=nosuch", "x=tiny,no_field=1",
              "x=tiny,g_lr=fast", "x=tiny,seed=3"):
    with pytest.raises(ValueError):
      recipe_table.parse_variant(bad)


def test_summary_median_range_table_and_figure():
  results = [_result("digits", "a", s, fid, seconds=t) for s, fid, t in
             ((0, 10.0, 5.0), (1, 12.0, 9.0), (2, 30.0, 6.0))]
  results.append(_result("glyphs", "a", 0, 50.0, recall=0.25))
  results.append(_result("digits", "b", 0, 40.0, recall=0.75))
  table = recipe_table.summarise(results)
  assert table[("digits", "a")]["FID"] == (12.0, 10.0, 30.0, 3)
  assert table[("digits", "a")]["train_seconds"] == (6.0, 5.0, 9.0, 3)
  assert table[("glyphs", "a")]["recall"] == (0.25, 0.25, 0.25, 1)
  text = recipe_table.markdown(table, ["digits", "glyphs"], ["a", "b"], 3)
  rows = [l for l in text.splitlines() if l.startswith("| digits") or
          l.startswith("| glyphs")]
  assert rows[0].startswith(
      "| digits | a | 3 | 12.0 [10.0, 30.0] | 0.900 [0.900, 0.900] |")
  assert "| 6 [5, 9] |" in rows[0]
  assert rows[1].startswith("| digits | b | 1 | 40.0 | ")
  assert rows[2].startswith("| glyphs | a | 1 | 50.0 | ")
  assert len(rows) == 3  # (glyphs, b) has no result: no row
  fig = recipe_table.figure(table, ["digits", "glyphs"], ["a", "b"])
  fid_ax, recall_ax, acc_ax = fig.axes[:3]
  bars = lambda ax: [c for c in ax.containers if isinstance(c, BarContainer)]
  digits_bars = bars(fid_ax)[0]
  np.testing.assert_allclose([b.get_height() for b in digits_bars.patches],
                             [12.0, 40.0])
  np.testing.assert_allclose(bars(recall_ax)[1].patches[0].get_height(), 0.25)
  # The range bar of (digits, a) spans min to max.
  segments = digits_bars.errorbar.lines[2][0].get_segments()
  np.testing.assert_allclose([segments[0][0][1], segments[0][1][1]], [10.0, 30.0])
  assert acc_ax.get_ylim() == (0.0, 1.0)


class _FakeTrainer:
  """Steps to train_steps; each evaluation advances the fake clock by 100 s and
  each step by 1 s."""

  def __init__(self, clock, config, workdir, on_eval=None):
    self.clock, self.config, self.on_eval = clock, config, on_eval
    self.step = types.SimpleNamespace(numpy=lambda: 0)
    self.last_eval = None
    self.generator = "live"  # the EMA (sample model) is passed as "ema"

  def run(self, until):
    for step in range(1, until + 1):
      self.clock[0] += 1.0
      if step % self.config.eval_every == 0 or step == until:
        self.last_eval = self.on_eval(step, "ema")
    return types.SimpleNamespace(step=until, stopped=False)

  def close(self):
    pass


def test_train_seconds_leave_out_the_evaluations(tmp_path, monkeypatch):
  clock = [0.0]

  def evaluator(step, generator):
    clock[0] += 100.0
    return dict(metrics=dict(FID=float(step)))
  monkeypatch.setattr(recipe_table.time, "perf_counter", lambda: clock[0])
  monkeypatch.setattr(recipe_table.train_eval, "make_train_evaluator",
                      lambda *a, **k: evaluator)
  monkeypatch.setattr(recipe_table.train_lib, "Trainer",
                      lambda config, workdir, on_eval: _FakeTrainer(
                          clock, config, workdir, on_eval))
  monkeypatch.setattr(recipe_table.state_lib, "set_process_switches",
                      lambda config: None)
  variant = recipe_table.parse_variant("v=tiny,eval_every=2")
  result = recipe_table.run_one(str(tmp_path), variant, "digits", 0,
                                types.SimpleNamespace(identity="fake"), None,
                                steps=5)
  assert result["train_seconds"] == 5.0  # 5 steps, not the 3 evaluations
  assert result["eval_seconds"] == 300.0
  assert [e["step"] for e in result["evals"]] == [2, 4, 5]
  assert result["metrics"] == {"FID": 5.0}
  with open(recipe_table.result_file(str(tmp_path), "digits", "v", 0)) as f:
    assert json.load(f)["spec"] == "v=tiny,eval_every=2"


def test_an_ema_run_also_measures_its_live_generator(tmp_path, monkeypatch,
                                                    capsys):
  """With ema_decay > 0 each evaluation also scores trainer.generator (the live
  one), and the table gets a '<name>-live' row from the same run; without an
  EMA there is no second evaluation and no such row."""
  clock, seen = [0.0], []

  def evaluator(step, generator):
    seen.append((step, generator))
    return dict(metrics=dict(FID=float(step) + (0.5 if generator == "live"
                                                 else 0.0)))
  monkeypatch.setattr(recipe_table.time, "perf_counter", lambda: clock[0])
  monkeypatch.setattr(recipe_table.train_eval, "make_train_evaluator",
                      lambda *a, **k: evaluator)
  monkeypatch.setattr(recipe_table.train_eval, "load_named_classifier",
                      lambda name, **k: types.SimpleNamespace(identity=name))
  monkeypatch.setattr(recipe_table.train_lib, "Trainer",
                      lambda config, workdir, on_eval: _FakeTrainer(
                          clock, config, workdir, on_eval))
  monkeypatch.setattr(recipe_table.state_lib, "set_process_switches",
                      lambda config: None)
  out = str(tmp_path)
  args = ["recipe_table.py", f"--out={out}", "--variant=e=tiny,ema_decay=0.9,eval_every=2",
          "--variant=p=tiny", "--seeds=1", "--datasets=digits", "--steps=4",
          "--eval_num_samples=40"]
  assert recipe_table.main(args) == 0
  # e: EMA then live at steps 2 and 4; p (no EMA, tiny: the final one only).
  assert seen == [(2, "ema"), (2, "live"), (4, "ema"), (4, "live"), (4, "ema")]
  with open(recipe_table.result_file(out, "digits", "e", 0)) as f:
    r = json.load(f)
  assert r["metrics"] == {"FID": 4.0}
  assert r["live"]["metrics"] == {"FID": 4.5}
  assert [e["FID"] for e in r["live"]["evals"]] == [2.5, 4.5]
  printed = capsys.readouterr().out
  rows = [l for l in printed.splitlines() if l.startswith("| digits")]
  assert [l.split(" | ")[1:3] for l in rows] == [["e", "1"], ["e-live", "1"],
                                                 ["p", "1"]]
  assert rows[1].split(" | ")[3] == "4.5"
  # Read back (resumed): the same rows, nothing run again.
  del seen[:]
  assert recipe_table.main(args) == 0
  assert seen == [] and capsys.readouterr().out.strip() == printed.strip()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("recipe_cache"))
  for recipe in dc.RECIPES.values():
    weights = dc.build_model(recipe).get_weights()
    dc.save_cached(dc.cache_path(root, recipe), recipe, weights, 0.0)
  return root


def test_end_to_end_on_tiny(tmp_path, cache, capsys):
  out = str(tmp_path / "out")
  # One variant (not the preset's g_lr) on both sets: each run traces its own
  # train step; tables of several variants are test_summary's.
  args = ["recipe_table.py", f"--out={out}", "--variant=b=tiny,g_lr=3e-4",
          "--seeds=1", "--datasets=digits,glyphs", "--steps=2",
          "--eval_num_samples=40", f"--cache_dir={cache}"]
  assert recipe_table.main(args) == 0
  printed = capsys.readouterr().out
  for dataset in ("digits", "glyphs"):
    for variant in ("b",):
      with open(recipe_table.result_file(out, dataset, variant, 0)) as f:
        r = json.load(f)
      assert r["step"] == 2 and r["dataset"] == dataset and r["resumed_from"] == 0
      assert r["classifier"].startswith(f"{dataset}:")
      assert [e["step"] for e in r["evals"]] == [2]
      assert r["train_seconds"] > 0 and r["eval_seconds"] > 0
      m = r["metrics"]
      row = (f"| {dataset} | {variant} | 1 | {m['FID']:.1f} | "
             f"{m['class_accuracy']:.3f} | {m['precision']:.3f} | "
             f"{m['recall']:.3f} |")
      assert row in printed
      with open(os.path.join(r["workdir"], "config.json")) as f:
        config = json.load(f)
      assert config["dataset"] == dataset and config["seed"] == 0
      assert config["g_lr"] == (3e-4 if variant == "b" else 1e-4)
      grid = recipe_table.grid_file(out, dataset, variant, 0)
      with open(grid, "rb") as a, open(os.path.join(
          r["workdir"], "samples", "step_0000002.png"), "rb") as b:
        assert a.read() == b.read()
  with Image.open(os.path.join(out, "recipe_table.png")) as png:
    assert png.size == (1200, 380)
  with open(os.path.join(out, "recipe_table.md")) as f:
    assert f.read().strip() == printed.strip()



def _fake_runs(monkeypatch):
  """run_one replaced by one that writes a result (FID 10 + its rank) and no
  classifier loaded; returns the list of (variant, dataset, seed) it ran."""
  ran = []

  def fake_run(out_, variant, dataset, seed, *a, **k):
    ran.append((variant.name, dataset, seed))
    result = dict(_result(dataset, variant.name, seed, 10.0 + len(ran)), step=2,
                  spec=variant.spec())
    path = recipe_table.result_file(out_, dataset, variant.name, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump(result, f)
    return result
  monkeypatch.setattr(recipe_table, "run_one", fake_run)
  monkeypatch.setattr(recipe_table.train_eval, "load_named_classifier",
                      lambda name, **k: name)
  return ran


def test_resume_runs_only_what_is_missing(tmp_path, monkeypatch, capsys):
  out = str(tmp_path)
  args = ["recipe_table.py", f"--out={out}", "--variant=a=tiny",
          "--variant=b=tiny,g_lr=3e-4", "--seeds=2", "--datasets=digits,glyphs",
          "--steps=2"]
  ran = _fake_runs(monkeypatch)
  assert recipe_table.main(args) == 0
  assert len(ran) == 8
  first = capsys.readouterr().out
  os.remove(recipe_table.result_file(out, "glyphs", "b", 1))
  del ran[:]
  # Again with one more variant: only what is missing runs; the rest is read.
  assert recipe_table.main(args + ["--variant=c=tiny,d_lr=1e-4"]) == 0
  assert ran == [("c", "digits", 0), ("c", "digits", 1), ("b", "glyphs", 1),
                 ("c", "glyphs", 0), ("c", "glyphs", 1)]
  again = capsys.readouterr().out
  assert first.splitlines()[4] in again  # (digits, a): the same numbers
  assert "| digits | a | 2 | 11.5 [11.0, 12.0] |" in again
  # The same name for another variant (or length) is refused, in one line.
  assert recipe_table.main(args[:3] + ["--variant=b=tiny,g_lr=5e-4"]
                           + args[4:]) == 2
  assert recipe_table.main(args[:-1] + ["--steps=3"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 2 and "holds 'b=tiny,g_lr=3e-4' to step 2" in err[0]
  assert "not 'a=tiny' to step 3" in err[1]


def test_an_unfinished_run_of_another_config_is_refused(tmp_path, monkeypatch,
                                                        capsys):
  out = str(tmp_path)
  ran = _fake_runs(monkeypatch)
  variant = recipe_table.parse_variant("b=tiny,g_lr=3e-4")
  workdir = recipe_table.run_workdir(out, "digits", "b", 0)
  workdir_lib.save_config(workdir, variant.config("digits", 0, steps=2))
  args = ["recipe_table.py", f"--out={out}", "--seeds=1", "--datasets=digits",
          "--steps=2"]
  assert recipe_table.main(args + ["--variant=b=tiny,g_lr=5e-4"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "unfinished run" in err[0]
  assert "g_lr 0.0003 -> 0.0005" in err[0] and ran == []
  # The same variant resumes it.
  assert recipe_table.main(args + ["--variant=b=tiny,g_lr=3e-4"]) == 0
  assert ran == [("b", "digits", 0)]
