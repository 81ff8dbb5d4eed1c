"""tools/speed_table.py without running the benchmark: rows, commands, the
"auto" column, the markdown and re-rendering from saved output."""
import json
import sys

import pytest

from tests.tools_import import load_tool

speed_table = load_tool("speed_table")

from sagan_tf import config as config_lib  # noqa: E402


def test_every_preset_has_xla_on_and_off():
  for preset in config_lib.PRESETS:
    rows = speed_table.select([preset])
    train = [r for r in rows if r.mode == "train" and r.replicas == 1
             and not r.bf16]
    assert {r.jit for r in train} == {True, False}, preset
  with pytest.raises(ValueError, match="unknown preset"):
    speed_table.select(["nope"])
  bf16 = speed_table.select(["imagenet128"], "bf16")
  assert bf16 and all(r.bf16 and r.preset == "imagenet128" for r in bf16)
  assert len(speed_table.select(None)) == len(speed_table.ROWS)
  with pytest.raises(ValueError, match="--dtype"):
    speed_table.select(None, "fp8")


def test_command():
  row = speed_table.Row("digits32", 32, False, bf16=True, replicas=2,
                        sets=("bn_group_size=0",))
  cmd = row.command(steps=3, warmup=1)
  assert cmd[:3] == [sys.executable, "-m", "launch.benchmark"]
  for arg in ("--preset=digits32", "--batch_size=32", "--jit_compile=false",
              "--steps=3", "--warmup=1", "--set=bn_group_size=0",
              "--mixed_precision", "--strategy=mirrored", "--cpu_replicas=2"):
    assert arg in cmd


def test_auto_column_follows_the_rule():
  Row = speed_table.Row
  assert speed_table.auto_picks(Row("imagenet128", 4, True, sets=("bn_group_size=0",)))
  assert not speed_table.auto_picks(Row("imagenet128", 4, False,
                                        sets=("bn_group_size=0",)))
  assert speed_table.auto_picks(Row("digits32", 32, True))  # width 8 at 32 px
  assert not speed_table.auto_picks(Row("digits32", 32, False))
  assert speed_table.auto_picks(Row("tiny", 4, False))  # width 4: off
  assert speed_table.auto_picks(Row("imagenet128", 4, False, mode="generate",
                                    sets=("bn_group_size=0",)))
  assert speed_table.auto_picks(Row("tiny", 4, False, replicas=2))


def _result(ms, **extra):
  return dict(ms_per_step_median=ms, ms_per_step_min=ms - 1, ms_per_step_max=ms + 1,
              images_per_s=4 / ms * 1e3, flops_per_step=2e9, d_steps=5,
              achieved_gflops_per_s=2e9 / ms / 1e6, peak_host_memory_mb=100.0,
              **extra)


def test_markdown_and_render(tmp_path):
  rows = [speed_table.Row("cifar10_32", 16, True),
          speed_table.Row("tiny", 4, False, replicas=2)]
  results = [_result(500.0, fraction_of_peak=0.5, host_cpu="AMD EPYC, avx2"),
             _result(250.0, collectives_per_step=29)]
  table = speed_table.markdown(list(zip(rows, results)))
  lines = table.splitlines()
  # The host first: each distinct host_cpu, and rows of runs without one.
  assert lines[:2] == ["Host: AMD EPYC, avx2; not recorded", ""]
  lines = lines[2:]
  assert len(lines) == 4 and lines[0].count("|") == lines[2].count("|") == 15
  assert "| cifar10_32 | train (d_steps 5) | 16 | 1 | yes | no | <- auto | " \
         "500 (499-501) |" in lines[2]
  assert "| 2.0 | 4 | 0.50 | 0 |" in lines[2]
  assert "| 29 | 100 |" in lines[3]
  same = [(row, dict(r, host_cpu="X, avx512f")) for row, r in zip(rows, results)]
  assert speed_table.markdown(same).splitlines()[0] == "Host: X, avx512f"
  saved = tmp_path / "out.jsonl"
  with open(saved, "w") as f:
    f.write("not json\n")
    for row, r in zip(rows, results):
      f.write(json.dumps(dict(r, row=speed_table.dataclasses.asdict(row))) + "\n")
  loaded = speed_table.load(str(saved))
  assert [r for r, _ in loaded] == rows
  assert speed_table.markdown(loaded) == table
  # A later run of one row replaces it; ROWS order is kept.
  again = tmp_path / "again.jsonl"
  again.write_text(json.dumps(dict(_result(900.0), row=speed_table.dataclasses
                                   .asdict(rows[1]))) + "\n")
  merged = speed_table.load(str(again), str(saved))  # order of files: last wins
  assert [r["ms_per_step_median"] for _, r in merged] == [500.0, 250.0]
  merged = speed_table.load(str(saved), str(again))
  assert [r["ms_per_step_median"] for _, r in merged] == [500.0, 900.0]
