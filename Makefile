# The README's two commands are `make run` (the whole local pipeline on the embedded synthetic
# dataset) and `make test` (lint, infrastructure checks and the default test suite). Both set up
# everything themselves on a machine that has Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
VENV := .venv
UV := $(TOOLS)/bin/uv
BIN := $(VENV)/bin
WORKDIR ?= work
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Byte-compile at install: imports then skip compiling (which PYTHONDONTWRITEBYTECODE, common in
# containers and CI, otherwise repeats in every process: Beam workers, kfp.local tasks, tests).
export UV_COMPILE_BYTECODE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export KERAS_BACKEND := tensorflow

.PHONY: help setup run test lint format infra-check compile test-slow benchmarks clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	@echo "setting up $(VENV) from uv.lock (downloads and byte-compiles ~240 packages: 1-2 min)"
	$(UV) sync --quiet --frozen --extra train --extra beam --extra pipeline --extra dev --python $(PYTHON)
	@echo "$(VENV) ready: $$($(VENV)/bin/python -c 'import importlib.metadata as m; print(len(list(m.distributions())))') packages"
	touch $@

setup: $(VENV)/.synced  ## create .venv from uv.lock (every group except the TPU-only `tpu`)

run: setup  ## the main job: full local pipeline on the synthetic dataset, under $(WORKDIR)/
	$(BIN)/assemblenet pipeline run --local --workdir $(WORKDIR)

lint: setup  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

infra-check: setup  ## hadolint on every Dockerfile, checkov on Terraform and Dockerfiles, parse all Terraform
	$(BIN)/python infra/checks.py

compile: setup  ## regenerate pipeline.yaml (the vertex target)
	$(BIN)/assemblenet pipeline compile --output pipeline.yaml

test: setup lint infra-check  ## lint, infra checks and the default (fast) test suite
	$(BIN)/pytest

test-slow: setup  ## the heavy tests (full-size presets, long training)
	$(BIN)/pytest -m slow

clean:  ## remove environments and local outputs
	rm -rf $(VENV) $(TOOLS) $(WORKDIR) local_outputs .pytest_cache .ruff_cache
