"""Imports a script of tools/ (not a package) as a module, or runs it, for its tests."""
import importlib.util
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name):
  """``tools/<name>.py`` as a module named ``name``, its folder importable (as
  when it runs as a script: the tools import their sibling modules)."""
  tools = os.path.join(REPO, "tools")
  if tools not in sys.path:
    sys.path.append(tools)
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "tools", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_tool(name, *args, timeout=900):
  """``python tools/<name>.py ARGS`` in its own process from the repository root
  (the official code needs TF1 graph mode, which is process-wide), with the
  repository importable; the finished process."""
  path = os.environ.get("PYTHONPATH")
  return subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", f"{name}.py"), *args],
      cwd=REPO, capture_output=True, text=True, timeout=timeout,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=REPO + (os.pathsep + path if path else "")))
