# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv and (re)install the project only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint typecheck pytest simulator package playground e2e-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Microsoft 365 Agents Playground (npm) for `make playground` and the browser test;
# reinstalled only when package-lock.json changes.
$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# Debian's Chromium drives the browser test (never `playwright install`); it needs root.
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then \
		echo "Chromium is missing. Install it with:" >&2; \
		echo "  sudo apt-get update && sudo apt-get install -y chromium fonts-noto-color-emoji" >&2; \
		exit 1; \
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji

e2e-deps: $(NODE_STAMP) $(CHROMIUM)

run: $(STAMP)
	$(BIN)/python app.py

# The bot on the embedded simulator and the Agents Playground together; Ctrl-C stops both.
playground: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m tools.playground

simulator: $(STAMP)
	$(BIN)/phonedesk simulator

# The Teams app package for upload. With MicrosoftAppId unset it still builds, with
# placeholder ids, so a fresh clone can check it; see docs/real-tenant.md.
package: $(STAMP)
	$(BIN)/python -m manifest.build --output appPackage.zip --placeholder-ids

# Speed figures written down in BENCHMARKS.md; minutes, so not part of `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench.provisioning

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) e2e-deps
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache node_modules tests/e2e/artifacts
