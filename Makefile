# The README's two commands: `make demo` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5050

.PHONY: install demo test test-aws lint format emulator runtime clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/sales-cdc demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# The browser test drives the UI in Debian's Chromium: install it when we can, else say why not.
	@if [ -x /usr/bin/chromium ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make test: /usr/bin/chromium missing and no apt-get to install it: the browser test will be skipped"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then \
	    echo "make test: /usr/bin/chromium missing, and neither root nor passwordless sudo to apt-get install chromium: the browser test will be skipped"; \
	  else \
	    echo "make test: installing chromium (apt-get) for the browser test"; \
	    { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1 \
	      || echo "make test: apt-get install chromium failed: the browser test will be skipped"; \
	  fi; \
	fi
	$(BIN)/python -m pytest

# The whole pipeline in a real AWS account (creates, then deletes, a stack with its own prefix).
# Needs SALES_CDC_TEST_AWS=1, AWS credentials and AWS_REGION; see README "Running it on AWS".
test-aws: install
	@if [ "$$SALES_CDC_TEST_AWS" != 1 ]; then \
	  echo "make test-aws: set SALES_CDC_TEST_AWS=1 to run against a real AWS account (it costs money)"; \
	  exit 2; \
	fi
	$(BIN)/python -m pytest -m aws -rs -p no:randomly sales_cdc_tests/aws

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

emulator: install
	$(BIN)/sales-cdc emulator --port $(PORT)

runtime: install
	$(BIN)/sales-cdc runtime

clean:
	rm -rf $(VENV) .demo build *.egg-info
