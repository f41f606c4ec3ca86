# trainyard-pipeline and the local runner, in the managed env: the golden files against what
# TFX compiles today (nothing is rewritten; the comparison with our compiler and the GPU
# job-spec checks run in plain `cargo test`), the split executor run with Beam, end-to-end local
# TFX runs through TrainingService (retrieval, multitask, cancel: tests/tests/local_run.rs), and
# from a blessed run to a deployed trainyard-serve endpoint answering predictions
# (tests/tests/serving_e2e.rs). Both read the shared trained project (tests/src/shared.rs:
# built once under target/shared-project/ and reused while what produced it is unchanged).

.PHONY: test-pipeline
test-pipeline: pyenv
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-pipeline --test golden --test split -- --ignored --skip regenerate_golden_files
	$(CARGO) build -p trainyard-serve
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-tests --test local_run --test serving_e2e -- --ignored --test-threads=1

TEST_TARGETS += test-pipeline

# The shared trained project on its own (tests/src/bin/shared-project.rs): built, or found
# still valid, under target/shared-project/. `make test` runs it in its background lane.
.PHONY: shared-project
shared-project: pyenv
	$(CARGO) build -p trainyard-tests --bin shared-project
	TRAINYARD_PYTHON=$(PYENV_PY) target/debug/shared-project
