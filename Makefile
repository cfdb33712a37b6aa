# Quick start: `make train` (set up, then train lstm and feedforward on select_nonmatching_object
# and plot them), `make test` (set up, then run the default test suite).
PYTHON ?= python3
VENV ?= .venv
# Pins torch to the local CPU build; `make ... CONSTRAINTS=` drops the pins.
CONSTRAINTS ?= constraints.txt
QUICKSTART_FRAMES ?= 1000000
QUICKSTART_DIR := runs/quickstart-$(shell date +%Y%m%d-%H%M%S)

BIN := $(VENV)/bin
STAMP := $(VENV)/.memrl-installed
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)

.PHONY: setup train test test-all clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PIP_CONSTRAINTS) -e ".[dev,popgym]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/memrl train core=lstm run_root=$(QUICKSTART_DIR) total_frames=$(QUICKSTART_FRAMES) experiment=quickstart
	$(BIN)/memrl train core=feedforward run_root=$(QUICKSTART_DIR) total_frames=$(QUICKSTART_FRAMES) experiment=quickstart
	$(BIN)/memrl plot run_dir=$(QUICKSTART_DIR) out=$(QUICKSTART_DIR)/returns.png
	$(BIN)/memrl plot run_dir=$(QUICKSTART_DIR) out=$(QUICKSTART_DIR)/success.png metric=mean_success
	for run in $(QUICKSTART_DIR)/*/; do \
		$(BIN)/memrl eval checkpoint=$$run episodes=100 || exit 1; \
		$(BIN)/memrl eval checkpoint=$$run episodes=100 greedy=true out=$${run}eval_greedy.csv || exit 1; \
	done

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

clean-venv:
	rm -rf $(VENV)
