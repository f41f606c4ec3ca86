# Run insights on a REAL local pipeline run (managed env): statistics and schema summaries
# against the CSV, the trainer's weight/gradient statistics per epoch and tower, per-component
# logs, all on the retrieval run of the shared trained project (tests/src/shared.rs). The
# backfill, GPU fallback ladder and parser tests need no env and run in plain `cargo test`.

.PHONY: test-insights
test-insights: pyenv
	$(CARGO) test -p trainyard-insights
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-tests --test insights_run -- --ignored --test-threads=1

TEST_TARGETS += test-insights
