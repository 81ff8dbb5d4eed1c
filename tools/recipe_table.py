r"""Chooses a recipe by measurement: trains and evaluates named variants over seeds
and datasets, then prints one table and draws one figure.

    .venv/bin/python tools/recipe_table.py --out=runs/recipes \
        --variant=base=digits32 --variant=lr2e-4=digits32,g_lr=2e-4,d_lr=2e-4 \
        --seeds=3 --datasets=digits,glyphs

A variant is ``NAME=PRESET[,field=value...]``: a preset of ``sagan_tf.config``
and overrides of any Config field (a value may hold commas, e.g.
``g_attention=16,32``). Every (dataset, variant, seed) runs in process, one after
the other, in ``OUT/<dataset>/<variant>/seed<k>/run`` (a workdir, resumed if it
was interrupted) with ``Config.dataset`` and ``Config.seed`` set, the dataset's
own digit classifier (``eval.train_eval.default_classifier_name``) evaluating it
every ``eval_every`` steps and at the end (a config with ``eval_every=0``
evaluates at the end only). Its ``result.json`` beside the workdir holds the final
metrics, every evaluation of the run, its train seconds (wall time of the
training loop without the evaluations) and the spec (for a variant with an EMA
generator, ``ema_decay`` > 0, the live generator is evaluated beside the EMA at
every evaluation, and the table has a row ``<name>-live`` for it: the EMA does not
change training, so one run measures the recipe with and without it); a run whose ``result.json``
exists is not run again, and one interrupted under the same name with another
config is refused rather than resumed. The last sample grid of each run is copied to
``OUT/grids/<dataset>_<variant>_seed<k>.png``.

The table (also ``OUT/recipe_table.md``): per dataset and variant, the median of
the final FID, class accuracy, precision, recall, density, coverage and train
seconds over the seeds, with their range [min, max]. The figure
(``OUT/recipe_table.png``): per variant, median FID, recall and class accuracy,
one bar per dataset, the range as an error bar.
"""
import dataclasses
import json
import os
import re
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging
# The object API (Figure + the Agg canvas) leaves pyplot's global state alone.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval import evaluate
from eval import train_eval
from launch.overrides import parse_sets
from sagan_tf import config as config_lib
from sagan_tf.run import state as state_lib
from sagan_tf.run import workdir as workdir_lib
from sagan_tf.training import loop as train_lib

# Own flag set: the tool loads beside the launchers' absl flags (tests, notebooks).
FLAGS = flags.FlagValues()
flags.DEFINE_string("out", None, "Output folder (runs, results, table, figure).",
                    flag_values=FLAGS)
flags.DEFINE_multi_string(
    "variant", ["base=digits32"], "NAME=PRESET[,field=value...] (repeatable).",
    flag_values=FLAGS)
flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 (Config.seed) per variant.",
                     flag_values=FLAGS)
flags.DEFINE_list("datasets", ["digits", "glyphs"], "Datasets (Config.dataset).",
                  flag_values=FLAGS)
flags.DEFINE_integer("steps", None, "Override train_steps of every variant.",
                     flag_values=FLAGS)
flags.DEFINE_integer("eval_num_samples", train_eval.DEFAULT_NUM_SAMPLES,
                     "Generated samples per evaluation.", flag_values=FLAGS)
flags.DEFINE_string("real_split", None, "Split of the real images (default: the "
                    "config's, 'train'; 'test' for the glyphs' held-out split).",
                    flag_values=FLAGS)
flags.DEFINE_string("cache_dir", None, "Classifier and real-statistics cache "
                    "(default: $SAGAN_TF_CACHE_DIR or ~/.cache/sagan_tf).",
                    flag_values=FLAGS)

COLUMNS = (("FID", "FID"), ("class_accuracy", "class acc"),
           ("precision", "precision"), ("recall", "recall"),
           ("density", "density"), ("coverage", "coverage"),
           ("train_seconds", "train s"))
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_COLOURS = ("#1e5ac8", "#e07b1a", "#3a9a3a", "#b8338c")


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str
  preset: str
  sets: Tuple[Tuple[str, str], ...]

  def spec(self) -> str:
    return ",".join([f"{self.name}={self.preset}"] +
                    [f"{k}={v}" for k, v in self.sets])

  def config(self, dataset: str, seed: int, steps=None) -> config_lib.Config:
    """The run's Config; raises ValueError for a bad field or value."""
    overrides = dict(self.sets)
    if "dataset" in overrides or "seed" in overrides:
      raise ValueError(f"variant {self.name!r}: dataset and seed come from "
                       f"--datasets and --seeds.")
    overrides.update(dataset=dataset, seed=seed)
    if steps is not None:
      overrides["train_steps"] = steps
    config = config_lib.override(config_lib.from_preset(self.preset), overrides)
    if not config.eval_every:  # at least the final evaluation
      config = config.replace(eval_every=config.train_steps)
    return config


def parse_variant(text: str) -> Variant:
  """``NAME=PRESET[,field=value...]`` -> Variant (ValueError when malformed)."""
  head, _, rest = text.partition(",")
  name, eq, preset = head.partition("=")
  if not eq or not _NAME.match(name) or not preset:
    raise ValueError(f"--variant={text!r}: expected NAME=PRESET[,field=value...] "
                     f"with NAME of letters, digits and _.+-")
  items = []
  for token in rest.split(",") if rest else []:
    if "=" in token or not items:
      items.append(token)
    else:  # a comma inside a value (a tuple field)
      items[-1] += "," + token
  sets = tuple(parse_sets(items).items())
  variant = Variant(name, preset, sets)
  variant.config("digits", 0)  # fails now, not after hours of other runs
  return variant


def run_dir(out: str, dataset: str, variant: str, seed: int) -> str:
  return os.path.join(out, dataset, variant, f"seed{seed}")


def run_workdir(out: str, dataset: str, variant: str, seed: int) -> str:
  return os.path.join(run_dir(out, dataset, variant, seed), "run")


def result_file(out, dataset, variant, seed) -> str:
  return os.path.join(run_dir(out, dataset, variant, seed), "result.json")


def grid_file(out, dataset, variant, seed) -> str:
  return os.path.join(out, "grids", f"{dataset}_{variant}_seed{seed}.png")


def run_one(out: str, variant: Variant, dataset: str, seed: int, classifier,
            protocol: evaluate.Protocol, steps=None, cache_dir=None) -> dict:
  """Trains and evaluates one (variant, dataset, seed); writes its result.json."""
  config = variant.config(dataset, seed, steps)
  workdir = run_workdir(out, dataset, variant.name, seed)
  state_lib.set_process_switches(config)  # this run's model-initialisation seed
  evaluator = train_eval.make_train_evaluator(
      config, workdir, classifier=classifier, protocol=protocol,
      cache_dir=cache_dir)
  # With an EMA, the live generator is evaluated beside it at every evaluation:
  # the EMA does not change training, so one run measures the recipe with and
  # without it (the "<name>-live" rows).
  live_evaluator = (train_eval.make_train_evaluator(
      config, workdir, classifier=classifier, protocol=protocol,
      cache_dir=cache_dir, write=False) if config.ema_decay else None)
  evals, live_evals, eval_seconds = [], [], [0.0]
  trainer = None

  def on_eval(step, generator):
    start = time.perf_counter()
    result = evaluator(step, generator)
    evals.append(dict(step=step, **result["metrics"]))
    if live_evaluator is not None:
      live = live_evaluator(step, trainer.generator)
      live_evals.append(dict(step=step, **live["metrics"]))
    eval_seconds[0] += time.perf_counter() - start
    return result

  trainer = train_lib.Trainer(config, workdir, on_eval=on_eval)
  start_step = int(trainer.step.numpy())
  try:
    start = time.perf_counter()
    outcome = trainer.run(config.train_steps)
    seconds = time.perf_counter() - start - eval_seconds[0]
  finally:
    trainer.close()
  if outcome.stopped:
    raise RuntimeError(f"{workdir} stopped at step {outcome.step}: run again.")
  final = trainer.last_eval
  if final is None:  # already trained (its result.json was lost): evaluate it
    final = evaluate.evaluate_checkpoint(workdir, classifier, protocol,
                                         cache_dir=cache_dir)
  grid = workdir_lib.sample_path(workdir, outcome.step)
  if tf.io.gfile.exists(grid):
    tf.io.gfile.makedirs(os.path.dirname(grid_file(out, dataset, variant.name,
                                                   seed)))
    tf.io.gfile.copy(grid, grid_file(out, dataset, variant.name, seed),
                     overwrite=True)
  result = dict(variant=variant.name, spec=variant.spec(), dataset=dataset,
                seed=seed, step=outcome.step, resumed_from=start_step,
                train_seconds=seconds, eval_seconds=eval_seconds[0],
                metrics=final["metrics"], evals=evals, workdir=workdir,
                classifier=classifier.identity,
                time=time.strftime("%Y-%m-%dT%H:%M:%S"))
  if live_evals and live_evals[-1]["step"] == outcome.step:
    result["live"] = dict(metrics={k: v for k, v in live_evals[-1].items()
                                   if k != "step"}, evals=live_evals)
  path = result_file(out, dataset, variant.name, seed)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
  return result


def load_result(out, dataset, variant: Variant, seed, steps=None):
  """The result of an earlier run, or None; ValueError when it was run with
  another spec or length than asked now (a name reused for another variant)."""
  path = result_file(out, dataset, variant.name, seed)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    result = json.load(f)
  want = variant.config(dataset, seed, steps).train_steps
  if result["spec"] != variant.spec() or result["step"] != want:
    raise ValueError(f"{path} holds {result['spec']!r} to step {result['step']}, "
                     f"not {variant.spec()!r} to step {want}: use another --out "
                     f"or variant name.")
  return result


def check_unfinished(out, dataset, variant: Variant, seed, steps=None) -> None:
  """ValueError when the run's workdir exists (an interrupted run, no result.json)
  with another config than this variant's: resuming would mix two recipes."""
  workdir = run_workdir(out, dataset, variant.name, seed)
  if not workdir_lib.has_config(workdir):
    return
  saved = workdir_lib.load_config(workdir)
  want = variant.config(dataset, seed, steps)
  changed = [f"{f.name} {getattr(saved, f.name)!r} -> {getattr(want, f.name)!r}"
             for f in dataclasses.fields(config_lib.Config)
             if getattr(saved, f.name) != getattr(want, f.name)]
  if changed:
    raise ValueError(
        f"{workdir} holds an unfinished run of another config than "
        f"{variant.spec()!r} ({'; '.join(changed)}): use another --out or variant "
        f"name, or delete {run_dir(out, dataset, variant.name, seed)} to run it "
        f"afresh.")


LIVE_SUFFIX = "-live"


def with_live(result: dict) -> List[dict]:
  """The result, and for a run with an EMA generator also its live generator's
  result as variant ``<name>-live`` (same run, same train seconds)."""
  if "live" not in result:
    return [result]
  live = dict(result, variant=result["variant"] + LIVE_SUFFIX,
              metrics=result["live"]["metrics"], evals=result["live"]["evals"])
  live.pop("live")
  return [result, live]


def value(result: dict, key: str):
  return result[key] if key == "train_seconds" else result["metrics"].get(key)


def summarise(results: List[dict]) -> Dict[Tuple[str, str], dict]:
  """{(dataset, variant): {column key: (median, min, max, n)}} over the seeds."""
  groups = {}
  for r in results:
    groups.setdefault((r["dataset"], r["variant"]), []).append(r)
  table = {}
  for key, rs in groups.items():
    table[key] = {}
    for column, _ in COLUMNS:
      v = np.array([value(r, column) for r in rs
                    if value(r, column) is not None], np.float64)
      table[key][column] = ((float(np.median(v)), float(v.min()), float(v.max()),
                             len(v)) if len(v) else None)
  return table


def _cell(stat, digits):
  if stat is None:
    return "-"
  median, low, high, n = stat
  text = f"{median:.{digits}f}"
  return text if n == 1 else f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(table, datasets, variants, seeds) -> str:
  """The printed table: one block of rows per dataset."""
  head = ("| dataset | variant | seeds | " + " | ".join(t for _, t in COLUMNS) +
          " |")
  lines = [f"median [min, max] over seeds {list(range(seeds))}", "", head,
           "|" + " --- |" * (len(COLUMNS) + 3)]
  for dataset in datasets:
    for variant in variants:
      row = table.get((dataset, variant))
      if row is None:
        continue
      n = max((s[3] for s in row.values() if s), default=0)
      cells = [_cell(row[c], 0 if c == "train_seconds" else 1 if c == "FID"
                     else 3) for c, _ in COLUMNS]
      lines.append(f"| {dataset} | {variant} | {n} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def figure(table, datasets, variants) -> Figure:
  """Per variant, median FID, recall and class accuracy; a bar per dataset."""
  panels = (("FID", "FID (lower is better)"), ("recall", "recall"),
            ("class_accuracy", "class accuracy"))
  fig = Figure(figsize=(4.0 * len(panels), 3.8), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(panels))
  width = 0.8 / max(len(datasets), 1)
  x = np.arange(len(variants))
  for ax, (column, title) in zip(axes, panels):
    for i, dataset in enumerate(datasets):
      stats = [table.get((dataset, v), {}).get(column) for v in variants]
      heights = [s[0] if s else np.nan for s in stats]
      err = np.array([[s[0] - s[1], s[2] - s[0]] if s else [0, 0]
                      for s in stats]).T
      ax.bar(x + (i - (len(datasets) - 1) / 2) * width, heights, width,
             yerr=err, capsize=3, label=dataset,
             color=_COLOURS[i % len(_COLOURS)])
    ax.set_xticks(x, variants, rotation=20)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    if column != "FID":
      ax.set_ylim(0.0, 1.0)
  axes[0].legend()
  fig.suptitle("median over seeds (bars: min-max)")
  fig.tight_layout()
  return fig


def main(argv=None) -> int:
  FLAGS.unparse_flags()  # a second main() in one process starts afresh
  try:
    argv = FLAGS(argv if argv is not None else sys.argv)
  except flags.Error as e:
    print(f"recipe_table.py: {e}", file=sys.stderr)
    return 2
  if len(argv) > 1 or not FLAGS.out or FLAGS.seeds < 1 or not FLAGS.datasets:
    print("recipe_table.py: needs --out, --seeds >= 1 and --datasets (and no "
          f"positional arguments, got {argv[1:]}).", file=sys.stderr)
    return 2
  try:
    variants = [parse_variant(v) for v in FLAGS.variant]
  except (ValueError, flags.Error, app.UsageError) as e:
    print(f"recipe_table.py: {e}", file=sys.stderr)
    return 2
  names = [v.name for v in variants]
  if len(set(names)) != len(names):
    print(f"recipe_table.py: variant names repeat: {names}.", file=sys.stderr)
    return 2
  out, seeds, datasets = FLAGS.out, FLAGS.seeds, FLAGS.datasets
  protocol = evaluate.Protocol(num_samples=FLAGS.eval_num_samples,
                               real_split=FLAGS.real_split)
  results = []
  for dataset in datasets:
    classifier = None
    for variant in variants:
      for seed in range(seeds):
        try:
          result = load_result(out, dataset, variant, seed, FLAGS.steps)
          if result is None:
            check_unfinished(out, dataset, variant, seed, FLAGS.steps)
        except ValueError as e:
          print(f"recipe_table.py: {e}", file=sys.stderr)
          return 2
        if result is None:
          if classifier is None:  # one per dataset, only when a run needs it
            config = variant.config(dataset, seed)
            classifier = train_eval.load_named_classifier(
                train_eval.default_classifier_name(config),
                cache_dir=FLAGS.cache_dir)
          logging.info("Running %s on %s, seed %d", variant.spec(), dataset, seed)
          result = run_one(out, variant, dataset, seed, classifier, protocol,
                           FLAGS.steps, FLAGS.cache_dir)
        results.extend(with_live(result))
  names = [n for name in names
           for n in (name, name + LIVE_SUFFIX)
           if n == name or any(r["variant"] == n for r in results)]
  table = summarise(results)
  text = markdown(table, datasets, names, seeds)
  with tf.io.gfile.GFile(os.path.join(out, "recipe_table.md"), "w") as f:
    f.write(text + "\n")
  with tf.io.gfile.GFile(os.path.join(out, "recipe_table.png"), "wb") as f:
    figure(table, datasets, names).savefig(f, format="png")
  print(text, flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
