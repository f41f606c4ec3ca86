# trainyard-pipeline and the local runner, in the managed env: the golden files against what
# TFX compiles today (nothing is rewritten; the comparison with our compiler and the GPU
# job-spec checks run in plain `cargo test`), the split executor run with Beam, end-to-end local
# TFX runs through TrainingService (retrieval, multitask, cancel: tests/tests/local_run.rs), and
# from a blessed run to a deployed trainyard-serve endpoint answering predictions
# (tests/tests/serving_e2e.rs). Both read the shared trained project (tests/src/shared.rs:
# built once under target/shared-project/ and reused while what produced it is unchanged).
#
# MLflow: the shared project's runs log to a real MLflow server (mk/mlflow.mk) whose store is
# kept beside the project (target/shared-project-mlflow); local_run checks the retrieval run
# there, through a server of its own on the same store. Before it, on the same server,
# tests/tests/mlflow_tracking.rs: the MLflow runs of failed and cancelled runs that their
# trainers left RUNNING are ended (the REST adapter, runner lost and cancel through the facade).

# (outside target/shared-project/, which the builder clears of other builds)
SHARED_MLFLOW_STORE := target/shared-project-mlflow
# $(call with_shared_mlflow,STATE_DIR,COMMAND): COMMAND (one or several commands) with
# TRAINYARD_TEST_MLFLOW_URL naming a server on the shared store, stopped afterwards whatever
# the outcome.
with_shared_mlflow = rm -rf $(1); \
	url=$$(MLFLOW_STORE_DIR=$(SHARED_MLFLOW_STORE) bash scripts/mlflow-test-server.sh start $(1) $(MLFLOW_BIN)) || exit 1; \
	export TRAINYARD_TEST_MLFLOW_URL=$$url; $(2); rc=$$?; \
	bash scripts/mlflow-test-server.sh stop $(1); exit $$rc

.PHONY: test-pipeline
test-pipeline: pyenv mlflow-server-env
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-pipeline --test golden --test split -- --ignored --skip regenerate_golden_files
	$(CARGO) build -p trainyard-serve
	@$(call with_shared_mlflow,target/mlflow-test-pipeline,$(CARGO) test -p trainyard-tests --test mlflow_tracking && TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-tests --test local_run --test serving_e2e -- --ignored --test-threads=1)

TEST_TARGETS += test-pipeline

# The shared trained project on its own (tests/src/bin/shared-project.rs): built, or found
# still valid, under target/shared-project/. `make test` runs it in its background lane.
.PHONY: shared-project
shared-project: pyenv mlflow-server-env
	$(CARGO) build -p trainyard-tests --bin shared-project
	@$(call with_shared_mlflow,target/mlflow-shared-project,TRAINYARD_PYTHON=$(PYENV_PY) target/debug/shared-project)
