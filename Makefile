# The two commands a new user needs:  make demo  |  make test
# Everything runs from the project's own virtual environment, installed from the pinned lock.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false

.PHONY: demo test install repro run lint bench retrain-demo serve clinc150

## demo: install, run the whole pipeline with `dvc repro` on the bundled Adult data, print the results,
##       promote the candidate into the registry when the gate passed (a failed gate exits non-zero)
demo: install
	@status=0; $(BIN)/dvc repro || status=$$?; $(BIN)/mtl summary; \
	if [ $$status -eq 0 ]; then $(BIN)/mtl promote && $(BIN)/mtl registry list || status=$$?; fi; exit $$status

## test: install, run the test suite (unit + integration: DVC, Prefect, Great Expectations for real)
test: install
	$(BIN)/pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[dev]" 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import mtl_core, pipelines, torch, dvc, prefect, great_expectations"
	touch $@

repro: install
	$(BIN)/dvc repro

## run: the same pipeline as a Prefect flow (one task per stage)
run: install
	$(BIN)/mtl run

## retrain-demo: simulate time passing on Adult: 3 batches arrive (2 good, 1 corrupted), 3 retrain cycles run
retrain-demo: install
	$(BIN)/python scripts/retrain_demo.py $(RETRAIN_DEMO_ARGS)

## clinc150: the second example, on text (intent 151 classes, domain 11, out-of-scope), its own dvc.yaml
clinc150: install
	$(BIN)/dvc repro examples/clinc150/dvc.yaml

## serve: a Prefect server on 127.0.0.1:4200 and the `retrain` deployment on params.yaml's retrain.schedule
serve: install
	$(BIN)/mtl serve

## bench: every benchmark in bench/ (bench/run_all.py), each printing its table; about 25 minutes on 2 cores.
##        BENCH_10M=1 adds the 10M-row scale case (opt-in: about an hour more)
bench: install
	$(BIN)/python bench/run_all.py $(if $(BENCH_10M),--10m) $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check mtl_core pipelines tests bench
