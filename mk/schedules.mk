# Schedule engine checks against an independent reference: cronsim (Debian-cron DST semantics)
# in a small managed venv, reused while its requirements are unchanged.

TOOLS_VENV := .venv-tools
TOOLS_REQS := crates/trainyard-core/tests/oracle/requirements.txt
.PHONY: tools-venv
tools-venv:
	$(call tool-venv,$(TOOLS_VENV),$(TOOLS_REQS),python3)

.PHONY: test-schedules
test-schedules: tools-venv
	TRAINYARD_CRON_ORACLE_PYTHON=$(CURDIR)/$(TOOLS_VENV)/bin/python $(CARGO) test -p trainyard-core --test timing -- --include-ignored

TEST_TARGETS += test-schedules

# Benchmark (not a test): fire lag p99 and CPU per poll of the embedded scheduler holding
# 10,000 active schedules on SQLite (benches/scheduler/README.md).
.PHONY: bench-scheduler
bench-scheduler:
	bash benches/scheduler/run.sh
