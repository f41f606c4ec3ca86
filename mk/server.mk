# The control plane end to end: `trainyard server` and CLI calls as real processes
# over a project, with a pipeline stand-in in the place of the managed env's Python (see
# crates/trainyard-cli/tests/server_e2e.rs) and real trainyard-serve endpoints: submits, reruns
# and `now` fires carried to deployed versions by a server; kill -9 of a server or of a
# `runs submit --wait` mid-training, then a restarted server finishing the work once.
#   make test-server
# The multi-server PostgreSQL case (50 fires, two servers, one killed) runs in test-postgres.

.PHONY: test-server

test-server: serve-test-models
	$(CARGO) build -p trainyard-cli -p trainyard-serve
	REAL_PYTHON=$(PYENV_PY) TRAINYARD_SERVE_TEST_MODELS=$(SERVE_MODELS) \
		$(CARGO) test -p trainyard-cli --test server_e2e -- --ignored --test-threads=1

TEST_TARGETS += test-server
