# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# Byte-compiled once here, as pip does for a regular install: an editable install leaves it to the
	@# first import, which never writes it where PYTHONDONTWRITEBYTECODE is set (every run would compile
	@# Niche from source again, about half a second of a `niche compare`). Python recompiles a stale file.
	$(PY) -m compileall -q compiler ir passes targets
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/niche run examples/mlp.nk --target cpu --check

test: $(STAMP)
	$(PY) -m pytest -q -n auto

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
