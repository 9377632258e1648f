# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing. Torch is installed only when the venv has none
# (override with TORCH_SPEC=...); an existing CUDA build is never replaced.
# `make browser-test` drives `moewir serve` in a headless Chromium (browser_tests/, not in the
# default suite; needs Debian's chromium and chromium-driver) and saves docs/images/web_page.png.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.moewir-installed

.PHONY: demo test browser-test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: $(STAMP)
	$(BIN)/moewir demo -o demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q

browser-test: $(STAMP)
	@command -v chromedriver >/dev/null || { echo "browser-test needs Chromium and its driver:" \
		"apt-get install -y chromium chromium-driver"; exit 1; }
	$(BIN)/pip install -q -e ".[web]" "selenium>=4.10"
	MOEWIR_SCREENSHOT=docs/images/web_page.png $(BIN)/python -m pytest -q browser_tests

bench: $(STAMP)
	$(BIN)/python bench/profile_models.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
