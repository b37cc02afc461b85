# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# TensorFlow's C++ start-up lines; the plugin hides the rest.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: venv demo test test-plugin test-example test-conversions lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install --quiet -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import tensorflow, pytest_modelpersist, xdist, hypothesis"
	touch $(STAMP)

venv: $(STAMP)

## The example project's persistence suite over every format (skips show their reasons).
demo: venv
	cd example_project && ../$(PY) -m pytest -rs -v --persist-formats=all -p no:cacheprovider

## The plugin's own tests, then the example project.
test: venv
	$(PY) -m pytest tests -n 2 -p no:cacheprovider
	cd example_project && ../$(PY) -m pytest -q -p no:cacheprovider

## The example project through the conversion formats (TFLite, quantized TFLite, ONNX).
test-conversions: venv
	cd example_project && ../$(PY) -m pytest -q -p no:cacheprovider \
		--persist-formats=tflite,tflite_dynamic,onnx

lint: venv
	$(PY) -m ruff check pytest_modelpersist tests
	$(PY) -m mypy pytest_modelpersist

bench: venv
	$(PY) benchmarks/bench_formats.py

clean:
	rm -rf $(VENV) .pytest_cache example_project/.pytest_cache
