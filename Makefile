# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# One pip command naming torch==2.13.0 beside lightning: on its own, lightning would pull a CUDA torch.
INSTALL := $(BIN)/pip install --quiet "torch==2.13.0" -e ".[dev,speech]"
DATA    ?= $(if $(VAEKIT_DATA),$(VAEKIT_DATA),../shared/data)

.PHONY: demo test lint bench clean

$(BIN)/vaekit: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(INSTALL)
	touch $@

demo: $(BIN)/vaekit
	VAEKIT_DATA=$(DATA) $(BIN)/vaekit train configs/demo.yaml --out runs/demo
	VAEKIT_DATA=$(DATA) $(BIN)/vaekit sample runs/demo --out runs/demo/samples.png
	VAEKIT_DATA=$(DATA) $(BIN)/vaekit reconstruct runs/demo --out runs/demo/reconstructions.png
	VAEKIT_DATA=$(DATA) $(BIN)/vaekit evaluate runs/demo

test: $(BIN)/vaekit
	@command -v espeak-ng >/dev/null || { apt-get install -y -qq espeak-ng || { apt-get update -qq && apt-get install -y -qq espeak-ng; } || sudo apt-get install -y -qq espeak-ng; } >/dev/null 2>&1 || echo "make: espeak-ng is missing and could not be installed (apt-get install espeak-ng): the synthetic speech tests will be skipped" >&2
	VAEKIT_DATA=$(DATA) $(BIN)/python -m pytest

lint: $(BIN)/vaekit
	$(BIN)/ruff check vaekit tests benchmarks
	$(BIN)/lint-imports  # the layers and the nevers: [tool.importlinter] in pyproject.toml

bench: $(BIN)/vaekit
	VAEKIT_DATA=$(DATA) bash benchmarks/run.sh

clean:
	rm -rf runs .pytest_cache
