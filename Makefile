# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./data

.PHONY: install run test test-data test-all bench ans-tables clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/fhir-server serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# One official R4 example per resource type (fetched on first use, see tests/r4_examples.py).
test: install
	$(BIN)/pytest -q

# The official R4 examples (npm hl7.fhir.r4.examples 4.0.1) into .cache/, for machines that test offline.
test-data: install
	$(BIN)/python -m tests.r4_examples

# Every official R4 example (5306 resources): stored, read back, searched, compartments.
test-all: install test-data
	R4_EXAMPLES=all $(BIN)/pytest -q tests/examples

bench: install
	$(BIN)/python -m benchmarks.run --scales 10k,50k
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.auth_cost

# The ANS correspondence tables of mappings/ans/ from the Terminologies de Santé guide (VERSION=x.y.z).
ans-tables: install
	$(BIN)/python -m cda.refresh_tables $(if $(VERSION),--version $(VERSION))

clean:
	rm -rf $(VENV) build *.egg-info
