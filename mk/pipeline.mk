# trainyard-pipeline: the strict KFP IR parse in the managed env (the golden comparison and the
# GPU job-spec checks run in plain `cargo test`), and the end-to-end local runs.

.PHONY: test-pipeline
test-pipeline: pyenv
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-pipeline -- --include-ignored

TEST_TARGETS += test-pipeline
