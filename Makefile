# The commands of the README. Each creates .venv and installs the project first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test unit lint system-deps messages

# Debian packages the tests need: Chromium and its driver (the operator page is tested in a
# real browser) and systemd-analyze (the unit is verified). Installed when missing.
SYSTEM_DEPS := chromium chromium-driver systemd

$(BIN)/printstation: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/printstation

demo: install
	$(BIN)/printstation demo

lint: install
	$(BIN)/ruff check .

# Translations (README, Translations): extract the marked messages from agent/, merge them
# into each catalogue, compile the .mo files, and list every message still to translate.
messages: install
	$(BIN)/python -m printstation.agent.i18n.maintain

system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  && command -v systemd-analyze >/dev/null || { \
	  echo "installing $(SYSTEM_DEPS) (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_DEPS) >/dev/null \
	  || { apt-get update -q >/dev/null && \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_DEPS) >/dev/null; }; }

# Every tier: unit, broker (RabbitMQ at 127.0.0.1:5672) and system (end to end, chaos).
test: lint system-deps
	$(BIN)/python -m pytest

# The quick tier for the inner loop: no broker, no browser.
unit: install
	$(BIN)/python -m pytest tests/unit -q
