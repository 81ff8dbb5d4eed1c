"""Imports a script of tools/ (not a package) as a module, for its tests."""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name):
  """``tools/<name>.py`` as a module named ``name``."""
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "tools", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
