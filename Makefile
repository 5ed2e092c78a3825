# classsync — `make help` lists the targets.
SHELL := /bin/bash
# The first of these that is Python >= 3.11 (override: make install PYTHON=/path/to/python3).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3.14 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := tests/node/node_modules/.installed
PRISMA_STAMP := tools/prisma/node_modules/.installed
PYTEST_ARGS ?=
IMAGE ?= classsync:latest
BASE_IMAGE ?= python:3.11-slim
WHEELHOUSE := build/wheelhouse

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

# requirements.lock pins the runtime set; requirements-dev.lock pins what the dev/bench extras add.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@test -n "$(PYTHON)" || { echo "need Python >= 3.11 (python3.11 … python3.14, or python3; or make install PYTHON=/path/to/python3)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "$(PYTHON) does not run as Python >= 3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -c requirements-dev.lock -e '.[dev]'
	@touch $@

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(PRISMA_STAMP): tools/prisma/package.json tools/prisma/package-lock.json
	cd tools/prisma && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP) ## create .venv and install classsync with its dev tools (pinned)

node-deps: $(NODE_STAMP) $(PRISMA_STAMP) ## install the Node packages the tests use (grpc-js client, Prisma CLI)

run: install ## run the server on 127.0.0.1:50051 (+ the local QBO sandbox when QBO and the database are the defaults)
	$(BIN)/classsync serve

sandbox: install ## run only the local QBO sandbox on 127.0.0.1:8765
	$(BIN)/classsync sandbox

migrate: install ## apply database migrations to DATABASE_URL
	$(BIN)/classsync migrate

test: install node-deps ## run the whole test suite (real PostgreSQL, sandbox over HTTP, real gRPC)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install node-deps ## the suite without the slow fault/soak tests
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-unit: install ## unit tests only
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-integration: install node-deps ## integration tests only
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test-e2e: install node-deps ## end-to-end tests only
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

bench: install ## run the benchmarks (report in bench-out/)
	$(BIN)/classsync bench

protos: install ## regenerate the gRPC stubs from protos/
	$(BIN)/python -m grpc_tools.protoc -Iclasssync/api/_generated=protos --python_out=. --grpc_python_out=. --pyi_out=. protos/class_service.proto

protos-check: protos ## fail if the committed stubs differ from a fresh generation
	git diff --exit-code -- classsync/api/_generated

wheelhouse: install ## wheels of classsync and its locked runtime dependencies (build/wheelhouse)
	rm -rf $(WHEELHOUSE)
	$(BIN)/pip wheel -q --disable-pip-version-check -c requirements.lock -w $(WHEELHOUSE) .

image: wheelhouse ## the container image (IMAGE=classsync:latest; BASE_IMAGE=local/python:3.11 without a registry)
	docker build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

base-images: ## local Debian base images for machines where no image registry answers
	tools/container/build-base.sh

lint: install ## ruff check + format check + mypy
	$(BIN)/ruff check classsync tests
	$(BIN)/ruff format --check classsync tests
	$(BIN)/mypy classsync

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix classsync tests
	$(BIN)/ruff format classsync tests

clean: ## remove caches and local state: the SQLite database, the sandbox's state (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache bench-out classsync.db classsync.db-* sandbox-state.json

.PHONY: help install node-deps run sandbox migrate wheelhouse image base-images test test-fast test-unit test-integration test-e2e bench protos protos-check lint format clean
