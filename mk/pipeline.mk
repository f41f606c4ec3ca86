# trainyard-pipeline and the local runner, in the managed env: the strict KFP IR parse (the
# golden comparison and GPU job-spec checks also run in plain `cargo test`), and end-to-end local
# TFX runs through TrainingService (retrieval, multitask, cancel; the retrieval run logs to a real
# MLflow server, mk/mlflow.mk), and from a blessed run to a deployed trainyard-serve endpoint
# answering predictions (serving_e2e).

.PHONY: test-pipeline
test-pipeline: pyenv $(MLFLOW_STAMP)
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-pipeline -- --include-ignored
	@$(call with_mlflow_server,$(CARGO) test --no-run -p trainyard --test local_run,TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard --test local_run -- --ignored --test-threads=1)
	$(CARGO) build -p trainyard-serve
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard --test serving_e2e -- --ignored --test-threads=1

TEST_TARGETS += test-pipeline
