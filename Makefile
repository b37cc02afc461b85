# Two commands on a fresh machine: `make demo` and `make test`. Both create their venvs
# themselves: .venv (TensorFlow 2.21.0, Keras 3) and, for `make test`, .venv-tf215 (TensorFlow
# 2.15.1, whose tf.keras is Keras 2): the plugin supports TF 2.15 through 2.21.
PYTHON  ?= python3
VENV    ?= .venv
VENV215 ?= .venv-tf215
PY      := $(VENV)/bin/python
PY215   := $(VENV215)/bin/python
# TensorFlow's C++ start-up lines; the plugin hides the rest.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: venv venv-tf215 venvs demo test test-tf221 test-tf215 test-archive archive-tf215 test-conversions lint bench clean

# $(call make_venv,<venv dir>,<pyproject extra>,<tf-keras version>): the venv, built from the
# extra, plus Keras 2 (tf-keras) without its dependencies: it requires the full `tensorflow`
# distribution, which would install a second TensorFlow beside tensorflow-cpu.
define make_venv
$(1)/.installed-stamp: pyproject.toml Makefile
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(1)/bin/python -m pip install --quiet -e '.[$(2)]' 2>&1 | grep -v "^WARNING: Location" || true
	$(1)/bin/python -m pip install --quiet --no-deps tf-keras==$(3) 2>&1 | grep -v "^WARNING: Location" || true
	$(1)/bin/python -c "import tensorflow, tf_keras, pytest_modelpersist, xdist, hypothesis"
	touch $$@
endef
$(eval $(call make_venv,$(VENV),dev,2.21.0))
$(eval $(call make_venv,$(VENV215),dev-tf215,2.15.1))

venv: $(VENV)/.installed-stamp
venv-tf215: $(VENV215)/.installed-stamp
# Both at once: installing is mostly waiting for the network and unpacking wheels.
venvs:
	$(MAKE) -j2 venv venv-tf215

## The example project's persistence suite over every format (skips show their reasons).
demo: venv
	cd example_project && ../$(PY) -m pytest -rs -v --persist-formats=all -p no:cacheprovider

# $(call run_suites,<python>,<example project options>): the plugin's own tests, then the
# example project.
define run_suites
	$(1) -m pytest tests -n 2 -p no:cacheprovider --durations=15
	cd example_project && ../$(1) -m pytest -q -p no:cacheprovider $(2)
endef

## The plugin's tests and the example project on TF 2.21 (with the conversion formats, and
## TF 2.15.1 as a runtime) and on TF 2.15.1, and the example's TF 2.15.1 archive replayed on
## TF 2.21 (README: Keras 2 and the TensorFlow versions; Upgrading TensorFlow).
test: venvs
	$(MAKE) -k test-tf221 test-tf215 test-archive

WITH_CONVERSIONS := --persist-formats=all,tflite,tflite_dynamic,onnx
# The runtime tests (tests/test_runtimes.py) run today's artifacts in TF 2.15.1 when its venv
# is there (built by `venvs`); they skip, saying so, without it. The conversion formats (TFLite,
# quantized TFLite, ONNX) join the example's run: one TensorFlow import, one training.
test-tf221: export PERSIST_TEST_RUNTIME_TF215 = $(wildcard $(CURDIR)/$(PY215))
test-tf221: venv
	$(call run_suites,$(PY),$(WITH_CONVERSIONS))

# The example's models are trained by the test session: Keras 2 trains other weights than
# Keras 3, so TF 2.15 has its own golden tree.
test-tf215: venv-tf215
	$(call run_suites,$(PY215),--golden-dir=tests/goldens-tf2.15)

## The example project's artifacts recorded with TF 2.15.1 (example_project/persist-archive,
## `make archive-tf215`) restored and checked by TF 2.21: the deployment formats, which carry
## across (README: Upgrading TensorFlow lists what the other formats hit).
test-archive: venv
	cd example_project && ../$(PY) -m pytest -q -p no:cacheprovider -k tf2.15 \
		--persist-archive=persist-archive --persist-formats=savedmodel,pb --persist-loaders=inprocess

## Re-record the example's TF 2.15.1 archive label (then review and commit persist-archive/).
archive-tf215: venv-tf215
	cd example_project && ../$(PY215) -m pytest -q -p no:cacheprovider \
		--golden-dir=tests/goldens-tf2.15 --persist-loaders=inprocess \
		--persist-archive=persist-archive --archive-record=tf2.15 --archive-overwrite

## The example project through the conversion formats only (TFLite, quantized TFLite, ONNX).
test-conversions: venv
	cd example_project && ../$(PY) -m pytest -q -p no:cacheprovider \
		--persist-formats=tflite,tflite_dynamic,onnx

lint: venv
	$(PY) -m ruff check pytest_modelpersist tests
	$(PY) -m mypy pytest_modelpersist

bench: venv
	$(PY) benchmarks/bench_formats.py

clean:
	rm -rf $(VENV) $(VENV215) .pytest_cache example_project/.pytest_cache
