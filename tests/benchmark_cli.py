"""Runs ``python -m launch.benchmark`` for the tests and reads its JSON line."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, timeout=1800):
  """The finished ``launch.benchmark`` process (CPU only, quiet TF logs)."""
  return subprocess.run(
      [sys.executable, "-m", "launch.benchmark", *args],
      cwd=REPO, capture_output=True, text=True, timeout=timeout,
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2"))


def json_line(proc):
  """The one JSON line of a successful run, as a dict."""
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  assert len(lines) == 1, proc.stdout
  return json.loads(lines[0])
