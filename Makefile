# Two commands on a fresh machine: `make demo` runs the main job, `make test` the tests.
# Each creates .venv (Python 3.11) if missing and installs the host and every plugin editable.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(PLUGINS))
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml $(PLUGINS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[test]' $(foreach p,$(PLUGIN_DIRS),-e '$(p)[test]')
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/domainfm demo

test: $(STAMP)
	$(BIN)/python -m pytest tests $(PLUGIN_DIRS) -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs demo_runs .pytest_cache
