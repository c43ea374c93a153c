# DistributedLog: `make run` (a chaos run you can watch), `make test` (everything).
#
# Two builds of one source tree:
#   plain  -> target/      production binaries on tokio (dlog-broker, dlog-check)
#   sim    -> target/sim/  RUSTFLAGS="--cfg madsim": the deterministic simulation (dlog-sim)

SHELL := /bin/bash
CARGO ?= cargo
SIM_ENV := RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim
SIM_BIN := target/sim/release/dlog-sim
SCENARIO ?= single-node-crash
SEED ?= 7
SEEDS ?= 1..10

.PHONY: run test test-plain test-sim deps lint sim sim-build release bench sweep clean

## run: build the simulation, run single-node-crash on 10 seeds and the other scenarios on 3, each with a summary
run: sim-build
	$(SIM_BIN) sweep --scenario single-node-crash --seeds $(SEEDS) --all
	$(SIM_BIN) sweep --scenario controller-chaos --seeds 1..3 --all
	$(SIM_BIN) sweep --scenario controller-leader-kill --seeds 1..3 --all
	$(SIM_BIN) sweep --scenario replication-chaos --seeds 1..3 --all
	$(SIM_BIN) sweep --scenario group-chaos --seeds 1..3 --all

## test: every test, in both builds (plain and --cfg madsim), plus the determinism lints
test: deps lint test-plain test-sim

## deps: what the tests need from outside cargo: kcat, kafka-python and
## confluent-kafka (the real-client tests) and Chromium (the checker's HTML
## report must render without errors)
deps:
	@if ! command -v kcat >/dev/null || ! test -x /usr/bin/chromium; then \
	  echo "installing kcat and chromium (Debian packages) for the end-to-end tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat chromium >/dev/null; fi
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked
	@python3 -c 'import kafka' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check kafka-python==3.0.12
	@python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check confluent-kafka==2.16.1

## lint: clippy with the determinism rules (clippy.toml) as errors
lint:
	$(CARGO) clippy --workspace --all-targets -- -A clippy::all -D clippy::disallowed_methods -D clippy::disallowed_types

test-plain:
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-fail-fast

test-sim:
	$(SIM_ENV) $(CARGO) build --workspace --bins --release
	$(SIM_ENV) $(CARGO) nextest run --workspace --release --no-fail-fast

sim-build:
	$(SIM_ENV) $(CARGO) build --release -p dlog-scenarios --bin dlog-sim

## sim: replay one seed, e.g. make sim SCENARIO=single-node-crash SEED=7
sim: sim-build
	$(SIM_BIN) run --scenario $(SCENARIO) --seed $(SEED)

## sweep: many seeds, e.g. make sweep SEEDS=1..1000; optional SHARD=2/3 (every
## third seed, see README "Sweeps in CI"), JSON=FILE and JUNIT=FILE (reports)
sweep: sim-build
	$(SIM_BIN) sweep --scenario $(SCENARIO) --seeds $(SEEDS) $(if $(SHARD),--shard $(SHARD)) \
	  $(if $(JSON),--json $(JSON)) $(if $(JUNIT),--junit $(JUNIT))

## release: the production broker, target/release/dlog-broker
release:
	$(CARGO) build --release -p dlog-broker --bin dlog-broker

## bench: one line per figure, BENCH <name> <value> <unit>
bench:
	$(CARGO) build --release -p dlog-broker --bin storage-bench --bin dlog-broker --bin replication-bench -p dlog-checker --bin checker-bench
	target/release/storage-bench
	target/release/replication-bench
	target/release/checker-bench

clean:
	$(CARGO) clean
