# The front door. `make demo` and `make test` set up everything they need themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: demo serve test test-unit lint typecheck synth cdk-synth bench schemas pr clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cdk,dev,ops]'
	touch $(STAMP)

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --silent
	touch $(NODE_STAMP)

demo: $(STAMP) $(NODE_STAMP)
	$(VENV)/bin/billing-sync local demo --report build/demo-report.json

serve: $(STAMP) $(NODE_STAMP)
	$(VENV)/bin/billing-sync local serve --port 8000 --report build/serve-report.json

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

synth: $(STAMP)
	$(PY) app.py

cdk-synth: $(STAMP) $(NODE_STAMP)
	npx cdk synth --quiet

schemas: $(STAMP)
	$(PY) -m billing_sync_ops.schemas

bench: $(STAMP) $(NODE_STAMP)
	$(PY) -m billing_sync_ops.bench --output build/bench.json

pr: lint typecheck test

clean:
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache
