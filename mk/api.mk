# serve-api (issue 9): the REST API fuzzed by schemathesis from its own OpenAPI document.
# `make test-api` prepares .venv-api (python/requirements-api.txt; rebuilt only when the file's
# hash changes), builds the CLI, serves a temp project seeded with runs and schedules on a free
# port, and fails on any 5xx (check not_a_server_error). API_FUZZ_EXAMPLES bounds the run.

API_VENV ?= .venv-api
API_REQS := python/requirements-api.txt
API_BASE_PYTHON ?= $(shell command -v python3.11 || command -v python3)
API_STAMP := $(API_VENV)/.requirements.sha256
API_FUZZ_EXAMPLES ?= 100

.PHONY: test-api api-venv

api-venv:
	@want=$$(sha256sum $(API_REQS) | cut -d' ' -f1); \
	if [ -x $(API_VENV)/bin/st ] && [ "$$(cat $(API_STAMP) 2>/dev/null)" = "$$want" ]; then \
	  echo "api-venv: $(API_VENV) is up to date"; \
	else \
	  echo "api-venv: installing $(API_REQS) into $(API_VENV)"; \
	  rm -rf $(API_VENV) && $(API_BASE_PYTHON) -m venv $(API_VENV) && \
	  $(API_VENV)/bin/pip install -q --disable-pip-version-check -r $(API_REQS) && \
	  echo "$$want" > $(API_STAMP); \
	fi

test-api: api-venv
	$(CARGO) build -p trainyard-cli
	$(CARGO) test -p trainyard --test api
	API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) bash crates/trainyard/tests/api_fuzz.sh \
	  $(API_VENV) target/debug/trainyard

TEST_TARGETS += test-api
