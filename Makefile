# The front door. `make run` and `make test` work on a fresh Debian 12 machine: both first run
# scripts/setup-debian.sh, which installs whatever Debian packages are missing.
BUILD ?= build
JOBS ?= 2
SETUP_STAMP := $(BUILD)/.setup-done
PORT ?= 8188
DATA ?= $(CURDIR)/data

.PHONY: all setup build release run serve test unit integration fuzz bench clean

all: build

$(SETUP_STAMP): scripts/setup-debian.sh tests/integration/package.json
	bash scripts/setup-debian.sh
	mkdir -p $(BUILD) && touch $@

setup: $(SETUP_STAMP)

# The debug build (AddressSanitizer + UndefinedBehaviorSanitizer) is what the tests run.
build: $(SETUP_STAMP)
	cmake -S . -B $(BUILD)/debug -DCMAKE_BUILD_TYPE=Debug -DCOMFYD_SANITIZE=ON >/dev/null
	cmake --build $(BUILD)/debug -j$(JOBS)

release: $(SETUP_STAMP)
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DCOMFYD_TESTS=OFF >/dev/null
	cmake --build $(BUILD)/release -j$(JOBS)

# The hub, on its embedded SQLite store in $(DATA); the first start creates the account 'admin'
# (password from COMFYD_ADMIN_PASSWORD, else generated and printed once).
run: release
	$(BUILD)/release/comfyd hub --listen 127.0.0.1 --port $(PORT) --data-dir $(DATA)

# One workflow server on its own, without the hub.
serve: release
	$(BUILD)/release/comfyd serve --listen 127.0.0.1 --port $(PORT) --base-directory $(DATA)/serve

test: build
	bash scripts/test-all.sh

unit: build
	ctest --test-dir $(BUILD)/debug --output-on-failure

integration: build
	node --test --test-concurrency=1 tests/integration/

fuzz: $(SETUP_STAMP)
	bash scripts/fuzz.sh

bench: release
	bash scripts/setup-debian.sh --bench
	bash bench/http/run.sh
	bash bench/startup/run.sh
	node bench/engine/run.mjs
	node bench/images/run.mjs
	bash bench/json/run.sh
	bash bench/hub/run.sh
	node bench/hub/queue.mjs

clean:
	rm -rf $(BUILD)
