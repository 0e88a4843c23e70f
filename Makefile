# HMU-Bench: the two commands are `make bench METHOD=<name>` and `make test`.
# Every target creates the virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; a looser pin would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
METHOD ?= original

.PHONY: help venv test bench lint data images images-clean mlflow-ui serve

help:
	@echo "make bench METHOD=<name>   run the benchmark for one method on the embedded default"
	@echo "make bench METHOD=all      every method on every embedded task (TASK=<name> for one task)"
	@echo "make test                  run the test suite"
	@echo "make lint                  ruff check"
	@echo "make data                  generate the embedded dataset into data/embedded"
	@echo "make images                build the container images offline (needs an engine: ci/start-docker.sh)"
	@echo "make images-clean          remove the container images"
	@echo "make mlflow-ui             serve the MLflow runs of results/ on http://127.0.0.1:5000"
	@echo "make serve                 serve the leaderboard site results/site on http://127.0.0.1:8000"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check benchmark tests methods leaderboard

data: $(STAMP)
	$(BIN)/hmu data synth --out data/embedded

# The `original` row comes with every METHOD, and the `retrain` reference (D_r). METHOD=all runs every method;
# RUNNER=local|docker|slurm|auto (default auto: Docker when an engine answers).
RUNNER ?= auto
# RUNNER=slurm talks to $(SLURM_CONF)'s cluster: by default the one ci/start-slurm.sh configured, when there is one.
SLURM_CONF ?= $(wildcard $(CURDIR)/build/slurm/slurm.conf)
ifneq ($(SLURM_CONF),)
export SLURM_CONF
endif
# TASK: embedded_violence when one method runs; METHOD=all is the whole benchmark, every task whose data is
# present (the three embedded tasks, each with its own retrain reference). TASK=all|<name> says it outright.
TASK ?= $(if $(filter all,$(METHOD)),all,embedded_violence)
# Stages (and preparations: the images, the base model, the evaluator) run WORKERS at a time, one thread each.
WORKERS ?= 2
bench: $(STAMP)
	$(BIN)/hmu bench --method original --method $(METHOD) --task $(TASK) --runner $(RUNNER) --workers $(WORKERS) --torch-spec "$(TORCH_SPEC)" $(if $(BASE_IMAGE),--base-image "$(BASE_IMAGE)")

# The leaderboard site `make bench` renders (hmu leaderboard); it also works opened from disk.
SITE_PORT ?= 8000
serve:
	@test -f results/site/index.html || { echo "no results/site yet: run make bench (or hmu leaderboard)"; exit 2; }
	$(PYTHON) -m http.server $(SITE_PORT) --bind 127.0.0.1 --directory results/site

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/results/mlflow.db --host 127.0.0.1

# BASE_IMAGE=python:3.11-slim (or a CUDA/PyTorch image) replaces the offline debootstrap base image.
images: $(STAMP)
	$(BIN)/hmu images build --torch-spec "$(TORCH_SPEC)" $(if $(BASE_IMAGE),--base-image "$(BASE_IMAGE)")

images-clean: $(STAMP)
	$(BIN)/hmu images clean
