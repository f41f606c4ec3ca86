# trainyard-report in a real browser: installs Chromium from Debian's packages when missing
# (scripts/report-chromium.sh), builds the CLI, fills a project through the facade services,
# runs `trainyard report`, and checks the page's DOM (every chart drawn, metric values, the
# 40-week schedule grid) and a screenshot in headless Chromium. The page and screenshot are
# kept under target/report/.

.PHONY: test-report
test-report:
	@chromium=$$(bash scripts/report-chromium.sh) || exit 1; \
	$(CARGO) build -p trainyard-cli || exit 1; \
	TRAINYARD_BIN=$${CARGO_TARGET_DIR:-$(CURDIR)/target}/debug/trainyard CHROMIUM=$$chromium \
	TRAINYARD_REPORT_ARTIFACTS=$(CURDIR)/target/report \
	$(CARGO) test -p trainyard-report --test chromium -- --ignored

TEST_TARGETS += test-report
