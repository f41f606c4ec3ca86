# A real MLflow tracking server for the tests: full `mlflow` in its own venv (a stamped tool
# venv of mk/venv.mk, reused while scripts/mlflow-server-requirements.txt is unchanged),
# started by scripts/mlflow-test-server.sh with a SQLite backend on a free port of 127.0.0.1 and stopped afterwards.
#   make mlflow-server-env   the venv only
# The shared trained project's runs log to one (mk/pipeline.mk), and local_run checks the
# retrieval run there (params, per-epoch metrics, weight/gradient histogram artifacts) and the
# mlflow_run_id stored on the trainyard run.

MLFLOW_VENV := .venv-mlflow
MLFLOW_REQS := scripts/mlflow-server-requirements.txt
MLFLOW_BIN := $(CURDIR)/$(MLFLOW_VENV)/bin/mlflow
MLFLOW_TEST_DIR := target/mlflow-test
MLFLOW_BASE_PY ?= $(firstword $(wildcard /usr/local/bin/python3.11 $(HOME)/.pyenv/versions/3.11.7/bin/python3.11) python3)

.PHONY: mlflow-server-env

# The shared stamped recipe (mk/venv.mk); the check also wants the server's entry point.
mlflow-server-env:
	$(call tool-venv,$(MLFLOW_VENV),$(MLFLOW_REQS),$(MLFLOW_BASE_PY),-c "import importlib.metadata as m; m.version('mlflow'); open('$(MLFLOW_BIN)')")

# $(call with_mlflow_server,BUILD,COMMAND): runs BUILD while a fresh server starts (it takes
# ~30 s), then COMMAND with TRAINYARD_TEST_MLFLOW_URL naming the server, which is stopped
# afterwards whatever the outcome.
with_mlflow_server = rm -rf $(MLFLOW_TEST_DIR); \
	url=$$(bash scripts/mlflow-test-server.sh launch $(MLFLOW_TEST_DIR) $(MLFLOW_BIN)) || exit 1; \
	$(1) && bash scripts/mlflow-test-server.sh wait $(MLFLOW_TEST_DIR) && \
	TRAINYARD_TEST_MLFLOW_URL=$$url $(2); rc=$$?; \
	bash scripts/mlflow-test-server.sh stop $(MLFLOW_TEST_DIR); exit $$rc
