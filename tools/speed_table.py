r"""Regenerates the speed table of docs/speed.md: launch.benchmark, every preset.

    .venv/bin/python tools/speed_table.py                 # every row, ~30 min
    .venv/bin/python tools/speed_table.py --rows=tiny,digits32 --steps=3

Each row is one ``python -m launch.benchmark`` subprocess (own process: own
allocator, thread pool and XLA cache), run one after the other; its JSON line is
printed as it lands, and the markdown table of all rows comes last. Rows (``ROWS``):
every preset in train mode with XLA off and on, each in float32 and bf16 mixed
precision; ``imagenet128`` generation; the 2-replica MirroredStrategy step of the
32 px presets next to their 1-replica rows. The 128 px presets and ``cifar10_32``
run at a smaller batch than their presets (256 and 64 do not fit a laptop CPU
step); 128 px runs take ``bn_group_size=0`` (tower batch norm of 64 does not fit a
batch of 4). The "auto" column marks the row that ``--jit_compile=auto`` (the
default of ``launch.train`` and ``launch.benchmark``) picks for that row's setup
(``sagan_tf.training.jit_choice.resolve``): auto runs exactly that path, so it is not
timed a second time. The table's first line names the host (``host_cpu`` of the
rows, ``sagan_tf.perf.host_cpu``: the CPU model and its vector ISA), since speed
differs per CPU.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
from typing import Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Row:
  preset: str
  batch: int
  jit: bool
  bf16: bool = False
  mode: str = "train"
  replicas: int = 1
  sets: Tuple[str, ...] = ()

  def command(self, steps, warmup):
    cmd = [sys.executable, "-m", "launch.benchmark", f"--preset={self.preset}",
           f"--batch_size={self.batch}", f"--mode={self.mode}",
           f"--jit_compile={str(self.jit).lower()}", f"--steps={steps}",
           f"--warmup={warmup}"]
    cmd += [f"--set={s}" for s in self.sets]
    if self.bf16:
      cmd.append("--mixed_precision")
    if self.replicas > 1:
      cmd += ["--strategy=mirrored", f"--cpu_replicas={self.replicas}"]
    return cmd


def _grid(preset, batch, sets=(), bf16=(False, True)):
  return [Row(preset, batch, jit, b, sets=sets) for b in bf16
          for jit in (False, True)]


_BN0 = ("bn_group_size=0",)
ROWS = (_grid("imagenet128", 4, _BN0)
        + _grid("biggan_schedule128", 4, _BN0, bf16=(False,))
        + [Row("imagenet128", 4, jit, mode="generate", sets=_BN0)
           for jit in (False, True)]
        + _grid("cifar10_32", 16)
        + _grid("digits32", 32) + [Row("digits32", 32, False, replicas=2)]
        + _grid("tiny", 4) + [Row("tiny", 4, False, replicas=2)])


def auto_picks(row) -> bool:
  """Whether ``--jit_compile=auto`` runs this row's path (its XLA choice)."""
  from sagan_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from sagan_tf.training import jit_choice  # pylint: disable=g-import-not-at-top

  class _Strategy:  # only num_replicas_in_sync and the CPU matter to the rule
    num_replicas_in_sync = row.replicas

  sets = dict(s.split("=", 1) for s in row.sets)
  config = config_lib.override(config_lib.from_preset(row.preset),
                               dict(sets, batch_size=str(row.batch),
                                    mixed_precision=str(row.bf16)))
  choice = jit_choice.resolve(config.replace(jit_compile="auto"),
                              _Strategy() if row.replicas > 1 else None,
                              workload=row.mode, deterministic=False)
  return choice.enabled == row.jit


def host_line(results):
  """``Host: <host_cpu>`` of the rows (each distinct one, in order; rows of
  runs made before benchmarks printed it: "not recorded")."""
  hosts = []
  for _, r in results:
    host = r.get("host_cpu", "not recorded")
    if host not in hosts:
      hosts.append(host)
  return "Host: " + ("; ".join(hosts) if hosts else "not recorded")


def markdown(results):
  """The host line, a blank line, then the table of ``(Row, result)`` pairs."""
  head = ("| preset | mode | batch | replicas | XLA | bf16 | auto | ms/step median "
          "(min-max) | images/s | GFLOP/step | GFLOP/s | fraction_of_peak | "
          "collectives | peak host MiB |")
  lines = [host_line(results), "", head, "|" + " --- |" * 14]
  for row, r in results:
    mode = (f"{row.mode} (d_steps {r['d_steps']})"
            if row.mode == "train" and r["d_steps"] > 1 else row.mode)
    frac = r.get("fraction_of_peak")
    lines.append(
        f"| {row.preset} | {mode} | {row.batch} | {row.replicas} | "
        f"{'yes' if row.jit else 'no'} | {'yes' if row.bf16 else 'no'} | "
        f"{'<- auto' if auto_picks(row) else ''} | "
        f"{r['ms_per_step_median']:.0f} ({r['ms_per_step_min']:.0f}-"
        f"{r['ms_per_step_max']:.0f}) | {r['images_per_s']:.2f} | "
        f"{r['flops_per_step'] / 1e9:.1f} | {r['achieved_gflops_per_s']:.0f} | "
        f"{'' if frac is None else f'{frac:.2f}'} | "
        f"{r.get('collectives_per_step', 0)} | {r['peak_host_memory_mb']:.0f} |")
  return "\n".join(lines)


def load(*paths):
  """(Row, result) pairs from the JSON lines of earlier runs' output, in
  ``ROWS`` order; a row measured more than once keeps its last result."""
  latest = {}
  for path in paths:
    with open(path) as f:
      for line in f:
        if line.startswith("{") and '"row"' in line:
          r = json.loads(line)
          latest[Row(**dict(r["row"], sets=tuple(r["row"]["sets"])))] = r
  order = {row: i for i, row in enumerate(ROWS)}
  return sorted(latest.items(), key=lambda p: order.get(p[0], len(order)))


def select(names, dtype="all"):
  """The rows whose preset is in ``names`` (all for None), of ``dtype`` (all,
  f32 or bf16)."""
  known = {r.preset for r in ROWS}
  unknown = sorted(set(names or ()) - known)
  if unknown:
    raise ValueError(f"--rows: unknown preset(s) {unknown}; choose from "
                     f"{sorted(known)}")
  if dtype not in ("all", "f32", "bf16"):
    raise ValueError(f"--dtype takes all, f32 or bf16, got {dtype!r}")
  return [r for r in ROWS if (not names or r.preset in names)
          and dtype in ("all", "bf16" if r.bf16 else "f32")]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--rows", default="", help="Comma-separated presets (all if empty).")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--dtype", default="all", help="all, f32 or bf16 rows.")
  p.add_argument("--render", default="",
                 help="Comma-separated files of earlier runs' output: print their "
                      "table (the last result of each row) instead of running.")
  args = p.parse_args(argv)
  if args.render:
    print(markdown(load(*args.render.split(","))))
    return 0
  try:
    rows = select([n.strip() for n in args.rows.split(",") if n.strip()],
                  args.dtype)
  except ValueError as e:
    p.error(str(e))
  results = []
  for row in rows:
    proc = subprocess.run(row.command(args.steps, args.warmup), cwd=REPO,
                          capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
      print(f"speed_table.py: {' '.join(row.command(args.steps, args.warmup))} "
            f"failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
      return 1
    line = [l for l in proc.stdout.splitlines() if l.startswith("{")][-1]
    result = dict(json.loads(line), row=dataclasses.asdict(row))
    print(json.dumps(result), flush=True)
    results.append((row, result))
  print(markdown(results), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
