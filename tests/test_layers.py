"""The layers of ARCHITECTURE.md, checked: each module imports (at run time) only modules of
its own layer or the layers above it, and no module imports a framework at import time."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pybt"

# Top to bottom; a module may import from its own layer and the ones above.
LAYERS = [
    ["errors", "_imports", "_validate", "_version", "_system"],
    ["objective", "space"],
    ["records", "lineage", "history"],
    ["policy"],
    ["model"],
    ["executor"],
    ["store"],
    ["callbacks"],
    ["population"],
    ["scoring", "runlog", "checkpoint", "settings", "results", "winner", "turns"],
    ["trainer"],
    ["replay", "report", "demo", "cli", "__init__"],
]
FRAMEWORKS = {
    "torch",
    "keras",
    "ray",
    "matplotlib",
    "pandas",
    "tensorboardX",
    "tensorboard",
    "mlflow",
    "tqdm",
}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def runtime_imports(path: Path) -> list[tuple[str, int]]:
    """``(module, line)`` for imports that run when the module is imported (not in functions,
    not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((node.module, node.lineno))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return found


def modules() -> list[tuple[str, Path]]:
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        result.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return result


def test_every_module_imports_only_its_layer_and_those_above() -> None:
    wrong = []
    for name, path in modules():
        if name == "pybt":
            continue
        for imported, line in runtime_imports(path):
            if imported.startswith("pybt.") and layer_of(imported) > layer_of(name):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_module_imports_a_framework_when_it_is_imported() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}"
        for _, path in modules()
        for imported, line in runtime_imports(path)
        if imported.split(".")[0] in FRAMEWORKS
    ]
    assert not wrong, "frameworks are imported where they are used:\n" + "\n".join(wrong)


def test_every_module_says_what_it_is_for() -> None:
    missing = [str(path) for _, path in modules() if ast.get_docstring(ast.parse(path.read_text())) is None]
    assert not missing, missing
