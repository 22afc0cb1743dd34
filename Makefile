# The two commands the README promises work on a fresh machine:
#   make demo    caas's main job on its built-in example
#   make check   the whole test suite (installs the Debian packages the tests need first)
#   make static  the static discovery binary booting machines download (`caas assets fetch caas`)

CARGO ?= cargo
# The static build: musl libc linked in, no glibc needed on the machine that runs it.
STATIC_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(STATIC_TARGET)/static/caas

.PHONY: demo check test-deps fmt lint test bench static standin-os rack

# The etcd release the example's etcd roles run (from the etcd-io GitHub release).
ETCD_VERSION ?= v3.5.21

demo:
	$(CARGO) build --release --locked
	./target/release/caas assets fetch etcd --version $(ETCD_VERSION)
	./target/release/caas gen cluster

check: test-deps static
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) test --all-targets --locked

# $(STATIC_BIN), then `caas assets fetch caas --binary $(STATIC_BIN)` publishes it.
static:
	$(CARGO) build --locked --profile static --target $(STATIC_TARGET) --bin caas
	@ls -l $(STATIC_BIN)

test-deps:
	./scripts/install-test-deps.sh

bench:
	$(CARGO) bench --locked

# The virtual rack alone (tests/rack.rs, as root): the stand-in OS is built and cached first.
standin-os:
	./scripts/standin-os/build.sh

rack: test-deps static standin-os
	$(CARGO) test --locked --test rack -- --nocapture
