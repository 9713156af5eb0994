# Every target installs what it needs into .venv first (Python >= 3.10 is all a fresh machine needs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qconn-installed
CONSTRAINTS := constraints.txt
FLOOR_VENV ?= .venv-floor
FLOOR_AIRFLOW ?= 3.2.2

.PHONY: install demo sandbox airflow standalone test lint format bench bench-baseline test-floor clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# What only the benchmarks need, kept out of the package and its extras: Airflow's Microsoft Azure provider (the
# newest release whose requirements fit constraints.txt; 15.2.1 caps microsoft-kiota-http below 1.13).
AZURE_PROVIDER := apache-airflow-providers-microsoft-azure==15.2.0
BENCH_STAMP := $(VENV)/.qconn-bench-installed
$(BENCH_STAMP): $(STAMP)
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q -c $(CONSTRAINTS) "$(AZURE_PROVIDER)"
	touch $(BENCH_STAMP)

## demo: the sandbox with its seed, ready-made connection values, and a meeting and a message through it
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## sandbox: keep a sandbox running on https://127.0.0.1:8765 (state in .sandbox/)
sandbox: $(STAMP)
	$(BIN)/qconn-sandbox

## airflow: airflow standalone on the example DAGs with a sandbox and its demo connections (AIRFLOW_HOME .airflow/)
airflow: $(STAMP)
	$(BIN)/python scripts/standalone.py

standalone: airflow

## test: lint, then the whole suite
test: lint
	$(BIN)/python -m pytest

## lint: ruff, and mypy over the package (it ships py.typed)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the benchmarks (not part of the suite); results in bench/results/, one markdown table printed. The
## Outlook benchmark compares our hook with the Azure provider's Graph hook, installed here for the benchmark only
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/whatsapp_send.py
	$(BIN)/python bench/mapped_send.py
	$(BIN)/python bench/dag_parse.py
	$(BIN)/python bench/outlook_overhead.py --runs 3
	$(BIN)/python bench/report.py

## bench-baseline: the WhatsApp and DAG-parse benchmarks on an earlier commit's package (BASELINE=<ref>), for
## the "before" column of the table; the benchmark scripts are this checkout's
BASELINE ?= main
bench-baseline: $(STAMP)
	rm -rf .bench-baseline && mkdir -p .bench-baseline
	git archive $(BASELINE) airflow_provider_qconn | tar -x -C .bench-baseline
	PYTHONPATH=.bench-baseline $(BIN)/python bench/whatsapp_send.py --name whatsapp_send_before
	PYTHONPATH=.bench-baseline $(BIN)/python bench/dag_parse.py --name dag_parse_before
	rm -rf .bench-baseline

## test-floor: the suite on the oldest Airflow we declare (3.2), in its own venv
test-floor:
	test -x $(FLOOR_VENV)/bin/python || $(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	VIRTUAL_ENV=$(FLOOR_VENV) $(FLOOR_VENV)/bin/uv pip install -q -c constraints-floor.txt "apache-airflow==$(FLOOR_AIRFLOW)" -e ".[test]"
	$(FLOOR_VENV)/bin/python -m pytest -p no:cacheprovider

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .ruff_cache .mypy_cache .sandbox .bench-baseline .airflow
