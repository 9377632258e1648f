# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing. Torch is installed only when the venv has none
# (override with TORCH_SPEC=...); an existing CUDA build is never replaced.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.moewir-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: $(STAMP)
	$(BIN)/moewir demo -o demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/profile_models.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
