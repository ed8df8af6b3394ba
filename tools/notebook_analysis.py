"""Reading a notebook's code without running it: which names each cell reads and writes.

The classroom tools are built on this:

    cell_names(source)            -> CellNames: what one cell reads, binds and changes
    widget_cells(nb)              -> indices of the cells that show an ipywidgets widget
    cells_needed(nb, targets)     -> the earlier cells those cells need (a backward slice),
                                     so a browser test can run a widget without the whole notebook
    exercises(nb)                 -> Exercise(solution cells, check cell, names a placeholder defines)
    solution_dependents(nb)       -> later cells that read a name only a solution defines
                                     (they would stop "Run All" in a student copy)
    untagged_solutions(nb)        -> cells that look like a solution but lack the exact tag
                                     (they would reach a student copy verbatim)

`nb` is an `nbformat` notebook (or the dict `json.load` gives); cell indices count every
cell, markdown included, as JupyterLab numbers them. The analysis reads the syntax only:
it sees `x = …`, `x[i] = …`, `x.append(…)` and `train(x)` as changes to `x`, and cannot see
a change made through another name. Cells that do not parse (IPython magics aside) read
and write nothing.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

SOLUTION_TAG = "solution"
NOT_SOLUTION_TAG = "not-a-solution"      # says "this cell only looks like a solution"
CHECK_PREFIX = "check_"
WIDGET_CALLS = ("interact", "interactive", "interact_manual")
TRAINING_CALLS = re.compile(r"^(fit|train(_\w+)?)$")    # train_simclr(model, …), fit(step, model.parameters(), …)
# calls made for their display only: their arguments are read, never changed
DISPLAY_CALLS = {"print", "display", "len", "repr", "str", "sorted", "list", "dict", "set", "tuple",
                 "isinstance", "type", "float", "int", "round", "max", "min", "sum", "abs", "all", "any",
                 "zip", "enumerate", "range", "Markdown", "HTML"}


@dataclass(frozen=True)
class CellNames:
    """What one code cell does with names, in the order it runs.

    reads:   names it reads before binding them itself (free names, function bodies included)
    writes:  names it binds (`x = …`, `def x`, `import x`, `for x in …`)
    changes: names whose object it may change in place (`x[i] = …`, `x.a = …`, `x += …`,
             `x.append(…)`, `f(x, …)` as a statement, the model of a training call:
             `h = train_clip(model, …)`, `fit(step, model.parameters(), …)`); modules excluded
    imports: names bound by import statements
    calls:   names of the functions it calls at any depth (`f(…)`, `obj.f(…)` gives "f")
    """
    reads: frozenset = frozenset()
    writes: frozenset = frozenset()
    changes: frozenset = frozenset()
    imports: frozenset = frozenset()
    calls: frozenset = frozenset()


def code_source(source) -> str:
    """A cell's source as Python: IPython magics and shell lines (`%…`, `!…`) commented out;
    a cell magic (`%%…`) makes the whole cell non-Python (returns "")."""
    text = "".join(source) if isinstance(source, list) else source
    if text.lstrip().startswith("%%"):
        return ""
    return re.sub(r"(?m)^(\s*)([%!])", r"\1#\2", text)


def _parse(source) -> ast.Module | None:
    try:
        return ast.parse(code_source(source))
    except SyntaxError:
        return None


def _base_name(node) -> str | None:
    """`x` for x, x.a, x[i], x.a[i].b …; None for anything else."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _target_names(target) -> tuple[set, set]:
    """(names bound, names changed in place) by an assignment target."""
    bound, changed = set(), set()
    for node in ast.walk(target):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Store):
            base = _base_name(node)
            if base:
                changed.add(base)
    return bound, changed


def _local_names(fn) -> set:
    """Names a function (or lambda) binds: its parameters and every name stored in its body."""
    args = fn.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a}
    body = fn.body if isinstance(fn.body, list) else [fn.body]
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _loads(node, local: frozenset = frozenset()) -> set:
    """Names read by an expression or statement, minus those bound locally (function
    parameters and locals, comprehension variables)."""
    found = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        for d in getattr(node, "decorator_list", []) + node.args.defaults + [
                d for d in node.args.kw_defaults if d is not None]:
            found |= _loads(d, local)
        inner = local | _local_names(node)
        body = node.body if isinstance(node.body, list) else [node.body]
        for stmt in body:
            found |= _loads(stmt, inner)
        return found
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        inner = set(local)
        for gen in node.generators:
            found |= _loads(gen.iter, frozenset(inner))
            inner |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            for cond in gen.ifs:
                found |= _loads(cond, frozenset(inner))
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            found |= _loads(part, frozenset(inner))
        return found
    if isinstance(node, ast.Name):
        return {node.id} - local if isinstance(node.ctx, ast.Load) else set()
    for child in ast.iter_child_nodes(node):
        found |= _loads(child, local)
    return found


def _calls(tree) -> set:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                names.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
    return names


def _training_changes(stmt) -> set:
    """Models a training call changes, wherever its result goes: the first argument of
    `train…(model, …)` / `fit(…)`, and `m` in any `m.parameters()` passed to one."""
    changed = set()
    for node in _walk_outside_functions(stmt):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        callee = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if not TRAINING_CALLS.match(callee):
            continue
        if node.args and _base_name(node.args[0]):
            changed.add(_base_name(node.args[0]))
        for arg in node.args + [k.value for k in node.keywords]:
            if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
                    and arg.func.attr == "parameters" and _base_name(arg.func.value)):
                changed.add(_base_name(arg.func.value))
    return changed


def _walk_outside_functions(node):
    """ast.walk, without entering function bodies or lambdas (they run later, if ever)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            yield from _walk_outside_functions(child)


def _statement_changes(stmt) -> set:
    """Names a statement may change in place besides assignment targets: the receiver of a
    method called as a statement (`x.append(…)`), and names passed to a function called as a
    statement (`fit(x, …)`, `train(model)`), display calls excepted."""
    if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
        return set()
    call = stmt.value
    changed = set()
    if isinstance(call.func, ast.Attribute):
        base = _base_name(call.func.value)
        if base and call.func.attr not in ("show", "savefig", "tight_layout"):
            changed.add(base)
    callee = call.func.id if isinstance(call.func, ast.Name) else (
        call.func.attr if isinstance(call.func, ast.Attribute) else None)
    if callee not in DISPLAY_CALLS:
        for arg in list(call.args) + [k.value for k in call.keywords]:
            base = _base_name(arg)
            if base:
                changed.add(base)
    return changed


def cell_names(source) -> CellNames:
    """What a code cell's source reads, binds and changes (see CellNames)."""
    tree = _parse(source)
    if tree is None:
        return CellNames()
    reads, writes, changes, imports = set(), set(), set(), set()

    def visit(stmts):
        for stmt in stmts:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                names = {(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"}
                imports.update(names)
                writes.update(names)
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                reads.update(_loads(stmt) - writes - {stmt.name})
                writes.add(stmt.name)
                continue
            if isinstance(stmt, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith)):
                header = [getattr(stmt, k) for k in ("test", "iter") if hasattr(stmt, k)]
                header += [item.context_expr for item in getattr(stmt, "items", [])]
                for expr in header:
                    reads.update(_loads(expr) - writes)
                targets = [getattr(stmt, "target", None)] + [item.optional_vars for item in getattr(stmt, "items", [])]
                for target in filter(None, targets):
                    bound, changed = _target_names(target)
                    writes.update(bound)
                    changes.update(changed)
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(stmt, block, []))
                for handler in getattr(stmt, "handlers", []):
                    if handler.type is not None:
                        reads.update(_loads(handler.type) - writes)
                    if handler.name:
                        writes.add(handler.name)
                    visit(handler.body)
                continue
            reads.update(_loads(stmt) - writes)
            targets = []
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
                targets = [stmt.target]
            for target in targets:
                bound, changed = _target_names(target)
                if isinstance(stmt, ast.AugAssign):
                    changed |= bound          # x += … may change x in place (a tensor, a list)
                writes.update(bound)
                changes.update(changed)
            changes.update(_statement_changes(stmt))
            changes.update(_training_changes(stmt))
    visit(tree.body)
    return CellNames(frozenset(reads), frozenset(writes), frozenset(changes - imports),
                     frozenset(imports), frozenset(_calls(tree)))


# ----------------------------------------------------------------------------- notebooks

def _cells(nb):
    return nb["cells"] if isinstance(nb, dict) else nb.cells


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def tags(cell) -> list:
    """The cell's tags as a list of strings (a single string or null, as hand-edited
    notebooks sometimes hold, counts as one tag or none)."""
    found = (cell.get("metadata") or {}).get("tags")
    if isinstance(found, str):
        return [found]
    return [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def is_solution(cell) -> bool:
    return SOLUTION_TAG in tags(cell)


def code_cells(nb) -> list[int]:
    return [i for i, c in enumerate(_cells(nb)) if c["cell_type"] == "code"]


def widget_cells(nb) -> list[int]:
    """Code cells that show an ipywidgets widget: they call interact / interactive or display
    a widget object (`widgets.IntSlider(…)` shown with `display`)."""
    found = []
    for i in code_cells(nb):
        names = cell_names(_source(_cells(nb)[i]))
        if names.calls & set(WIDGET_CALLS):
            found.append(i)
        elif "display" in names.calls and re.search(r"\bwidgets\.\w+\(", _source(_cells(nb)[i])):
            found.append(i)
    return found


def cells_needed(nb, targets) -> list[int]:
    """The code cells, in order, that running `targets` needs: for every name a needed cell
    reads, the last earlier cell that binds it and every cell in between that changes it;
    then the same for those cells. A call whose result is bound (`acc = knn(x, …)`) is not taken
    to change its arguments, except the model of a training call (see CellNames.changes), so
    a widget sees the models trained as in the notebook."""
    cells = _cells(nb)
    names = {i: cell_names(_source(cells[i])) for i in code_cells(nb)}
    modules = set().union(*(n.imports for n in names.values()))   # `plt.show()` changes no state we need
    needed = set(targets)
    todo = list(targets)
    while todo:
        i = todo.pop()
        for name in names[i].reads:
            for j in sorted((j for j in names if j < i), reverse=True):
                if (name in names[j].changes and name not in modules) or name in names[j].writes:
                    if j not in needed:
                        needed.add(j)
                        todo.append(j)
                if name in names[j].writes and name not in names[j].reads:
                    break             # bound afresh here: nothing earlier matters for this name
    return sorted(needed)


@dataclass(frozen=True)
class Exercise:
    """One exercise: its solution cells (tagged "solution"), the code cell after them that
    calls a check_… function, and the names the check cell (or any later cell) reads from
    the solution: what a placeholder must define so that the check can run."""
    solutions: tuple
    check: int | None
    answer_names: tuple = field(default=())


def exercises(nb) -> list[Exercise]:
    """The notebook's exercises, in order (see Exercise)."""
    cells = _cells(nb)
    found, group = [], []
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and is_solution(cell):
            group.append(i)
            continue
        if group and cell["cell_type"] == "code":
            if any(c.startswith(CHECK_PREFIX) for c in cell_names(_source(cell)).calls):
                found.append((tuple(group), i))
                group = []
    if group:
        found.append((tuple(group), None))
    readers = solution_readers(nb)
    out = []
    for sols, check in found:
        wanted = set()
        for sol in sols:
            wanted |= readers.get(sol, set())
        out.append(Exercise(sols, check, tuple(sorted(wanted))))
    return out


def _ownership(nb):
    """Walk the code cells in order; yield (index, CellNames, owner) where owner maps every
    name bound so far to the index of the last cell that bound it."""
    owner = {}
    for i in code_cells(nb):
        names = cell_names(_source(_cells(nb)[i]))
        yield i, names, dict(owner)
        for name in names.writes:
            owner[name] = i


def solution_readers(nb) -> dict:
    """For each solution cell: the names it binds that a later non-solution cell reads."""
    cells = _cells(nb)
    readers = {}
    for i, names, owner in _ownership(nb):
        if is_solution(cells[i]):
            continue
        for name in names.reads:
            j = owner.get(name)
            if j is not None and is_solution(cells[j]):
                readers.setdefault(j, set()).add(name)
    return readers


@dataclass(frozen=True)
class Dependent:
    """A cell that is not a solution but reads a name only a solution defines."""
    cell: int
    names: tuple
    solution: int
    line: str

    def __str__(self):
        return (f"cell {self.cell} reads {', '.join(self.names)} from solution cell {self.solution}: "
                f"{self.line.strip()[:90]}")


def is_check_statement(stmt) -> bool:
    """A statement a check cell may run on the learner's answer: an import, or a call of a
    check_… function (bare, or bound to `_`)."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return True
    value = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
    if isinstance(value, ast.Call):
        func = value.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        return name.startswith(CHECK_PREFIX)
    return False


def solution_dependents(nb) -> list[Dependent]:
    """Cells that would fail in a student copy because they read a name only a solution binds.
    A check cell may pass the answer to its check_… call; any other statement that reads it,
    in that cell or any later non-solution cell, is reported (one Dependent per statement)."""
    cells = _cells(nb)
    found = []
    for i, _, owner in _ownership(nb):
        if is_solution(cells[i]):
            continue
        tree = _parse(_source(cells[i]))
        if tree is None:
            continue
        bound_here = set()
        for stmt in tree.body:
            stmt_names = cell_names(ast.unparse(stmt))
            from_solution = sorted(n for n in stmt_names.reads - bound_here
                                   if n in owner and is_solution(cells[owner[n]]))
            if from_solution and not is_check_statement(stmt):
                line = ast.get_source_segment(code_source(_source(cells[i])), stmt) or ast.unparse(stmt)
                found.append(Dependent(i, tuple(from_solution), owner[from_solution[0]], line.splitlines()[0]))
            bound_here |= stmt_names.writes
    return found


def check_arguments(source) -> set:
    """The names read by the arguments of the check_… calls in a cell's source."""
    tree = _parse(source)
    names = set()
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called.startswith(CHECK_PREFIX):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    names |= {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)}
    return names


def untagged_solutions(nb) -> list[str]:
    """Cells that look like a solution but are not tagged exactly "solution", one line each:
    a tag that contains the word ("solutions", "Solution"), or, in an exercise with no
    solution cell at all, a code cell that binds a name its check_… call is given (the code
    cells between the exercise's text, or the check before, and this check). A cell tagged
    "not-a-solution" is left alone."""
    cells = _cells(nb)
    found = []
    for i, cell in enumerate(cells):
        near = [t for t in tags(cell) if "solution" in t.lower() and t not in (SOLUTION_TAG, NOT_SOLUTION_TAG)]
        if near and SOLUTION_TAG not in tags(cell):
            found.append(f"cell {i} is tagged {near[0]!r}, not {SOLUTION_TAG!r}")
    for i in code_cells(nb):
        given = check_arguments(_source(cells[i]))
        block = []
        for j in range(i - 1, -1, -1):                  # the code cells right above the check
            if cells[j]["cell_type"] != "code" or check_arguments(_source(cells[j])):
                break
            block.append(j)
        if not given or any(is_solution(cells[j]) for j in block):
            continue
        for j in block:
            bound = sorted(cell_names(_source(cells[j])).writes & given)
            if bound and NOT_SOLUTION_TAG not in tags(cells[j]):
                found.append(f"cell {j} defines {', '.join(bound)}, which the check in cell {i} is given, "
                             f"but is not tagged {SOLUTION_TAG!r}")
            given -= cell_names(_source(cells[j])).writes
    return found


def placeholder_source(solution_source: str, answer_names) -> str:
    """The student's version of a solution cell: a prompt, then each name later cells read,
    defined as a placeholder — a function with the solution's signature that raises
    NotImplementedError, or `name = ...` — so the check below reports "not done yet"."""
    tree = _parse(solution_source)
    functions = {}
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in answer_names:
                functions[node.name] = ast.unparse(node.args)
    lines = ["# Your solution here. Until you write it, the check below says \"not done yet\"."]
    for name in answer_names:
        if name in functions:
            lines += ["", f"def {name}({functions[name]}):",
                      f"    raise NotImplementedError(\"write {name}\")"]
    lines += [f"{name} = ...  # your answer" for name in answer_names if name not in functions]
    return "\n".join(lines)
