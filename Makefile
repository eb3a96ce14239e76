# `make synth` and `make test` set everything up themselves, idempotently, then run.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
STAMP_WHEELS := .cache/wheels/.downloaded

# The pinned CDK CLI and Node.js 22 from node_modules, the virtualenv's python for `app`.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := true
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: setup synth test check snapshots deploy validate bench local-run schema clean

setup: $(STAMP_PY) $(STAMP_NODE) $(STAMP_WHEELS)

$(STAMP_PY): requirements.txt requirements-dev.txt containers/requirements.txt containers/constraints.txt layers/sagemaker_sdk/requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The layer's wheels for the Lambda target and the local interpreter: the one network step of the layer build.
$(STAMP_WHEELS): $(STAMP_PY) layers/sagemaker_sdk/requirements.txt layers/build_layer.py
	$(PYTHON) -m layers.build_layer download
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

synth: setup
	cdk synth --quiet '**'
	@echo "cdk.out holds one assembly per environment: $$(ls -d cdk.out/assembly-* | xargs -n1 basename | tr '\n' ' ')"

test: setup
	$(PYTHON) -m pytest -n 2 --dist loadfile --cov --cov-report=term:skip-covered

# Formatting, lint and types, with the versions pinned in requirements-dev.txt (settings in pyproject.toml).
# Each Lambda folder is its own program (each has a handler.py), so mypy checks them one at a time.
check: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app.py stacks layers
	for function in lambdas/*/; do MYPYPATH=lambdas $(VENV)/bin/mypy "$$function" || exit 1; done

# After a deliberate change to the synthesized templates (or a new environment in cdk.json): review, then commit.
snapshots: setup
	$(PYTHON) -m pytest tests/test_templates.py --snapshot-update

# Deploys one environment's stacks with the project's CLI, Node.js and virtualenv: make deploy ENV=dev
ENV ?=
deploy: setup
	@test -n "$(ENV)" || { echo "usage: make deploy ENV=<environment from cdk.json>"; exit 2; }
	cdk deploy '$(ENV)/*' --require-approval broadening

# Checks a deployed environment's resources with your AWS credentials: make validate ENV=dev
validate: setup
	@test -n "$(ENV)" || { echo "usage: make validate ENV=<environment from cdk.json>"; exit 2; }
	PYTHONPATH=lambdas $(PYTHON) lambdas/system_test/validate.py --environment '$(ENV)'

# The CSV for local-run and schema (any dataset cdk.json describes), and the UCI Abalone CSV for bench.
DATA ?= ../shared/data/abalone.csv

# Prints the figures recorded in BENCHMARKS.md; without DATA the benchmarks of the data say so and the others still run.
bench: setup
	$(PYTHON) benchmarks/synth_bench.py --with-tests
	$(PYTHON) benchmarks/layer_bench.py
	$(PYTHON) benchmarks/function_bench.py
	$(PYTHON) benchmarks/drift_bench.py --data '$(DATA)'
	$(PYTHON) benchmarks/pipeline_scripts_bench.py --data '$(DATA)'

# preprocess -> train -> evaluate -> batch inference on DATA for cdk.json's dataset, gated as dev gates, in a
# SageMaker-shaped temporary tree, or in WORKDIR (a new directory) to keep it: make local-run DATA=data.csv WORKDIR=run-1
WORKDIR ?=
local-run: setup
	$(PYTHON) pipeline_scripts/local_run.py --data '$(DATA)'$(if $(WORKDIR), --workdir '$(WORKDIR)')

# Drafts cdk.json's dataset block from a CSV with a header row (the last column is the target unless TARGET names it).
TARGET ?=
schema: setup
	$(PYTHON) pipeline_scripts/dataset.py --data '$(DATA)'$(if $(TARGET), --target '$(TARGET)')

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .coverage
