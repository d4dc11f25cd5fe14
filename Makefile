# The commands of the README. Each creates .venv and installs the project first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test unit lint system-deps node-tools messages pcsc ipp

# Debian packages the tests need, each as command:package, installed when the command is
# missing: Chromium and its driver (the operator page is tested in a real browser),
# systemd-analyze (the unit is verified), Node.js and npm (the AsyncAPI document is read by
# the official AsyncAPI parser) and promtool (the metrics and alert rules are checked by
# Prometheus's own tool; Debian's prometheus package, without the node exporter it
# recommends).
# pcscd with vsmartcard-vpcd's virtual reader (the chip tests present a simulated card to a
# real pcscd), and swig with libpcsclite-dev, which pyscard is built with (`make pcsc`). A dep
# is command:package or, for a package without a command, file:package.
# CUPS for the ipp tier: a cupsd of the tests' own with CUPS's ippeveprinter as the card
# printer (which needs a D-Bus, and renders PDFs with pdftoppm), and libcups2-dev, which
# pycups is built with (`make ipp`). Without recommends: avahi-daemon, colord, cups-browsed
# and ipp-usb are services nothing here uses (cups still brings cups-filters, whose pdftopdf
# the tests' queues run).
SYSTEM_DEPS := chromium:chromium chromedriver:chromium-driver systemd-analyze:systemd \
  node:nodejs npm:npm pcscd:pcscd swig:swig \
  /usr/lib/pcsc/drivers/serial/libifdvpcd.so:vsmartcard-vpcd \
  /usr/include/PCSC/winscard.h:libpcsclite-dev
SYSTEM_DEPS_NO_RECOMMENDS := promtool:prometheus \
  cupsd:cups ippeveprinter:cups-ipp-utils /usr/include/cups/cups.h:libcups2-dev \
  dbus-daemon:dbus pdftoppm:poppler-utils
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get install -y -q
# The official AsyncAPI parser, installed with npm into a folder of the tests' own.
NODE_TOOLS := .tools/node
ASYNCAPI_PARSER := @asyncapi/parser@3.6.6

# $(call apt_install,command:package ...,apt-get options): the packages whose command (or
# file) is missing.
define apt_install
	@missing=$$(for dep in $(1); do command -v $${dep%%:*} >/dev/null || test -e $${dep%%:*} \
	            || echo $${dep#*:}; done); \
	if [ -n "$$missing" ]; then echo "installing" $$missing "(apt-get)"; \
	  $(APT_GET) $(2) $$missing >/dev/null \
	  || { apt-get update -q >/dev/null && $(APT_GET) $(2) $$missing >/dev/null; }; fi
endef

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
	$(call apt_install,$(SYSTEM_DEPS),)
	$(call apt_install,$(SYSTEM_DEPS_NO_RECOMMENDS),--no-install-recommends)
	@$(MAKE) --no-print-directory node-tools

# Without npm this says so and goes on: the AsyncAPI test then fails saying how to install.
node-tools:
	@test -f $(NODE_TOOLS)/node_modules/@asyncapi/parser/package.json || { \
	  command -v npm >/dev/null || { echo "npm is missing: make system-deps installs it"; \
	                                 exit 0; }; \
	  echo "installing $(ASYNCAPI_PARSER) into $(NODE_TOOLS) (npm)"; \
	  npm install --prefix $(NODE_TOOLS) --no-audit --no-fund --silent $(ASYNCAPI_PARSER); }

# pyscard (the `pcsc` extra) compiles against libpcsclite-dev with swig, so it is installed
# after system-deps, not by `install`: install, unit and demo need no C toolchain or apt.
pcsc: install system-deps
	@$(BIN)/python -c "import smartcard" 2>/dev/null || { echo "installing pyscard (pip)"; \
	  $(BIN)/pip install -q -e '.[test,pcsc]'; }

# pycups (the `ipp` extra) compiles against libcups2-dev, so it too is installed after
# system-deps, not by `install`.
ipp: install system-deps
	@$(BIN)/python -c "import cups" 2>/dev/null || { echo "installing pycups (pip)"; \
	  $(BIN)/pip install -q -e '.[test,ipp]'; }

# Every tier: unit, broker (RabbitMQ at 127.0.0.1:5672), pcsc (a pcscd of its own), ipp (a
# cupsd and ippeveprinter of its own), cluster (three RabbitMQ nodes of its own) and system
# (end to end, chaos).
test: lint system-deps pcsc ipp
	$(BIN)/python -m pytest

# The quick tier for the inner loop: no broker, no browser.
unit: install node-tools
	$(BIN)/python -m pytest tests/unit -q
