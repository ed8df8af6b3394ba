"""The version of the code a trained model depends on: a hash of the source its training imports.

The model cache (`model_cache.train_or_load`) keys a run by its settings AND by this
version, so a cached model is served only while the code that trained it is unchanged:

    >>> code_version(train_simclr)          # the modules train_simclr's module imports, and theirs …
    '3f2a9c0d41b7e655'

What counts: the package modules named (a module, or a function, class or object whose
module is in the package), every package module they import, directly or not (found by
reading their `import` statements with `ast`, function-level imports included), and the
code of the `__init__` of every package on the way (Python runs it on import; the siblings
it re-exports count only when the training imports them). A function defined
outside the package (in a notebook, a test) counts through the package objects it uses.

What does not: every other module. Editing `viz`, `preflight`, the measured timings, an
exercise or a maintainer tool changes no trained model's version; editing anything a
model's training imports always does. Comments and docstrings do not count either (the
hash is of the parsed code), so fixing a typo in a docstring retrains nothing; a new
Python version may change the parsed form and retrain once.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import os
import sys
import sysconfig
import types
from pathlib import Path

PACKAGE_NAME = __name__.rpartition(".")[0]                   # "contrastive_lab"
PACKAGE_DIR = Path(__file__).resolve().parent
LIBRARY_DIRS = tuple(sorted({os.path.abspath(sysconfig.get_paths()[key])
                             for key in ("stdlib", "platstdlib", "purelib", "platlib")}))


def _ours(name, package: str) -> bool:
    return isinstance(name, str) and (name == package or name.startswith(package + "."))


def _written_by_user(module_name) -> bool:
    """True for code written outside the package and outside any installed library: a notebook
    (`__main__`), a test, a script. What such code uses is followed; a library is not."""
    if module_name == "__main__":
        return True
    path = getattr(sys.modules.get(module_name), "__file__", None)
    return bool(path) and not os.path.abspath(path).startswith(LIBRARY_DIRS)


def module_file(name: str, package: str, root: Path) -> Path | None:
    """The source file of module `name` ("contrastive_lab.losses") if it belongs to `package`
    (whose folder is `root`), else None."""
    if not _ours(name, package):
        return None
    base = root.joinpath(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_names(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every module name an `import` in `tree` may load (a `from x import y` may name module x.y)."""
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _parents(name: str) -> list[str]:
    """The packages whose __init__ runs before module `name`: "a.b.c" → ["a", "a.b"]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=512)
def _parse(source: bytes) -> tuple[ast.Module, str]:
    """(tree, the code as text without docstrings): parsed once per distinct source."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree, ast.dump(tree)


def import_closure(modules, package: str | None = None, root: Path | None = None) -> dict[str, Path]:
    """{module name: source file} of `modules` (names) and every package module they import,
    directly or through others, with the __init__ of each package on the way.

    A package's __init__ met only on the way (it runs when `methods.simclr` is imported) counts
    by its own code; the siblings it imports to re-export them count only if the code uses them.
    """
    package, root = package or PACKAGE_NAME, root or PACKAGE_DIR
    todo = [(name, True) for name in modules]
    found: dict[str, Path] = {}
    followed: set[str] = set()
    while todo:
        name, follow = todo.pop()
        path = module_file(name, package, root)
        if path is None or name in followed or (name in found and not follow):
            continue
        found[name] = path
        todo.extend((parent, False) for parent in _parents(name))
        if follow:
            followed.add(name)
            tree, _ = _parse(path.read_bytes())
            todo.extend((imported, True) for imported in _imported_names(tree, name, path.name == "__init__.py"))
    return found


def _code_names(code: types.CodeType) -> set[str]:
    """Global and attribute names a function's code (and the functions nested in it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def modules_used_by(*objects, package: str | None = None) -> set[str]:
    """The package modules that `objects` (module names, modules, functions, classes, methods,
    partials or instances) come from. A function or class from outside the package counts
    through the package objects its code names (globals, attributes of a package module,
    closure cells)."""
    package = package or PACKAGE_NAME
    found: set[str] = set()
    seen: set[int] = set()

    def ours(module) -> bool:
        return _ours(module, package)

    def visit(obj, depth=0):
        if id(obj) in seen or depth > 20:
            return
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            if ours(obj.__name__):
                found.add(obj.__name__)
            return
        if isinstance(obj, functools.partial):
            for part in (obj.func, *obj.args, *obj.keywords.values()):
                visit(part, depth + 1)
            return
        if inspect.ismethod(obj):
            visit(obj.__self__, depth + 1)
            obj = obj.__func__
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            obj = type(obj)                                  # an instance: its class
        module = getattr(obj, "__module__", None)
        if ours(module):
            found.add(module)
        elif not _written_by_user(module):                   # torch, numpy, the standard library …
            return
        elif inspect.isclass(obj):                           # a class of a notebook: what its methods use
            for member in vars(obj).values():
                visit(member, depth + 1)
        elif inspect.isfunction(obj):                        # a function of a notebook: what it uses
            names = _code_names(obj.__code__)
            for name in sorted(names):
                value = obj.__globals__.get(name)
                if value is None:
                    continue
                visit(value, depth + 1)
                if isinstance(value, types.ModuleType) and ours(value.__name__):
                    for attr in sorted(names & set(dir(value))):    # cl.train.fit → contrastive_lab.train
                        visit(getattr(value, attr), depth + 1)
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:                           # a cell not filled yet
                    pass
    for obj in objects:
        if isinstance(obj, str):                             # a module's name
            found.update([obj] if ours(obj) else [])
        else:
            visit(obj)
    return found


def code_version(*code, package: str | None = None, root: Path | None = None) -> tuple[str, list[str]]:
    """(version, modules): a 16-hex hash of the code of every module `code` needs
    (`modules_used_by`, then `import_closure`), and those modules' names, sorted."""
    closure = import_closure(modules_used_by(*code, package=package), package, root)
    h = hashlib.sha256()
    for name in sorted(closure):
        h.update(name.encode() + b"\0")
        h.update(_parse(closure[name].read_bytes())[1].encode() + b"\0")
    return h.hexdigest()[:16], sorted(closure)
