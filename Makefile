# Two commands for a new user: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types contracts unit proto fuzz bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m goomerang_io demo

test: $(STAMP) lint types contracts unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=goomerang_proto/pb --pyi_out=goomerang_proto/pb proto/goomerang_frame.proto proto/goomerang_example.proto proto/goomerang_backplane.proto

fuzz: $(STAMP)
	$(BIN)/python fuzz/run_all.py --seconds $${FUZZ_SECONDS:-30}

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/instructions.py $(INSTR_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
