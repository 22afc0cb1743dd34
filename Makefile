# The two commands the README promises work on a fresh machine:
#   make demo    caas's main job on its built-in example
#   make check   the whole test suite (installs the Debian packages the tests need first)

CARGO ?= cargo

.PHONY: demo check test-deps fmt lint test bench

demo:
	$(CARGO) build --release --locked
	./target/release/caas gen profile --id demo --name "Flatcar demo" --os flatcar \
		--matchbox-url http://matchbox.example.com:8080 --arg console=ttyS0 flatcar.autologin
	./target/release/caas gen group --id demo --profile demo --selector mac=52:54:00:a1:9c:ae \
		--metadata hostname=demo.example.com

check: test-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) test --all-targets --locked

test-deps:
	./scripts/install-test-deps.sh

bench:
	$(CARGO) bench --locked
