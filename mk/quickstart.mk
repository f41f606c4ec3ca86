# The main job as a test: `trainyard quickstart` on a fresh project must end with a prediction
# whose product ids all come from the training data and a schedule preview; the endpoint is
# stopped at the end (--undeploy). Before that, a fire of the schedule is carried by the control
# plane alone to version 2 on the same endpoint (the unattended loop).

QUICKSTART_TEST_DIR := target/quickstart-test

.PHONY: test-quickstart
test-quickstart: pyenv
	$(CARGO) build -p trainyard-cli -p trainyard-serve
	rm -rf $(QUICKSTART_TEST_DIR)
	TRAINYARD_PYTHON=$(PYENV_PY) target/debug/trainyard quickstart --dir $(QUICKSTART_TEST_DIR) --epochs 1 --undeploy \
		> $(QUICKSTART_TEST_DIR).log 2>&1; rc=$$?; cat $(QUICKSTART_TEST_DIR).log; exit $$rc
	grep -Eq '^([0-9]+) of \1 ids are products of the training data' $(QUICKSTART_TEST_DIR).log
	test "$$(grep -cE '^  Mon [0-9]{4}-[0-9]{2}-[0-9]{2} 06:00 CE' $(QUICKSTART_TEST_DIR).log)" = 5
	grep -Eq 'is deployed: version 2 of .*; quickstart-retrieval-serving now serves version 2' $(QUICKSTART_TEST_DIR).log
	grep -q 'endpoint quickstart-retrieval-serving undeployed' $(QUICKSTART_TEST_DIR).log

TEST_TARGETS += test-quickstart
