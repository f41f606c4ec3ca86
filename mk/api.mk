# serve-api: the REST API fuzzed by schemathesis from its own OpenAPI document.
# `make test-api` prepares .venv-api (python/requirements-api.txt; rebuilt only when the file's
# hash changes), builds the CLI, serves a temp project seeded with runs and schedules on a free
# port, and fails on any 5xx (check not_a_server_error). API_FUZZ_EXAMPLES bounds the run.

API_VENV ?= .venv-api
API_REQS := python/requirements-api.txt
API_BASE_PYTHON ?= $(shell command -v python3.11 || command -v python3)
API_FUZZ_EXAMPLES ?= 100

.PHONY: test-api api-venv

api-venv:
	$(call tool-venv,$(API_VENV),$(API_REQS),$(API_BASE_PYTHON),-c "import schemathesis")

test-api: api-venv
	$(CARGO) build -p trainyard-cli
	$(CARGO) test -p trainyard --test api
	API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) bash crates/trainyard/tests/api_fuzz.sh \
	  $(API_VENV) target/debug/trainyard

TEST_TARGETS += test-api
