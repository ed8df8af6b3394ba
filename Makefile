# Contrastive Lab: two commands.
#   make lab    set up (once) and open the course in JupyterLab
#   make test   set up (once) and run the unit tests (the browser test included, where
#               Chromium is installed) and every notebook under nbval
# Set-up creates .venv with the package installed editable, every package at the exact
# version of requirements-lock.txt; it reruns only when pyproject.toml or the lock changes.
# `make lock` refreshes the lock.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements-lock.txt
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=600

.PHONY: lab test unit nbval execute student preflight html lock benchmark mutation clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(LOCK) -e ".[test]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

test: $(STAMP)
	CLAB_PROFILE=quick $(BIN)/python -m pytest tests -q
	CLAB_PROFILE=quick $(BIN)/python -m pytest $(NBVAL) notebooks -q

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

nbval: $(STAMP)
	CLAB_PROFILE=quick $(BIN)/python -m pytest $(NBVAL) notebooks -q

# Re-execute notebooks in place (quick profile) to refresh their stored outputs; each one's
# measured time goes into its first cell, docs/teaching.md and contrastive_lab/course_timings.json.
# All of them: in order, each in a fresh kernel, with a fresh temporary model cache (every shared
# model trained once, by the first notebook that needs it; data/models is not touched).
# One notebook: make execute NB=notebooks/02_triplet_loss.ipynb (the usual cache, data/models)
# Under another seed (every seed the course sets moves by SEED): make execute SEED=1
execute: $(STAMP)
	CLAB_PROFILE=quick CLAB_SEED=$(or $(SEED),0) $(BIN)/python -m tools.notebook_tools execute $(if $(NB),$(NB),--whole-course $(NOTEBOOKS))

# The student copy, in student/: every cell tagged "solution" becomes a placeholder (its
# check then says "not done yet"), every output is cleared. Hand out that folder.
student: $(STAMP)
	rm -rf student
	$(BIN)/python -m tools.notebook_tools strip-solutions --out student $(NOTEBOOKS)

# Can this machine run the course? One line per check; exit status 1 if any says FIX.
preflight: $(STAMP)
	$(BIN)/python -m contrastive_lab.preflight

# The course as HTML pages (stored outputs, no kernel needed), in build/html/.
html: $(STAMP)
	$(BIN)/jupyter nbconvert --to html --output-dir build/html $(NOTEBOOKS)

# Refresh requirements-lock.txt from pyproject.toml. Keeps every pin that still fits;
# `make lock UPGRADE=1` moves every package to its newest release. Re-execute the notebooks
# after a change of versions: stored outputs and tuned margins come from the lock.
lock: $(STAMP)
	$(BIN)/python -m pip install pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --extra test --extra mutation --strip-extras \
	    --no-emit-find-links --no-emit-index-url $(if $(UPGRADE),--upgrade) --output-file $(LOCK) pyproject.toml

# Mutation testing (docs/mutation.md), not part of `make test`: mutmut changes the code of
# losses, augment and evaluate one small edit at a time and reruns, for each edit, the tests
# that call the changed function. Capped at MUTATION_MINUTES of wall clock (default 120;
# the whole set took about 3 h on 2 busy cores). Without MODULE it resumes where the last
# run stopped (results are kept in mutants/); MODULE=augment reruns that module's mutants.
# MUTATION_JOBS mutants run at once (mutmut's --max-children), at niceness MUTATION_NICE:
# on cores shared with other work, MUTATION_JOBS=1 MUTATION_NICE=15 takes only idle CPU.
# Then: $(BIN)/mutmut results (survivors), $(BIN)/mutmut show NAME (a mutant's diff).
MUTATION_MINUTES ?= 120
MUTATION_JOBS ?= 2
MUTATION_NICE ?= 10
mutation: $(STAMP)
	$(BIN)/python -m pip install -c $(LOCK) -e ".[test,mutation]"
	-OMP_NUM_THREADS=1 CLAB_PROFILE=quick timeout -s INT -k 60 $(MUTATION_MINUTES)m \
	    nice -n $(MUTATION_NICE) $(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(if $(MODULE),"contrastive_lab.$(MODULE).*")
	$(BIN)/python tools/mutation_score.py

benchmark: $(STAMP)
	$(BIN)/python benchmarks/augment_vs_v2_loop.py
	$(BIN)/python benchmarks/notebook_seconds.py

clean:
	rm -rf $(VENV) student build
