# The front door. `make demo` and `make test` set up everything they need themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# checkov and cfn-lint in their own venv: checkov pins an older boto3 than the project and moto run on.
COMPLIANCE_VENV := build/compliance-venv
COMPLIANCE_STAMP := $(COMPLIANCE_VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: demo serve test test-unit lint typecheck synth cdk-synth bench soak cost cold-path-venv compliance-venv compliance schemas pr clean

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

$(COMPLIANCE_STAMP): infra/compliance/requirements.txt
	$(PYTHON) -m venv $(COMPLIANCE_VENV)
	$(COMPLIANCE_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPLIANCE_VENV)/bin/pip install --quiet -r infra/compliance/requirements.txt
	touch $(COMPLIANCE_STAMP)

compliance-venv: $(COMPLIANCE_STAMP)

# checkov and cfn-lint (serverless rules) on the synthesised template against infra/compliance/baseline.json.
compliance: $(STAMP) $(NODE_STAMP) $(COMPLIANCE_STAMP)
	$(PY) app.py
	$(PY) -m billing_sync_ops.compliance --template cdk.out/BillingSync.template.json

test: $(STAMP) $(NODE_STAMP) $(COMPLIANCE_STAMP)
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
	-@$(MAKE) --no-print-directory cold-path-venv
	$(PY) -m billing_sync_ops.bench --output build/bench.json

# Randomized fault soak through the real handlers on moto (billing_sync_ops/soak.py); writes build/soak.json.
soak: $(STAMP) $(NODE_STAMP)
	$(PY) -m billing_sync_ops.soak --events 10000 --seed 20261127 --output build/soak.json

# Dollars per million events for the mix 20/40/40, itemised (billing_sync_ops/cost.py); about a minute.
cost: $(STAMP) $(NODE_STAMP)
	$(PY) -m billing_sync_ops.cost --output build/cost.json

# The deployed runtime's Python (3.13) with the function's runtime dependencies only, at the project's
# versions, for the bench's cold path; without a pyenv 3.13 the bench uses the project venv and says so.
RUNTIME_PYTHON ?= $(lastword $(wildcard $(HOME)/.pyenv/versions/3.13.*/bin/python /opt/pyenv/versions/3.13.*/bin/python))
cold-path-venv: build/py313-runtime/.installed

build/py313-runtime/.installed: $(STAMP)
	@test -n "$(RUNTIME_PYTHON)" || { echo "no Python 3.13 under pyenv: the bench measures the cold path on $(PY)"; exit 1; }
	mkdir -p build
	$(PY) -m pip freeze | grep -iE '^(aws[-_]lambda[-_]powertools|pydantic|pydantic[-_]core|boto3|botocore|s3transfer)==' > build/py313-requirements.txt
	$(RUNTIME_PYTHON) -m venv build/py313-runtime
	build/py313-runtime/bin/pip install --quiet -r build/py313-requirements.txt
	touch $@

pr: lint typecheck test

clean:
	rm -rf $(VENV) node_modules cdk.out build .pytest_cache
