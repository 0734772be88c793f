# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   synthesise a small CDD-CESM-layout dataset and run every stage on it (vdes-tune demo)
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORK ?= vdes-work

.PHONY: demo test docs bench clean

$(BIN)/vdes-tune: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(BIN)/vdes-tune
	$(BIN)/vdes-tune demo --work $(WORK)

test: $(BIN)/vdes-tune
	$(BIN)/python -m pytest -q --durations=15

# The documentation site from docs/ (the command reference generated from the CLI) into site/.
docs: $(BIN)/vdes-tune
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(BIN)/vdes-tune
	$(BIN)/python benchmarks/registration.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/curves.py matrix --replays 200
	$(BIN)/python benchmarks/evaluate.py
	$(BIN)/python benchmarks/demo.py
	$(BIN)/python benchmarks/answer_calibration.py
	$(BIN)/python benchmarks/apply.py
	$(BIN)/python benchmarks/cluster.py
	@# The report in a real browser, where one is installed (Debian: apt install chromium).
	@if command -v chromium >/dev/null; then $(BIN)/vdes-tune demo --work $(WORK) >/dev/null && \
		$(BIN)/python benchmarks/render_report.py $(WORK)/report/smoke; fi

clean:
	rm -rf $(WORK) .pytest_cache site
