r"""Times the official SAGAN train graph and sagan_tf's train step side by side.

    python tools/time_official.py --official_src=PATH
    python tools/time_official.py --official_src=PATH \
        --jit_compile=auto,false --rounds=3 --steps=5

(``PATH``: the unmodified official code; the repository's tests use
``../shared/official_src``.) Both at one config (default: the official 128x128
model, gf=df=64, 1000 classes, z 128, batch 4, hinge loss, D lr 4e-4, G lr 1e-4,
Adam beta1 0), one step = one D update then one G update:

* ``official``: the graph of ``model.py``'s ``SNGAN``, built by
  ``tools/make_official_train_reference.py`` from the UNMODIFIED official modules
  imported at run time from ``--official_src`` (nothing of them is copied here)
  under ``tf.compat.v1`` graph mode with RefVariables (``tools/official_shim.py``):
  ``tf.train.AdamOptimizer`` ops built under ``UPDATE_OPS``. A step is one
  ``session.run`` of the D op and one of the G op, with z, fake labels, real images
  and labels fed from numpy (seeded, drawn before timing).
* ``official(bfc)``: the same with ``TF_CPU_ALLOCATOR_USE_BFC=true``, the host
  allocator that sagan_tf's launchers set (``launch/__init__.py``), so that the
  comparison shows what the allocator gives and what the step does
  (``--official_allocators``, default both; plain ``official`` runs with
  TensorFlow's default allocator, as the official code does).
* ``sagan_tf(jit=X)``: ``python -m launch.benchmark --preset=imagenet128`` at the
  same sizes with ``--set=bn_group_size=0`` (the official single tower normalised
  over its batch) and ``--jit_compile=X`` for each X of ``--jit_compile``
  (default ``auto``, what ``launch.train`` does without flags).

Each measurement runs in its own subprocess (no shared graph, thread pool or
memory), and the paths alternate: official, sagan_tf, official, sagan_tf, ...
(``--rounds`` rounds), so that a change of load hits both. Every measurement
prints one JSON line (``round``, ``path``, ``s_per_step_median``, its min and
max over ``--steps`` timed steps after ``--warmup`` untimed ones; sagan_tf lines
carry the benchmark's own keys too: ``xla``, ``fraction_of_peak``...); the last
line is the summary: per path the median over rounds of the per-round medians
and their range. The first line gives the config, the start time and
``host_cpu`` (the CPU model and its vector ISA, ``sagan_tf.perf.host_cpu``: the
figures hold for that host only).

The official generator and discriminator are 128x128 only. The tool uses argparse
rather than absl flags because importing ``make_official_train_reference`` defines
that tool's absl flags.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from sagan_tf.perf import host_cpu  # no TensorFlow: imports before the TF1 stage

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
OFFICIAL_FILES = ("model.py", "ops.py", "non_local.py", "generator.py",
                  "discriminator.py")


def parse_args(argv=None):
  p = argparse.ArgumentParser(
      description="Official SAGAN graph vs sagan_tf train step, side by side.")
  p.add_argument("--official_src", required=True,
                 help="Directory of a brain-research/self-attention-gan checkout.")
  p.add_argument("--gf_dim", type=int, default=64)
  p.add_argument("--df_dim", type=int, default=64)
  p.add_argument("--num_classes", type=int, default=1000)
  p.add_argument("--z_dim", type=int, default=128)
  p.add_argument("--batch_size", type=int, default=4)
  p.add_argument("--steps", type=int, default=5, help="Timed steps per run.")
  p.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
  p.add_argument("--rounds", type=int, default=2,
                 help="Rounds of (official, each sagan_tf path).")
  p.add_argument("--jit_compile", default="auto",
                 help="Comma-separated launch.benchmark --jit_compile values, "
                      "one sagan_tf path each (true, false, auto).")
  p.add_argument("--official_allocators", default="default,bfc",
                 help="Host allocators of the official path: default "
                      "(TensorFlow's), bfc (TF_CPU_ALLOCATOR_USE_BFC=true), or both.")
  p.add_argument("--paths", default="official,sagan_tf",
                 help="Which of official, sagan_tf to run.")
  p.add_argument("--child", choices=["official"], help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  for name in ("gf_dim", "df_dim", "num_classes", "z_dim", "steps", "rounds"):
    if getattr(args, name) < 1:
      p.error(f"--{name} must be positive, got {getattr(args, name)}")
  if args.warmup < 0:
    p.error(f"--warmup must be >= 0, got {args.warmup}")
  if args.batch_size < 2:
    p.error("--batch_size must be >= 2: the official model.py squeezes the label "
            "tensors, which breaks its graph at batch 1")
  args.jit_compile = [v.strip().lower() for v in args.jit_compile.split(",")
                      if v.strip()]
  bad = [v for v in args.jit_compile if v not in ("true", "false", "auto")]
  if bad or not args.jit_compile:
    p.error(f"--jit_compile takes true, false or auto (comma-separated), got "
            f"{bad or 'nothing'}")
  args.official_allocators = [v.strip().lower() for v in
                              args.official_allocators.split(",") if v.strip()]
  if (not args.official_allocators
      or set(args.official_allocators) - {"default", "bfc"}):
    p.error("--official_allocators takes default and/or bfc, got "
            f"{args.official_allocators}")
  args.paths = [v.strip() for v in args.paths.split(",") if v.strip()]
  if not args.paths or set(args.paths) - {"official", "sagan_tf"}:
    p.error(f"--paths takes official and/or sagan_tf, got {args.paths}")
  return args


def check_official_src(path):
  """Raises ValueError (one line: what is wrong and what to do) unless ``path``
  holds the official modules."""
  hint = ("pass the directory of a brain-research/self-attention-gan checkout, "
          "e.g. git --git-dir=.../self-attention-gan/.git archive HEAD | tar -x "
          "-C /tmp/official_src")
  if not os.path.isdir(path):
    raise ValueError(f"--official_src={path}: no such directory; {hint}")
  missing = [f for f in OFFICIAL_FILES if not os.path.isfile(os.path.join(path, f))]
  if missing:
    raise ValueError(f"--official_src={path}: missing {', '.join(missing)}; {hint}")


def sagan_command(args, jit):
  """The launch.benchmark command of one sagan_tf path."""
  return [sys.executable, "-m", "launch.benchmark", "--preset=imagenet128",
          f"--batch_size={args.batch_size}", "--set=bn_group_size=0",
          f"--set=gf_dim={args.gf_dim}", f"--set=df_dim={args.df_dim}",
          f"--set=num_classes={args.num_classes}", f"--set=z_dim={args.z_dim}",
          f"--steps={args.steps}", f"--warmup={args.warmup}",
          f"--jit_compile={jit}"]


def official_command(args):
  return [sys.executable, os.path.abspath(__file__), "--child=official",
          f"--official_src={args.official_src}", f"--gf_dim={args.gf_dim}",
          f"--df_dim={args.df_dim}", f"--num_classes={args.num_classes}",
          f"--z_dim={args.z_dim}", f"--batch_size={args.batch_size}",
          f"--steps={args.steps}", f"--warmup={args.warmup}"]


def time_official_graph(args):
  """Child process: builds the official graph and times it; returns seconds."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  import make_official_train_reference as ref  # pylint: disable=g-import-not-at-top
  from official_shim import IMAGE_SIZE, absl_flags_shim, import_official  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_v2_behavior()
  v1 = tf.compat.v1
  cfg = dict(z_dim=args.z_dim, gf_dim=args.gf_dim, df_dim=args.df_dim,
             num_classes=args.num_classes, batch_size=args.batch_size,
             generator_type="test", discriminator_type="test",
             loss_type="hinge_loss", d_lr=4e-4, g_lr=1e-4, beta1=0.0,
             sync_replicas=True, tf_seed=1234)
  stub = ref._utils_stub(v1, tf)  # pylint: disable=protected-access
  mods = import_official(os.path.abspath(args.official_src), tf, ref.MODULES,
                         dict(absl_flags_shim(flags.FlagValues()), utils_ori=stub))
  graph, h = ref.build(mods, stub, tf, cfg)
  rs = np.random.RandomState(0)
  b = args.batch_size
  feeds = []
  for _ in range(args.warmup + args.steps):
    real = {h.images: rs.uniform(-1, 1, (b, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(
        np.float32), h.labels: rs.randint(0, args.num_classes, b).astype(np.int32)}
    pair = []
    for _ in range(2):  # the D op's and the G op's own noise and labels
      feed = dict(real)
      feed[h.zs] = rs.randn(1, b, args.z_dim).astype(np.float32)
      feed[h.fake_class] = rs.randint(0, args.num_classes, (b, 1)).astype(np.int64)
      pair.append(feed)
    feeds.append(pair)
  times = []
  with v1.Session(graph=graph) as sess:
    sess.run(h.init)
    for i, (feed_d, feed_g) in enumerate(feeds):
      t0 = time.perf_counter()
      sess.run(h.d_op, feed_d)
      sess.run(h.g_op, feed_g)
      if i >= args.warmup:
        times.append(time.perf_counter() - t0)
  return times


def _json_line(stdout):
  lines = [l for l in stdout.splitlines() if l.startswith("{")]
  if len(lines) != 1:
    raise RuntimeError(f"expected one JSON line, got {len(lines)}:\n{stdout[-2000:]}")
  return json.loads(lines[0])


def run_child(command, env=None):
  """Runs one measurement subprocess from the repository root (``env`` added to
  this process's environment); its JSON line."""
  proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                                 **(env or {})))
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n"
                       f"{proc.stderr[-3000:]}")
  return _json_line(proc.stdout)


def measurement(round_index, path, child_output):
  """One output line from a child's JSON (official: seconds; sagan_tf: ms keys)."""
  if "s_per_step" in child_output:  # official child
    times = child_output["s_per_step"]
    med, lo, hi = statistics.median(times), min(times), max(times)
    extra = {}
  else:
    med, lo, hi = (child_output[f"ms_per_step_{k}"] / 1e3
                   for k in ("median", "min", "max"))
    extra = {k: child_output[k] for k in (
        "jit_compile", "xla", "xla_reason", "flops_per_step",
        "achieved_gflops_per_s", "conv_gflops_per_s", "conv_shape",
        "fraction_of_peak", "host_allocator", "minor_page_faults_per_step",
        "host_cpu")
        if k in child_output}
  out = dict(round=round_index, path=path, s_per_step_median=round(med, 4),
             s_per_step_min=round(lo, 4), s_per_step_max=round(hi, 4))
  out.update(extra)
  return out


def summarize(records):
  """Per path: median over rounds of the round medians, their min and max."""
  by_path = {}
  for r in records:
    by_path.setdefault(r["path"], []).append(r["s_per_step_median"])
  return {path: dict(s_per_step_median=round(statistics.median(v), 4),
                     s_per_step_range=[min(v), max(v)], rounds=len(v))
          for path, v in by_path.items()}


def plan(args):
  """(path name, command, extra environment) of each measurement of a round."""
  out = []
  if "official" in args.paths:
    for allocator in args.official_allocators:
      bfc = allocator == "bfc"
      out.append(("official(bfc)" if bfc else "official", official_command(args),
                  {"TF_CPU_ALLOCATOR_USE_BFC": "true" if bfc else "false"}))
  if "sagan_tf" in args.paths:
    out += [(f"sagan_tf(jit={j})", sagan_command(args, j), {})
            for j in args.jit_compile]
  return out


def main(argv=None):
  args = parse_args(argv)
  try:
    check_official_src(args.official_src)
  except ValueError as e:
    print(f"time_official.py: error: {e}", file=sys.stderr)
    return 2
  if args.child == "official":
    print(json.dumps({"s_per_step": time_official_graph(args)}), flush=True)
    return 0
  config = {k: getattr(args, k) for k in ("gf_dim", "df_dim", "num_classes",
                                          "z_dim", "batch_size", "steps", "warmup")}
  print(json.dumps(dict(config=config, image_size=128, started=time.strftime(
      "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), host_cpu=host_cpu.describe())),
        flush=True)
  records = []
  for i in range(args.rounds):
    for path, command, env in plan(args):
      record = measurement(i, path, run_child(command, env))
      records.append(record)
      print(json.dumps(record), flush=True)
  print(json.dumps({"summary": summarize(records)}), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
