"""The import graph of sagan_tf, eval and launch: no cycle, no hidden imports.

Every ``import`` of a project module counts, at module level or inside a
function (an import inside a function hides a cycle from Python, not from this
graph). Inside ``sagan_tf/`` and ``eval/`` a project import inside a function
needs a comment saying why (e.g. it must run before TensorFlow starts); the
launchers (``launch/``) import the library after parsing flags and setting up the
process, so theirs are not checked.
"""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sagan_tf", "eval", "launch")
MAX_LINES = 350


def _modules(root=REPO):
  """{dotted name: path} of every module of PACKAGES under ``root``."""
  found = {}
  for package in PACKAGES:
    for folder, dirs, files in os.walk(os.path.join(root, package)):
      dirs[:] = [d for d in dirs if d != "__pycache__"]
      for name in files:
        if name.endswith(".py"):
          rel = os.path.relpath(os.path.join(folder, name), root)[:-3]
          dotted = rel.replace(os.sep, ".")
          found[dotted[:-len(".__init__")] if dotted.endswith(".__init__")
                else dotted] = os.path.join(folder, name)
  return found


def _resolve(name, modules):
  """The project module ``name`` is or lies in, or None."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name or None


def import_graph(modules):
  """({module: {imported modules}}, [(module, line, imported, in_function,
  commented)])."""
  edges = {m: set() for m in modules}
  imports = []
  for module, path in modules.items():
    with open(path) as f:
      source = f.read()
    lines = source.splitlines()
    tree = ast.parse(source)
    in_function = set()
    for node in ast.walk(tree):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        in_function.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        # "from pkg import mod" imports pkg.mod; "from mod import name", mod.
        targets = [f"{node.module}.{a.name}" for a in node.names]
      else:
        continue
      for target in targets:
        imported = _resolve(target, modules)
        if imported is None or imported == module:
          continue
        edges[module].add(imported)
        here = lines[node.lineno - 1]
        above = lines[node.lineno - 2] if node.lineno > 1 else ""
        said = [c.split("#", 1)[1] for c in (here, above) if "#" in c]
        commented = any(c.strip() and "pylint:" not in c and "noqa" not in c
                        for c in said)
        imports.append((module, node.lineno, imported, id(node) in in_function,
                        commented))
  return edges, imports


def find_cycle(edges):
  """One import cycle as [a, b, ..., a], or None."""
  state = {}  # 1 on the current path, 2 done
  path = []

  def visit(m):
    state[m] = 1
    path.append(m)
    for n in sorted(edges[m]):
      if state.get(n) == 1:
        return path[path.index(n):] + [n]
      if n not in state:
        found = visit(n)
        if found:
          return found
    path.pop()
    state[m] = 2
    return None

  for m in sorted(edges):
    if m not in state:
      found = visit(m)
      if found:
        return found
  return None


@pytest.fixture(scope="module")
def graph():
  return import_graph(_modules())


def test_no_import_cycle(graph):
  edges, _ = graph
  cycle = find_cycle(edges)
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_the_packages(graph):
  edges, _ = graph
  assert "sagan_tf.run.state" in edges["sagan_tf.training.loop"]
  assert "sagan_tf.layers.spectral_norm" in edges["sagan_tf.models.generator"]
  assert "sagan_tf.inference.sample_files" in edges["launch.sample"]


def test_find_cycle_sees_an_import_inside_a_function(tmp_path):
  pkg = tmp_path / "sagan_tf"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "a.py").write_text("from sagan_tf import b\n")
  (pkg / "b.py").write_text("def f():\n  from sagan_tf import a\n  return a\n")
  edges, imports = import_graph(_modules(str(tmp_path)))
  assert find_cycle(edges) == ["sagan_tf.a", "sagan_tf.b", "sagan_tf.a"]
  assert ("sagan_tf.b", 2, "sagan_tf.a", True, False) in imports


def test_imports_inside_functions_say_why(graph):
  _, imports = graph
  silent = [f"{m}:{line} imports {what}"
            for m, line, what, in_function, commented in imports
            if in_function and not commented and not m.startswith("launch.")]
  assert not silent, ("project imports inside functions without a comment "
                      "saying why: " + "; ".join(silent))


def test_no_module_over_350_lines():
  long = []
  for module, path in _modules().items():
    with open(path) as f:
      n = sum(1 for _ in f)
    if n > MAX_LINES:
      long.append(f"{module} ({n} lines)")
  assert not long, f"modules over {MAX_LINES} lines: {long}"
