"""The package's shape: stages import only from the stages below them, no import cycles, imports
at the top (a function-level import names its start-up cost), short functions, typed errors.

The stages, lowest first (a module may import from its own subpackage, acyclically, and from
any lower stage; never from a stage at its own level or above):
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vmeval_hf
from vmeval_hf import errors

PKG = Path(vmeval_hf.__file__).parent

#: stage -> rank. A module belongs to the longest stage name that prefixes it.
STAGES = {
    "vmeval_hf.errors": 0,
    "vmeval_hf._shared": 1,
    "vmeval_hf.config": 2,
    "vmeval_hf.tree": 3,
    "vmeval_hf.release": 4,
    "vmeval_hf.generate": 4,
    "vmeval_hf.hub": 5,
    "vmeval_hf.s3": 5,
    "vmeval_hf.sandbox": 5,
    "vmeval_hf.versions": 6,
    "vmeval_hf.diff": 7,
    "vmeval_hf.load": 7,
    "vmeval_hf.publish": 8,
    "vmeval_hf.experiments": 8,
    "vmeval_hf.results": 9,
    "vmeval_hf.demo": 10,
    "vmeval_hf.cli": 11,
    "vmeval_hf.__main__": 12,
}
MAX_FUNCTION_LINES = 60
STARTUP_MARK = "# start-up"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _stage(module: str) -> str | None:
    best = None
    for stage in STAGES:
        if (module == stage or module.startswith(stage + ".")) and (best is None or len(stage) > len(best)):
            best = stage
    return best


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The vmeval_hf modules an ``ImportFrom`` loads (``from . import x`` may name a module)."""
    if node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("vmeval_hf"):
        return []
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.append(sub if sub in MODULES else target)
    return found


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported vmeval_hf module, line, at function level) for every import in ``module``."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # annotations only: never executed
            func = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                out.extend((m, child.lineno, in_function) for m in _resolve(module, path, child))
            elif isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_function) for a in child.names if a.name.startswith("vmeval_hf"))
            visit(child, func, type_only)

    visit(tree, False, False)
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}


def test_every_module_belongs_to_a_stage():
    assert [m for m in MODULES if m != "vmeval_hf" and _stage(m) is None] == []


def test_no_module_imports_its_own_stage_level_or_above():
    wrong = []
    for module, path in MODULES.items():
        if module == "vmeval_hf":
            continue  # the package root re-exports (lazily) from every stage
        mine = _stage(module)
        for target, line, _ in _imports(module, path):
            theirs = _stage(target)
            if target == "vmeval_hf":
                wrong.append(f"{path}:{line}: imports the package root (import from the stage instead)")
            elif theirs != mine and STAGES[theirs] >= STAGES[mine]:
                wrong.append(f"{path}:{line}: {mine} (rank {STAGES[mine]}) imports {target} (rank {STAGES[theirs]})")
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    cycles, state = [], {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_the_cycle_check_finds_a_cycle():
    """The walk above is not vacuous: a planted two-module cycle is found."""
    graph = {"a": {"b"}, "b": {"a"}}
    state: dict[str, str] = {}
    found = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = "done"

    walk("a", ["a"])
    assert found == [["a", "b", "a"]]


def _function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    out.append((node.lineno, lines[node.lineno - 1]))
    return sorted(set(out))


def test_function_level_imports_name_their_start_up_cost():
    """Imports belong at the top; one inside a function says why (a measured start-up cost)."""
    bare = []
    for path in MODULES.values():
        for line, text in _function_imports(path):
            if STARTUP_MARK not in text:
                bare.append(f"{path.relative_to(PKG.parent)}:{line}: {text.strip()}")
    assert bare == []


def test_only_the_cli_imports_sibling_modules_inside_functions():
    late = []
    for module, path in MODULES.items():
        if module == "vmeval_hf.cli":
            continue
        for target, line, in_function in _imports(module, path):
            if in_function:
                late.append(f"{path.relative_to(PKG.parent)}:{line}: {target}")
    assert late == []


def test_functions_are_short_or_say_why():
    long = []
    for path in MODULES.values():
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if length > MAX_FUNCTION_LINES and "Long because" not in doc:
                    long.append(f"{path.relative_to(PKG.parent)}:{node.lineno}: {node.name} ({length} lines)")
    assert long == []


def test_each_manifest_name_is_defined_once():
    names = {"vmeval_dataset.json": [], "vmeval_release.json": [], "MANIFEST.json": []}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value in names:
                names[node.value.value].append(f"{module}.{ast.unparse(node.targets[0])}")
    assert names == {
        "vmeval_dataset.json": ["vmeval_hf.tree.model.DATASET_MANIFEST"],
        "vmeval_release.json": ["vmeval_hf.release.release_manifest.RELEASE_MANIFEST"],
        "MANIFEST.json": ["vmeval_hf.s3.layout.MIRROR_MANIFEST"],
    }


def _error_classes() -> list[type[errors.VmevalError]]:
    return [c for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, errors.VmevalError)]


def test_every_error_class_declares_its_context_attributes():
    """Context travels as declared attributes (no ``getattr(exc, "status", None)`` guessing)."""
    for cls in _error_classes():
        fields = cls.context_fields()
        err = cls("message")
        for name in fields:
            assert hasattr(err, name), (cls.__name__, name)
        assert str(err) == "message"


def test_an_undeclared_context_attribute_is_refused():
    with pytest.raises(TypeError, match="nonsense"):
        errors.S3Error("x", nonsense=1)


def test_the_error_tree_is_drawn_in_the_module_docstring():
    for cls in _error_classes():
        assert re.search(rf"\b{cls.__name__}\b", errors.__doc__), cls.__name__


def test_public_functions_document_their_parameters():
    missing = []
    for name in vmeval_hf.__all__:
        obj = getattr(vmeval_hf, name)
        if not inspect.isfunction(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        for param in inspect.signature(obj).parameters:
            if param not in ("self", "kwargs", "fields") and f"``{param}``" not in doc:
                missing.append(f"{name}({param})")
    assert missing == []


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "vmeval_hf", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"vmeval-hf, version {vmeval_hf.__version__}"
