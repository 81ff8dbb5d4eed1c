"""tools/time_official.py without the official code: arguments, the error for a
missing or wrong --official_src, the commands it runs and its summary."""
import os
import sys

import pytest

from tests.tools_import import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
time_official = load_tool("time_official")


def test_defaults_are_the_official_128_config():
  a = time_official.parse_args(["--official_src=/x"])
  assert (a.gf_dim, a.df_dim, a.num_classes, a.z_dim, a.batch_size) == (
      64, 64, 1000, 128, 4)
  assert a.jit_compile == ["auto"] and a.paths == ["official", "sagan_tf"]
  a = time_official.parse_args(["--official_src=/x", "--jit_compile=Auto, false"])
  assert a.jit_compile == ["auto", "false"]


@pytest.mark.parametrize("argv, message", [
    ([], "--official_src"),
    (["--official_src=/x", "--batch_size=1"], "--batch_size must be >= 2"),
    (["--official_src=/x", "--gf_dim=0"], "--gf_dim must be positive"),
    (["--official_src=/x", "--jit_compile=xla"], "true, false or auto"),
    (["--official_src=/x", "--paths=tf1"], "--paths takes official"),
    (["--official_src=/x", "--official_allocators=tcmalloc"],
     "--official_allocators takes default"),
])
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    time_official.parse_args(argv)
  assert e.value.code == 2 and message in capsys.readouterr().err


def test_missing_or_wrong_official_src(tmp_path, capsys):
  missing = str(tmp_path / "nope")
  assert time_official.main([f"--official_src={missing}"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.count("\n") == 0 and "no such directory" in err and missing in err
  (tmp_path / "model.py").write_text("")
  (tmp_path / "ops.py").write_text("")
  assert time_official.main([f"--official_src={tmp_path}"]) == 2
  err = capsys.readouterr().err
  assert "missing non_local.py, generator.py, discriminator.py" in err
  assert "self-attention-gan" in err  # says what to pass instead


def test_commands_share_the_config():
  a = time_official.parse_args(["--official_src=/src", "--gf_dim=8", "--df_dim=16",
                                "--num_classes=10", "--z_dim=32",
                                "--batch_size=2", "--steps=3", "--warmup=1"])
  sagan = time_official.sagan_command(a, "false")
  assert sagan[1:3] == ["-m", "launch.benchmark"]
  for flag in ("--preset=imagenet128", "--batch_size=2", "--set=bn_group_size=0",
               "--set=gf_dim=8", "--set=df_dim=16", "--set=num_classes=10",
               "--set=z_dim=32", "--steps=3", "--warmup=1", "--jit_compile=false"):
    assert flag in sagan
  official = time_official.official_command(a)
  assert official[1] == os.path.join(REPO, "tools", "time_official.py")
  child = time_official.parse_args(official[2:])
  assert child.child == "official" and child.official_src == "/src"
  assert (child.gf_dim, child.df_dim, child.num_classes, child.z_dim,
          child.batch_size, child.steps, child.warmup) == (8, 16, 10, 32, 2, 3, 1)
  # The config launch.benchmark builds from them (its build_config: the preset,
  # then --set; not imported here, its absl flags clash with launch.train's):
  from launch.overrides import parse_sets  # pylint: disable=g-import-not-at-top
  from sagan_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  sets = [f.split("=", 1)[1] for f in sagan if f.startswith("--set=")]
  config = config_lib.override(config_lib.from_preset("imagenet128"),
                               parse_sets(sets))
  assert (config.image_size, config.gf_dim, config.df_dim, config.num_classes,
          config.z_dim, config.bn_group_size) == (128, 8, 16, 10, 32, 0)
  assert (config.g_lr, config.d_lr, config.beta1, config.loss) == (
      1e-4, 4e-4, 0.0, "hinge")  # model.py's defaults, as the official child


def test_plan_runs_the_official_graph_with_both_allocators():
  a = time_official.parse_args(["--official_src=/src", "--jit_compile=auto,false"])
  plan = time_official.plan(a)
  assert [p for p, _, _ in plan] == [
      "official", "official(bfc)", "sagan_tf(jit=auto)", "sagan_tf(jit=false)"]
  envs = [env for _, _, env in plan]
  assert envs[0] == {"TF_CPU_ALLOCATOR_USE_BFC": "false"}
  assert envs[1] == {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
  assert envs[2] == envs[3] == {}  # launch sets its own default
  a = time_official.parse_args(["--official_src=/src", "--official_allocators=bfc",
                                "--paths=official"])
  assert [p for p, _, _ in time_official.plan(a)] == ["official(bfc)"]


def test_measurements_and_summary():
  off = time_official.measurement(0, "official", {"s_per_step": [3.0, 1.0, 2.0]})
  assert (off["s_per_step_median"], off["s_per_step_min"],
          off["s_per_step_max"]) == (2.0, 1.0, 3.0)
  sag = time_official.measurement(0, "sagan_tf(jit=auto)", dict(
      ms_per_step_median=1500.0, ms_per_step_min=1400.0, ms_per_step_max=1600.0,
      xla=True, fraction_of_peak=0.8, preset="imagenet128", host_cpu="EPYC, avx2"))
  assert sag["s_per_step_median"] == 1.5 and sag["xla"] is True
  assert sag["host_cpu"] == "EPYC, avx2"
  assert sag["fraction_of_peak"] == 0.8 and "preset" not in sag
  records = [dict(path="official", s_per_step_median=m) for m in (2.0, 5.0, 3.0)]
  records.append(sag)
  summary = time_official.summarize(records)
  assert summary["official"] == dict(s_per_step_median=3.0,
                                     s_per_step_range=[2.0, 5.0], rounds=3)
  assert summary["sagan_tf(jit=auto)"]["s_per_step_median"] == 1.5
  with pytest.raises(RuntimeError, match="expected one JSON line, got 0"):
    time_official._json_line("no json here\n")  # pylint: disable=protected-access
