"""The package's maps are true: every module opens with a docstring, and every module and
subpackage is named in the map of the package that holds it (a learner navigates by them)."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "contrastive_lab"
SUBPACKAGES = sorted(p.parent for p in PACKAGE.glob("*/__init__.py"))
MODULES = sorted(p for p in (*PACKAGE.rglob("*.py"), *(ROOT / "tools").glob("*.py")))


def docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_opens_with_a_docstring_that_says_its_job(path):
    first = docstring(path).strip().splitlines()
    assert first and len(first[0]) > 15, f"{path.relative_to(ROOT)} opens with no docstring saying its job"


def named(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}\b", text) is not None


def test_the_package_map_names_every_module_and_subpackage():
    text = docstring(PACKAGE / "__init__.py")
    missing = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__" and not named(p.stem, text)]
    missing += [f"{p.name}/" for p in SUBPACKAGES if f"{p.name}/" not in text]
    assert not missing, f"contrastive_lab/__init__.py's map does not name {missing}"


@pytest.mark.parametrize("folder", [p for p in SUBPACKAGES if p.name != "exercises"] + [ROOT / "tools"],
                         ids=lambda p: p.name)
def test_each_subpackage_map_names_its_modules(folder):
    text = docstring(folder / "__init__.py")
    missing = [p.stem for p in folder.glob("*.py") if p.stem != "__init__" and not named(p.stem, text)]
    assert not missing, f"{folder.relative_to(ROOT)}/__init__.py's map does not name {missing}"


def test_the_exercises_hold_one_module_per_notebook():
    notebooks = {p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    modules = {p.stem[2:] for p in (PACKAGE / "exercises").glob("nb[0-9][0-9].py")}
    assert modules == notebooks
