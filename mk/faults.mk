# Fault injection: a table of hostile-but-realistic attempts -> the refusal or
# outcome each must get, against the real binary (target/debug/trainyard, serve-api on
# 127.0.0.1): token-less, wrong-token, cross-site form, DNS-rebinding and webhook forgery
# attempts, misspelled config fields (CLI, REST, trainyard.toml), a deleted or empty database,
# a non-loopback bind without TLS, a closed stdout, 4 concurrent writers. Bounded (< 1 min).

.PHONY: test-faults
test-faults:
	$(CARGO) test -p trainyard-cli --test faults -- --nocapture

TEST_TARGETS += test-faults
