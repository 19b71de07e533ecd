# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./data
# `make run MLLP_PORT=2575` also takes HL7 v2 over MLLP on that port.
MLLP_PORT ?=

# Every dependency, with every extra (test, bench, mutate, coverage, deps), pinned with its hashes.
LOCK := requirements.lock

.PHONY: install lock audit run reset test test-data test-all bench bench-all ans-tables mutate coverage conformance-sekmet clean

# Only what the lock names, each file checked against its hashes; then the project itself.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; echo "requirements.lock lacks what pyproject.toml needs: run make lock" >&2; exit 1; }
	touch $(STAMP)

install: $(STAMP)

# After a change of pyproject.toml's dependencies: pins the newest versions they allow, with hashes.
# pip-tools comes from the current lock, which `install` refuses while it lacks a dependency.
lock:
	test -x $(BIN)/pip-compile || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --require-hashes -r $(LOCK); }
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --extra test --extra bench --extra mutate --extra coverage --extra deps \
		--output-file $(LOCK) pyproject.toml

# Known vulnerabilities of the pinned versions (PyPI's advisory data): fails on one that has a fix.
audit: install
	mkdir -p .cache
	$(BIN)/pip-audit --requirement $(LOCK) --require-hashes --disable-pip --progress-spinner off \
		--format json --output .cache/pip-audit.json || true
	$(BIN)/python .ci/fixable_vulnerabilities.py .cache/pip-audit.json

run: install
	$(BIN)/fhir-server serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) $(if $(MLLP_PORT),--mllp-port $(MLLP_PORT))

# Removes DATA_DIR (store, keys, files) of a stopped server, after saying what it removes; it asks
# on a terminal, or takes YES=1. A running server keeps it (stop it first: Ctrl-C).
reset: install
	$(BIN)/fhir-server reset --data-dir $(DATA_DIR) $(if $(YES),--yes)

# One official R4 example per resource type (fetched on first use, see tests/r4_examples.py).
test: install
	$(BIN)/pytest -q

# The official R4 examples (npm hl7.fhir.r4.examples 4.0.1) into .cache/, for machines that test offline.
test-data: install
	$(BIN)/python -m tests.r4_examples

# Every official R4 example (5306 resources): stored, read back, searched, compartments; and the
# whole crash series (kill -9 during intake, then restart at once, ten times); the subscription
# crash with the issue's 1,000 documents; the other tests marked `heavy` (the store failing under
# HL7 v2 intake); every test of the session's shared server again, against
# `serve --workers 4` (tests/conftest.py keeps only those).
test-all: install test-data
	R4_EXAMPLES=all $(BIN)/pytest -q tests/examples
	FHIR_TEST_WORKERS=4 $(BIN)/pytest -q
	CRASH_ROUNDS=10 $(BIN)/pytest -q tests/api/test_crash_restart.py
	FHIR_TEST_HEAVY=1 SUBSCRIPTION_CRASH_DOCUMENTS=1000 $(BIN)/pytest -q tests/subscriptions/test_crash_restart.py
	FHIR_TEST_HEAVY=1 $(BIN)/pytest -q -m heavy --deselect tests/subscriptions/test_crash_restart.py
	FHIR_TEST_WHEEL=1 $(BIN)/pytest -q tests/conformance/test_wheel.py
	FHIR_BROWSER_TESTS=1 $(BIN)/pytest -q tests/apps/test_browser.py

# The whole stack against issue 18's targets, about 15 minutes (docs/PERFORMANCE.md), and issue 17's
# bulk export of 100k resources; bench-all adds the benchmarks of the other issues (start-up,
# tokens, access rules, audit, imports, enrolment at 100k, workers): about an hour more.
bench: install
	$(BIN)/python -m benchmarks.run --scales 10k,50k
	$(BIN)/python -m benchmarks.export --resources 100k

bench-all: bench
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.auth_cost
	$(BIN)/python -m benchmarks.access_rules
	$(BIN)/python -m benchmarks.audit_cost
	$(BIN)/python -m benchmarks.reimbursements
	$(BIN)/python -m benchmarks.enrol --scales 10k,100k
	$(BIN)/python -m benchmarks.workers

# The ANS correspondence tables of mappings/ans/ from the Terminologies de Santé guide (VERSION=x.y.z).
ans-tables: install
	$(BIN)/python -m cda.refresh_tables $(if $(VERSION),--version $(VERSION))

# Mutation testing and coverage use tools `make test` does not (docs/TESTING.md); the lock has them.
# The server runs in the test process (FHIR_TEST_INPROCESS) so mutmut sees and mutates its code;
# two embedded stores are shared by the forked test processes (tests/store_pool.py).
mutate: install
	rm -rf mutants
	FHIR_TEST_INPROCESS=1 FHIR_TEST_STORE_POOL=2 $(BIN)/mutmut run --max-children 2 > mutants.log 2>&1 || (tail -c 3000 mutants.log; exit 1)
	$(BIN)/python -m tests.mutation report

# Branch coverage of the suite, the server subprocess included; the protecting modules first.
PROTECTING = fhir_server/access/*,fhir_server/search/named_patients.py,fhir_server/api/body.py,fhir_server/operations/patch.py,fhir_server/operations/transaction.py,fhir_server/ingest/hl7v2/ack.py,fhir_server/ingest/hl7v2/intake.py,fhir_server/mhd/*,cda/safe_xml.py
coverage: install
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --include='$(PROTECTING)'
	$(BIN)/coverage report --format=total

# fhir-conformance against sekmet-fhir 0.1.1 from PyPI, in a throw-away venv (docs/CONFORMANCE.md).
conformance-sekmet: install
	conformance/peers/sekmet.sh .cache/conformance-sekmet

clean:
	rm -rf $(VENV) build *.egg-info mutants mutants.log .coverage .coverage.* htmlcov
