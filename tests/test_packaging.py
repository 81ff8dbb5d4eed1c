"""pyproject.toml: every console script names a launcher's ``run``, and every
folder of the packages is a package that setuptools' find will install."""
import ast
import os
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("sagan-train", "sagan-eval", "sagan-sample", "sagan-convert",
           "sagan-export", "sagan-benchmark")


def _pyproject():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def test_console_scripts_call_the_launchers_run():
  scripts = _pyproject()["project"]["scripts"]
  assert sorted(scripts) == sorted(SCRIPTS)
  for name, target in scripts.items():
    module, _, func = target.partition(":")
    assert module == "launch." + name[len("sagan-"):], (name, target)
    path = os.path.join(REPO, *module.split(".")) + ".py"
    with open(path) as f:
      tree = ast.parse(f.read())
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert func in defs, f"{path} has no {func}() for {name}"
    assert not defs[func].args.args, f"{module}.{func} must take no arguments"


def test_every_source_folder_is_an_installed_package():
  include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
  missing = []
  for top in ("sagan_tf", "launch", "eval"):
    for folder, dirs, files in os.walk(os.path.join(REPO, top)):
      dirs[:] = [d for d in dirs if d != "__pycache__"]
      if not any(f.endswith(".py") for f in files):
        continue
      dotted = os.path.relpath(folder, REPO).replace(os.sep, ".")
      covered = dotted in include or any(
          p.endswith(".*") and dotted.startswith(p[:-1]) for p in include)
      if "__init__.py" not in files or not covered:
        missing.append(dotted)
  assert not missing, f"not installed as packages: {missing}"
