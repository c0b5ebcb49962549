# Two commands for a new user: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TS := clients/typescript
TS_STAMP := $(TS)/node_modules/.installed

.PHONY: demo test lint types contracts unit proto fuzz bench clean interop interop-py goref redis7
.PHONY: kit-interop kit-ts conformance-reports compiled unit-compiled
.PHONY: ts ts-build ts-interop ts-bench ts-screenshot

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m goomerang_io demo

test: $(STAMP) lint types contracts unit unit-compiled ts

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) redis7
	$(BIN)/python -m pytest -m 'not goref and not compiled_only' $(PYTEST_ARGS)

# The compiled engine (opt-in; `pip install .` stays pure Python and needs no compiler): the
# per-message modules (setup.py's COMPILED) as mypyc C extensions, built beside the package into
# build/compiled (scripts/ensure-cc.sh installs gcc and python3-dev as root when missing).
# unit-compiled runs the engine suites and the asyncio adapter's (tests/io) on it; the tests that
# replace compiled internals (marked pure_python, see tests/conftest.py) run in `unit` only.
COMPILED := build/compiled
COMPILED_TESTS := tests/proto tests/kit tests/test_smoke_engine.py tests/test_frames_differential.py \
  tests/io

compiled: $(STAMP)
	scripts/ensure-cc.sh $(BIN)/python
	$(BIN)/python scripts/build_compiled.py $(COMPILED)

# PYTHONSAFEPATH: the working tree's pure package must not come first (python -m puts it there);
# it comes after the compiled one instead, for the tests that import tests.* from the root.
unit-compiled: compiled redis7
	GOOMERANG_COMPILED=1 PYTHONSAFEPATH=1 PYTHONPATH=$(CURDIR)/$(COMPILED):$(CURDIR) $(BIN)/python -m pytest \
	  -m 'not goref and not pure_python' $(COMPILED_TESTS) $(PYTEST_ARGS)

# The Redis Cluster (sharded pub/sub) tests need Redis >= 7: installed with apt-get
# when missing and running as root (CI); otherwise the script says what is missing.
redis7:
	scripts/ensure-redis7.sh

# Interoperability with the real Go goomerang v0.3.0 (built once into .goref/, ~1 min, root
# or Debian's Go packages needed: scripts/goref.sh says what is missing). Suites of other
# runtimes add their target (depending on goref) to INTEROP_EXTRA and pass it GOREF_DIR (the
# folder of refserver and refclient). Not exported: `make test` must not see a peer it did not build.
GOREF_BUILD ?= $(CURDIR)/.goref
GOREF_DIR := $(GOREF_BUILD)/bin
INTEROP_EXTRA := ts-interop kit-ts

interop: interop-py $(INTEROP_EXTRA)

goref:
	scripts/goref.sh $(GOREF_BUILD) >/dev/null

interop-py: $(STAMP) goref
	GOREF_DIR=$(GOREF_DIR) $(BIN)/python -m pytest tests/interop $(PYTEST_ARGS)
	GOREF_DIR=$(GOREF_DIR) $(BIN)/python -m pytest -m goref tests $(PYTEST_ARGS)

# The conformance kit judges the Go peer (refserver through every server case, refclient
# through the client profile: goref tests in tests/kit, which `make interop` runs too) and the
# TypeScript client (tests/kit/interop, out of `make test` like tests/interop: kit-ts).
kit-interop: kit-ts
	GOREF_DIR=$(GOREF_DIR) $(BIN)/python -m pytest -m goref tests/kit $(PYTEST_ARGS)

kit-ts: $(STAMP) goref ts-build
	GOREF_DIR=$(GOREF_DIR) $(BIN)/python -m pytest tests/kit/interop $(PYTEST_ARGS)

# Retake the committed conformance reports (docs/conformance/): goomerang serve and the Go
# reference server through every server case, our clients and the Go client through the profile.
CONF := $(BIN)/goomerang conformance
GOREF_REL = $(patsubst $(CURDIR)/%,%,$(GOREF_DIR))
SHOT := --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --hide-scrollbars --window-size=1100,800
conformance-reports: $(STAMP) goref ts-build
	-$(CONF) server -q --notes docs/conformance/goomerang-serve-notes.json --title "goomerang serve" \
	  --json docs/conformance/goomerang-serve.json --html docs/conformance/goomerang-serve.html \
	  -- $(BIN)/goomerang serve --listen {addr}
	-$(CONF) server -q --notes docs/conformance/go-v0.3.0-notes.json --title "Go goomerang v0.3.0 refserver" \
	  --json docs/conformance/go-v0.3.0.json --html docs/conformance/go-v0.3.0.html \
	  -- $(GOREF_REL)/refserver -addr {addr}
	$(CONF) client -q --title "asyncio Client" --json docs/conformance/client-asyncio.json \
	  -- $(BIN)/python -m goomerang_io.conformance.profiles.asyncio_client
	$(CONF) client -q --title "blocking Client" --json docs/conformance/client-sync.json \
	  -- $(BIN)/python -m goomerang_io.conformance.profiles.sync_client
	$(CONF) client -q --title "Go goomerang v0.3.0 refclient" --json docs/conformance/client-go.json \
	  -- $(GOREF_REL)/refclient {task} -addr {addr} -n {n} -topic {topic} -clients {clients} -size {size}
	$(CONF) client -q --title "TypeScript Client (Node)" --json docs/conformance/client-typescript.json \
	  -- node $(TS)/scripts/conformance-profile.mjs
	scripts/ensure-chromium.sh
	$${CHROMIUM:-/usr/bin/chromium} $(SHOT) --screenshot=docs/conformance/go-v0.3.0.png \
	  file://$(CURDIR)/docs/conformance/go-v0.3.0.html 2>/dev/null

proto: $(STAMP) $(TS_STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=goomerang_proto/pb --pyi_out=goomerang_proto/pb proto/goomerang_frame.proto proto/goomerang_example.proto proto/goomerang_backplane.proto
	$(BIN)/python -m grpc_tools.protoc -Iproto --plugin=protoc-gen-es=$(TS)/node_modules/.bin/protoc-gen-es --es_out=$(TS)/src/gen --es_opt=target=ts,import_extension=js proto/goomerang_frame.proto proto/goomerang_example.proto

fuzz: $(STAMP)
	$(BIN)/python fuzz/run_all.py --seconds $${FUZZ_SECONDS:-30}

bench: $(STAMP) compiled
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/instructions.py --compiled $(COMPILED) $(INSTR_ARGS)

# The TypeScript client (clients/typescript): npm ci when node_modules is missing or stale,
# then its unit, Node integration and headless-Chromium tests (Debian's chromium).
$(TS_STAMP): $(TS)/package.json $(TS)/package-lock.json
	@command -v npm >/dev/null || { echo "make ts: needs Node 20+ and npm on PATH"; exit 1; }
	cd $(TS) && npm ci --no-audit --no-fund
	touch $@

ts-build: $(TS_STAMP)
	cd $(TS) && npm run --silent build

ts: $(STAMP) ts-build
	scripts/ensure-chromium.sh
	cd $(TS) && PYTHON=$(abspath $(BIN)/python) npm test --silent

# The Node tests that Go's behaviour allows, against Go goomerang's refserver (make goref).
ts-interop: $(STAMP) ts-build goref
	scripts/ensure-chromium.sh
	cd $(TS) && PYTHON=$(abspath $(BIN)/python) GOREF_DIR=$(abspath $(GOREF_DIR)) npm run --silent test:interop

# sendSync round trips/s and pub/sub latency, from Node and from Chromium, against goomerang serve.
ts-bench: $(STAMP) ts-build
	scripts/ensure-chromium.sh
	cd $(TS) && PYTHON=$(abspath $(BIN)/python) npm run --silent bench

# Retake docs/typescript-web-demo.png (the browser test takes it; this copies it into docs/).
ts-screenshot: $(STAMP) ts-build
	scripts/ensure-chromium.sh
	cd $(TS) && PYTHON=$(abspath $(BIN)/python) GOOMERANG_UPDATE_DOCS=1 npm test --silent

clean:
	rm -rf $(VENV) build *.egg-info
