# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   synthesise a small CDD-CESM-layout dataset and ingest it
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORK ?= vdes-work

.PHONY: demo test bench clean

$(BIN)/vdes-tune: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(BIN)/vdes-tune
	@test -d $(WORK)/raw || $(BIN)/vdes-tune synth $(WORK)/raw --patients 16 --size small --seed 0 --quirks
	$(BIN)/vdes-tune ingest --data $(WORK)/raw --work $(WORK)

test: $(BIN)/vdes-tune
	$(BIN)/python -m pytest -q

bench: $(BIN)/vdes-tune
	$(BIN)/python benchmarks/registration.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/search.py

clean:
	rm -rf $(WORK) .pytest_cache
