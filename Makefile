# Two commands for a new user: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TS := clients/typescript
TS_STAMP := $(TS)/node_modules/.installed

.PHONY: demo test lint types contracts unit proto fuzz bench clean interop interop-py goref
.PHONY: ts ts-build ts-interop ts-bench ts-screenshot

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m goomerang_io demo

test: $(STAMP) lint types contracts unit ts

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Interoperability with the real Go goomerang v0.3.0 (built once into .goref/, ~1 min, root
# or Debian's Go packages needed: scripts/goref.sh says what is missing). Suites of other
# runtimes add their target (depending on goref) to INTEROP_EXTRA; each gets GOREF_DIR (the
# folder of refserver and refclient) from the environment.
GOREF_BUILD ?= $(CURDIR)/.goref
export GOREF_DIR := $(GOREF_BUILD)/bin
INTEROP_EXTRA := ts-interop

interop: interop-py $(INTEROP_EXTRA)

goref:
	scripts/goref.sh $(GOREF_BUILD) >/dev/null

interop-py: $(STAMP) goref
	$(BIN)/python -m pytest tests/interop $(PYTEST_ARGS)

proto: $(STAMP) $(TS_STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=goomerang_proto/pb --pyi_out=goomerang_proto/pb proto/goomerang_frame.proto proto/goomerang_example.proto proto/goomerang_backplane.proto
	$(BIN)/python -m grpc_tools.protoc -Iproto --plugin=protoc-gen-es=$(TS)/node_modules/.bin/protoc-gen-es --es_out=$(TS)/src/gen --es_opt=target=ts,import_extension=js proto/goomerang_frame.proto proto/goomerang_example.proto

fuzz: $(STAMP)
	$(BIN)/python fuzz/run_all.py --seconds $${FUZZ_SECONDS:-30}

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

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
