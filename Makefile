# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create a virtual environment (VENV) and install the tested dependency set into it.
# TRANSFORMERS picks the transformers release (the CI runs the lowest and the highest supported).

PYTHON ?= python3
TRANSFORMERS ?= 5.5.4
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-transformers-$(TRANSFORMERS)

.PHONY: install demo test lint clean

install: $(STAMP)

# Quiet: one line says what is installed; pip's -qq keeps its errors (a dependency conflict, a failed
# download) and drops its warnings and progress (and setuptools' note on how an editable install
# finds the package).
$(STAMP): pyproject.toml requirements/ci.txt
	@$(PYTHON) -c "import ssl" || { echo "$(PYTHON) cannot import ssl (a mismatched libpython on LD_LIBRARY_PATH?); pass PYTHON=<a working python3.11>" >&2; exit 1; }
	@echo "Installing the tested dependency set into $(VENV) (transformers $(TRANSFORMERS)); takes a few minutes"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --upgrade pip
# CPU torch first, so nothing below pulls a CUDA build.
	@$(BIN)/pip install -qq "torch==2.13.0"
	@$(BIN)/pip install -qq -r requirements/ci.txt "transformers==$(TRANSFORMERS)"
# optimum-intel last and without its dependencies (requirements/ci.txt says why): an install that
# resolves dependencies after it would report its unused torchvision requirement as a conflict.
	@$(BIN)/pip install -qq --no-deps "optimum-intel==2.2.0"
	@$(BIN)/pip install -qq --no-deps -e .
	@rm -f $(VENV)/.installed-transformers-*
	@touch $(STAMP)

demo: install
	@$(BIN)/python demo/run_demo.py

test: install
	$(BIN)/ruff check optimum_qwen35 tests demo optimum benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: install
	$(BIN)/ruff check optimum_qwen35 tests demo optimum benchmarks
	$(BIN)/ruff format --check optimum_qwen35 tests demo optimum benchmarks

clean:
	rm -rf $(VENV) demo-output
