# Contrastive Lab: two commands.
#   make lab    set up (once) and open the course in JupyterLab
#   make test   set up (once) and run the unit tests and every notebook under nbval
# Set-up creates .venv with the package installed editable; it reruns only
# when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=600

.PHONY: lab test unit nbval execute student preflight benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[test]"
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

# Re-execute notebooks in place (quick profile) to refresh their stored outputs.
# One notebook: make execute NB=notebooks/02_triplet_loss.ipynb
execute: $(STAMP)
	CLAB_PROFILE=quick $(BIN)/python -m contrastive_lab.notebook_tools execute $(or $(NB),$(NOTEBOOKS))

# A copy of the course without the cells tagged "solution", in student/.
student: $(STAMP)
	$(BIN)/python -m contrastive_lab.notebook_tools strip-solutions --out student $(NOTEBOOKS)

preflight: $(STAMP)
	$(BIN)/python -m contrastive_lab.preflight

benchmark: $(STAMP)
	$(BIN)/python benchmarks/augment_vs_v2_loop.py
	$(BIN)/python benchmarks/notebook_seconds.py

clean:
	rm -rf $(VENV) student
