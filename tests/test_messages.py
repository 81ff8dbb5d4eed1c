"""One-line errors (no traceback) of the command lines for bad input: an invalid
config.json, a workdir held by another trainer, launch.eval --images_a/--images_b
files that are not uint8 [N, H, W, 3] under key `images` of an .npz, and
launch.convert given a sagan_tf workdir, a BN group that does not divide the batch
(launch.benchmark, launch.train: the flag to pass)."""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf import config as config_lib
from sagan_tf.run import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=180):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc, *needles):
  assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if all(n in l for n in needles)]
  assert lines, proc.stderr[-3000:]


def test_invalid_config_json_names_the_file(tmp_path):
  path = tmp_path / "config.json"
  path.write_text('{"image_size": 32,\n "gf_dim": }\n')
  proc = _run("-m", "launch.train", f"--workdir={tmp_path}", "--steps=1")
  _one_line_error(proc, f"{path} is not a valid sagan_tf config",
                  "Repair it", "Expecting value: line 2")
  # The other launchers that read a workdir say the same.
  for args in (("launch.sample", "--png=x.png"),
               ("launch.eval", "--classifier=digits"),
               ("launch.export", f"--output={tmp_path / 'export'}")):
    proc = _run("-m", args[0], f"--workdir={tmp_path}", *args[1:])
    _one_line_error(proc, f"{path} is not a valid sagan_tf config", "Repair it")
  # Valid JSON, wrong content: the library says the same, naming the field.
  path.write_text(json.dumps({"image_size": 32, "gf_dimm": 4}))
  with pytest.raises(workdir_lib.ConfigFileError, match=r"config.json is not a "
                     r"valid sagan_tf config \(Unknown config fields \['gf_dimm'\]"):
    workdir_lib.load_config(str(tmp_path))


def test_launcher_refuses_a_workdir_in_use(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
  try:
    with open(tmp_path / "lock.json", "w") as f:
      json.dump(dict(host=os.uname().nodename, pid=holder.pid, started=time.time(),
                     heartbeat=time.time(), token="x"), f)
    proc = _run("-m", "launch.train", "--preset=tiny", f"--workdir={tmp_path}",
                "--steps=1")
  finally:
    holder.kill()
    holder.wait()
  _one_line_error(proc, f"{str(tmp_path)!r} is in use by another trainer",
                  f"pid {holder.pid}", "--take_over_lock")
  assert not os.path.exists(tmp_path / "checkpoints")


def _npz_cases(tmp_path):
  good = np.zeros([2, 8, 8, 3], np.uint8)
  np.savez(tmp_path / "key.npz", pixels=good)
  np.savez(tmp_path / "float.npz", images=good.astype(np.float32) - 1.0)
  np.savez(tmp_path / "gray.npz", images=good[..., 0])
  np.savez(tmp_path / "int.npz", images=good.astype(np.int32))
  np.save(tmp_path / "array.npy", good)
  (tmp_path / "text.npz").write_text("not numpy")
  np.savez(tmp_path / "good.npz", images=good)
  np.savez(tmp_path / "labels.npz", images=good, labels=np.zeros([3], np.int32))
  return {
      "labels.npz": "labels must be ints [2] (one per image), got int32 (3,)",
      "key.npz": "has no 'images' array (it has ['pixels']); save the images "
                 "with np.savez(",
      "float.npz": "images are float32 (range -1 to -1), not uint8; convert",
      "gray.npz": "images (2, 8, 8) have no channel axis; add one, e.g. "
                  "np.repeat(images[..., None], 3, axis=-1)",
      "int.npz": "images are int32; they must be uint8",
      "array.npy": "is a single .npy array, not an .npz",
      "text.npz": "is not an .npz file (",
      "missing.npz": ": no such file.",
  }


def test_eval_image_set_messages(tmp_path):
  cases = _npz_cases(tmp_path)
  # The command line: a one-line error naming the flag, before loading Inception.
  proc = _run("-m", "launch.eval", f"--images_a={tmp_path / 'good.npz'}",
              f"--images_b={tmp_path / 'key.npz'}",
              f"--inception_path={tmp_path / 'no_such_module'}")
  _one_line_error(proc, f"--images_b={tmp_path / 'key.npz'} has no 'images'")
  # Every other case, through the same function, in one process.
  script = textwrap.dedent(f"""
      import json, sys
      from absl import app
      from launch import eval as launch_eval
      out = {{}}
      for name in {sorted(cases)!r}:
        try:
          launch_eval.load_image_set("images_a", {str(tmp_path)!r} + "/" + name)
          out[name] = "accepted"
        except app.UsageError as e:
          out[name] = str(e)
      out["good.npz"] = list(launch_eval.load_image_set(
          "images_a", {str(tmp_path / 'good.npz')!r})[0].shape)
      print(json.dumps(out))
  """)
  proc = _run("-c", script)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out.pop("good.npz") == [2, 8, 8, 3]
  for name, expected in cases.items():
    assert out[name].startswith(f"--images_a={tmp_path}/{name}"), out[name]
    assert expected in out[name], (name, out[name])
    assert "\n" not in out[name]


def test_convert_given_a_sagan_tf_workdir_says_so(tmp_path):
  workdir = tmp_path / "run"
  workdir_lib.save_config(str(workdir), config_lib.from_preset("tiny"))
  os.makedirs(workdir / "checkpoints")
  for name in ("ckpt-4.index", "ckpt-4.data-00000-of-00001"):
    (workdir / "checkpoints" / name).write_bytes(b"")
  proc = _run("-m", "launch.convert",
              f"--source={workdir / 'checkpoints' / 'ckpt-4'}",
              f"--output={tmp_path / 'out'}")
  _one_line_error(proc, f"is already a sagan_tf workdir and needs no conversion; "
                  f"pass --workdir={workdir} to launch.train")
  assert not os.path.exists(tmp_path / "out")


def test_bn_group_that_does_not_divide_the_batch_says_what_to_pass(tmp_path):
  # imagenet128 normalises over groups of 64: README's batch-4 benchmark.
  for args in (("launch.benchmark", "--preset=imagenet128", "--batch_size=4"),
               ("launch.train", "--preset=imagenet128", "--set=batch_size=4",
                f"--workdir={tmp_path}")):
    proc = _run("-m", *args)
    _one_line_error(proc, "Config.bn_group_size=64: must divide batch_size=4",
                    "pass --set=bn_group_size=0", "or pass --set=bn_group_size=4")


def test_eval_without_inception_offline_is_one_line_without_the_flag_help(tmp_path):
  images = np.zeros((2, 8, 8, 3), np.uint8)
  np.savez(tmp_path / "a.npz", images=images)
  missing = tmp_path / "no_such_module"
  proc = _run("-m", "launch.eval", f"--images_a={tmp_path / 'a.npz'}",
              f"--images_b={tmp_path / 'a.npz'}", f"--inception_path={missing}")
  _one_line_error(proc, f"No SavedModel (saved_model.pb) at inception_path="
                  f"'{missing}'", "To evaluate offline")
  # absl's usage text (the module docstring, "Try --helpfull") is not printed.
  assert "helpfull" not in proc.stderr and "Inception score, FID and KID of a" not in proc.stderr, \
      proc.stderr[-3000:]
