"""House rules (docs/architecture.md) that code review alone would let slip: the layers
import downward only, no import cycles, importing has no side effects, and nothing
outside a task's own package switches on the task's name."""

import ast
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the subprocesses import this checkout's packages (the ones _modules lists), not whatever
# an editable install of the interpreter points at (another checkout or worktree)
IMPORT_PATH = {"PYTHONPATH": str(REPO)}
PURE = ("realdata", "synth", "models", "analysis")
FIRST_PARTY = (*PURE, "catalog", "expectations", "synthloop", "tasks", "flows", "benchmarks")
FORBIDDEN_THIRD_PARTY = ("prefect", "mlflow", "optuna", "great_expectations")
#: what each pure package may import of the project (the layers, lowest first)
ALLOWED = {
    "realdata": {"realdata"},
    "synth": {"synth", "realdata"},
    "models": {"models", "synth", "realdata"},
    "analysis": {"analysis", "synth", "realdata"},
}


def _files(pkg: str) -> list[Path]:
    return sorted(p for p in (REPO / pkg).rglob("*.py")
                  if p.name != "__main__.py" and "migrations" not in p.parts)


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def _modules(pkg: str) -> list[str]:
    return [_module(p) for p in _files(pkg)]


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file, function-level ones included,
    those under ``if TYPE_CHECKING:`` left out (they never run)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` imports pkg.mod when mod is a module
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = (REPO / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                    (REPO / Path(*sub.split(".")) / "__init__.py").is_file()
                out.append((node.lineno, sub if is_module else node.module))
    return out


def test_pure_packages_import_no_orchestration_or_tracking(tmp_path):
    mods = [m for pkg in PURE for m in _modules(pkg)]
    assert len(mods) > 5
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted({{k.split('.')[0] for k in sys.modules}} & set({FORBIDDEN_THIRD_PARTY!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True, env={**os.environ, **IMPORT_PATH})
    assert out.stdout.strip() == "", f"pure packages pulled in: {out.stdout}"


def test_pure_packages_import_only_lower_layers():
    """Including function-level imports: a lazy import is still an arrow upward."""
    bad = [f"{path.relative_to(REPO)}:{line} imports {mod}"
           for pkg, allowed in ALLOWED.items() for path in _files(pkg)
           for line, mod in _imports(path)
           if mod.split(".")[0] in FIRST_PARTY and mod.split(".")[0] not in allowed]
    assert bad == []


def test_no_import_cycles():
    modules = {_module(p): p for pkg in FIRST_PARTY for p in _files(pkg)}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for _, mod in _imports(path):
            # the longest first-party module the import names (pkg.mod.attr -> pkg.mod)
            parts = mod.split(".")
            target = next((".".join(parts[:i]) for i in range(len(parts), 0, -1)
                           if ".".join(parts[:i]) in modules), None)
            if target and target != name:
                graph[name].add(target)
    cycles = _strongly_connected(graph)
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_detector_finds_a_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_nothing_outside_a_task_switches_on_its_name():
    """``x == "landmarks"`` and the like belong in the task's own package (its task object
    answers instead); tests and benchmarks may name tasks."""
    from synthloop.taskspec import TASK_MODULES

    names = set(TASK_MODULES)
    owners = ("synthloop/gaze/", "synthloop/landmarks/", "models/tasks/")
    hits = []
    for pkg in FIRST_PARTY:
        if pkg == "benchmarks":
            continue
        for path in _files(pkg):
            rel = str(path.relative_to(REPO))
            if rel.startswith(owners):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare):
                    consts = [c.value for c in (node.left, *node.comparators)
                              if isinstance(c, ast.Constant)]
                    if any(c in names for c in consts):
                        hits.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert hits == []


def test_importing_has_no_side_effects(tmp_path, tmp_path_factory):
    mods = [m for pkg in FIRST_PARTY if pkg != "benchmarks" for m in _modules(pkg)]
    code = f"import importlib\nfor m in {mods!r}: importlib.import_module(m)\n"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **IMPORT_PATH,
           # Prefect creates its own home on import: that one is Prefect's, put elsewhere
           "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect"))}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, env=env)
    created = sorted(p.name for p in tmp_path.iterdir())
    assert created == [], f"importing created {created}"
