# The two commands the README promises work on a fresh machine:
#   make demo    caas's main job on its built-in example
#   make check   the whole test suite (installs the Debian packages the tests need first)

CARGO ?= cargo

.PHONY: demo check test-deps fmt lint test bench standin-os rack

demo:
	$(CARGO) build --release --locked
	./target/release/caas gen cluster

check: test-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) test --all-targets --locked

test-deps:
	./scripts/install-test-deps.sh

bench:
	$(CARGO) bench --locked

# The virtual rack alone (tests/rack.rs, as root): the stand-in OS is built and cached first.
standin-os:
	./scripts/standin-os/build.sh

rack: test-deps standin-os
	$(CARGO) test --locked --test rack -- --nocapture
