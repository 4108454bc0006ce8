"""No test module imports another test module: what tests share lives in testkit/ (or a conftest.py).

A test module is one whose last dotted component starts with `test_`; importing one runs its
tests' module-level set-up twice and ties one test file's helpers to another's. Relative imports
count too. Enforced here by parsing every .py file under tests/ (import-linter cannot tell test
modules from helper modules inside tests/).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imported_modules(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every module an import statement names, and for
    `from X import name`, also X.name (it may be a submodule)."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def test_imports_of_test_modules():
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_modules(tree, module, path.name == "__init__.py"):
            if name.rpartition(".")[2].startswith("test_"):
                offences.append(f"{path.relative_to(ROOT)}:{line}: imports the test module {name}")
    assert not offences, ("a test module imports another test module; move what they share to testkit/:\n"
                          + "\n".join(offences))
