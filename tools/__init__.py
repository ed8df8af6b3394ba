"""Maintainer tools for the course's notebooks, kept out of the learner package `contrastive_lab`.

    notebook_tools     the commands: execute, strip-solutions (the student copy), widget-notebooks,
                       dependents, colab, colab-links (python -m tools.notebook_tools --help)
    notebook_analysis  a static reading of a notebook's cells: which names each cell reads and
                       binds, what a solution defines, what a widget needs
    mutation_score     the kill rate per module of the last `make mutation` run

`make execute`, `make student`, the browser test and the notebook tests call them. A
learner never needs them; the measured notebook timings the pre-flight reads stay in the
package (`contrastive_lab.course_timings`).
"""
