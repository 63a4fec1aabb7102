# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv and (re)install the project only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest simulator package clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python app.py

simulator: $(STAMP)
	$(BIN)/phonedesk simulator

# The Teams app package for upload. With MicrosoftAppId unset it still builds, with
# placeholder ids, so a fresh clone can check it; see docs/real-tenant.md.
package: $(STAMP)
	$(BIN)/python -m manifest.build --output appPackage.zip --placeholder-ids

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
