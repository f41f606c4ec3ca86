# Schedule engine checks against an independent reference: cronsim (Debian-cron DST semantics)
# in a small managed venv, reused while its requirements are unchanged.

TOOLS_VENV := .venv-tools
TOOLS_REQS := crates/trainyard-core/tests/oracle/requirements.txt
TOOLS_STAMP := $(TOOLS_VENV)/.stamp-$(shell sha256sum $(TOOLS_REQS) 2>/dev/null | cut -c1-16)

$(TOOLS_STAMP): $(TOOLS_REQS)
	rm -rf $(TOOLS_VENV)
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q -r $(TOOLS_REQS)
	touch $@

.PHONY: test-schedules
test-schedules: $(TOOLS_STAMP)
	TRAINYARD_CRON_ORACLE_PYTHON=$(CURDIR)/$(TOOLS_VENV)/bin/python $(CARGO) test -p trainyard-core --test timing -- --include-ignored

TEST_TARGETS += test-schedules

# Benchmark (not a test): fire lag p99 and CPU per poll of the embedded scheduler holding
# 10,000 active schedules on SQLite (benches/scheduler/README.md).
.PHONY: bench-scheduler
bench-scheduler:
	bash benches/scheduler/run.sh
