"""Reading notebook code without a kernel: worked examples on tiny cells and notebooks."""
import nbformat

from tools.notebook_analysis import (cell_names, cells_needed, exercises, placeholder_source,
                                               solution_dependents, widget_cells)


def notebook(*cells):
    """A notebook from (source, tags) pairs or plain sources; "md:" starts a markdown cell."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        new = (nbformat.v4.new_markdown_cell(source[3:]) if source.startswith("md:")
               else nbformat.v4.new_code_cell(source))
        new.metadata["tags"] = tags
        nb.cells.append(new)
    return nb


def test_reads_are_names_used_before_the_cell_binds_them():
    names = cell_names("y = x + 1\nz = y * 2\nprint(z, w)")
    assert names.reads == {"x", "print", "w"}          # y and z are bound here first
    assert names.writes == {"y", "z"}


def test_function_bodies_read_their_free_names_only():
    names = cell_names("def f(a, b=k):\n    c = a + b\n    return c * scale\n")
    assert names.reads == {"k", "scale"}
    assert names.writes == {"f"}


def test_comprehension_variables_are_not_reads():
    assert cell_names("out = [v * 2 for v in values if v > limit]").reads == {"values", "limit"}


def test_changes_in_place_are_seen():
    names = cell_names("runs['a'] = 1\nmodel.eval()\nfit(step, params)\nprint(table)\nimport os\nos.chdir('x')")
    assert names.changes == {"runs", "model", "step", "params"}     # print changes nothing; os is a module
    assert names.imports == {"os"}


def test_magics_are_skipped():
    assert cell_names("%matplotlib inline\nx = 1").writes == {"x"}
    assert cell_names("%%time\nx = 1") == cell_names("")


def test_widget_cells_are_the_cells_that_call_interact():
    nb = notebook("from ipywidgets import interact", "def f(s):\n    print(s)", "_ = interact(f, s=(0, 3))")
    assert widget_cells(nb) == [2]


def test_cells_needed_is_the_backward_slice_of_the_widget():
    nb = notebook(
        "import math",                              # 0: needed (math)
        "data = list(range(10))",                   # 1: needed (data)
        "slow = sum(data)",                         # 2: not needed
        "data.append(99)",                          # 3: needed: it changes data
        "md:a markdown cell",                       # 4
        "def show(s):\n    print(math.sqrt(s), data[-1])",   # 5: needed
        "_ = interact(show, s=(0, 9))",             # 6: the widget
    )
    assert cells_needed(nb, [6]) == [0, 1, 3, 5, 6]


def test_exercises_pair_each_solution_with_its_check_and_the_names_it_must_define():
    nb = notebook(
        "x = 3",
        ("helper = 2\nanswer = x * helper", ["solution"]),
        "check_answer(answer, x)",
        ("def fn(a, b=1):\n    return a + b", ["solution"]),
        "check_fn(fn)",
    )
    assert [(e.solutions, e.check, e.answer_names) for e in exercises(nb)] == [
        ((1,), 2, ("answer",)),                 # helper is read by no later cell: no placeholder needed
        ((3,), 4, ("fn",)),
    ]


def test_a_cell_that_uses_an_answer_outside_its_check_is_reported():
    nb = notebook(
        ("answer = 42", ["solution"]),
        "check_answer(answer)\nbigger = answer + 1",   # the second line breaks the student copy
        "print(bigger)",                              # reads a notebook name: fine
        "answer = 0\nprint(answer)",                  # rebinds it first: fine
    )
    found = solution_dependents(nb)
    assert [(d.cell, d.names, d.solution) for d in found] == [(1, ("answer",), 0)]
    assert "bigger = answer + 1" in str(found[0])


def test_placeholder_defines_each_answer_as_ellipsis_or_a_stub_with_the_same_signature():
    source = placeholder_source("def fn(a, b=1):\n    return a + b\nanswer = fn(2)", ["answer", "fn"])
    namespace = {}
    exec(source, namespace)
    assert namespace["answer"] is ...
    assert "def fn(a, b=1):" in source and "return a + b" not in source
    try:
        namespace["fn"](1)
    except NotImplementedError as exc:
        assert "fn" in str(exc)
    else:
        raise AssertionError("the stub should raise NotImplementedError")


def test_a_training_call_changes_its_model_wherever_its_result_goes():
    names = cell_names("history = train_clip(model, data, tok)\nh = fit(step, encoder.parameters(), batches, 3)\n"
                       "acc = knn_accuracy(features, labels)")
    assert {"model", "encoder"} <= names.changes
    assert not {"data", "tok", "features", "labels"} & names.changes    # read, not trained
