# Two commands on a fresh machine: `make demo` and `make test`. Both create their venvs
# themselves: .venv (TensorFlow 2.21.0, Keras 3) and, for `make test`, .venv-tf215 (TensorFlow
# 2.15.1, whose tf.keras is Keras 2): the plugin supports TF 2.15 through 2.21.
PYTHON  ?= python3
VENV    ?= .venv
VENV215 ?= .venv-tf215
PY      := $(VENV)/bin/python
PY215   := $(VENV215)/bin/python
VENV218 ?= .venv-tf218
PY218   := $(VENV218)/bin/python
# TensorFlow's C++ start-up lines; the plugin hides the rest.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: venv venv-tf215 venv-tf218 venvs demo test test-suites test-examples test-tf221 test-tf215 test-archive archive-tf215 archive-tf218 test-conversions lint bench clean

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

# $(call suite,<python>): the plugin's own tests on two xdist workers. Work stealing: with
# xdist's default `load`, a worker keeps the chunk it was sent (up to a quarter of the suite) and
# the other sat idle for minutes at the end of each leg while it ran the real-world models.
suite = $(1) -m pytest tests -n 2 --dist worksteal -p no:cacheprovider --durations=15
# $(call example,<python>,<options>): the example project, in one process.
example = cd example_project && ../$(1) -m pytest -q -p no:cacheprovider $(2)

WITH_CONVERSIONS := --persist-formats=all,tflite,tflite_dynamic,onnx
# The example's models are trained by the test session: Keras 2 trains other weights than
# Keras 3, so TF 2.15 has its own golden tree.
TF215_GOLDENS := --golden-dir=tests/goldens-tf2.15
# The TF 2.21 suite's runtime tests (tests/test_runtimes.py) run today's artifacts in TF 2.15.1
# when its venv is there (built by `venvs`); they skip, saying so, without it.
WITH_RUNTIME := PERSIST_TEST_RUNTIME_TF215="$$(test -x $(PY215) && echo $(CURDIR)/$(PY215))"

## The plugin's tests and the example project on TF 2.21 (with the conversion formats, and
## TF 2.15.1 as a runtime) and on TF 2.15.1, and the example's archive replayed on TF 2.21
## (README: Keras 2 and the TensorFlow versions; Upgrading TensorFlow). Two jobs side by side,
## each printed whole when it ends: the suites (two workers each), and the single-process
## example and archive runs, which use the core the suites leave idle.
test: venvs
	$(MAKE) -k -j2 --output-sync=target test-suites test-examples

test-suites: venvs
	$(WITH_RUNTIME) $(call suite,$(PY)) ; a=$$? ; $(call suite,$(PY215)) ; b=$$? ; [ $$a = 0 ] && [ $$b = 0 ]

test-examples: venvs
	($(call example,$(PY),$(WITH_CONVERSIONS))) ; a=$$? ; \
	($(call example,$(PY215),$(TF215_GOLDENS))) ; b=$$? ; \
	$(MAKE) --no-print-directory test-archive ; c=$$? ; [ $$a = 0 ] && [ $$b = 0 ] && [ $$c = 0 ]

## One version only: its suite, then its example project. The conversion formats (TFLite,
## quantized TFLite, ONNX) join the TF 2.21 example's run: one TensorFlow import, one training.
test-tf221: venv
	$(WITH_RUNTIME) $(call suite,$(PY))
	$(call example,$(PY),$(WITH_CONVERSIONS))

test-tf215: venv-tf215
	$(call suite,$(PY215))
	$(call example,$(PY215),$(TF215_GOLDENS))

## The example project's archive (example_project/persist-archive): artifacts recorded with
## TF 2.15.1 / Keras 2 (`make archive-tf215`) and TF 2.18.1 / Keras 3.6 (`make archive-tf218`),
## every format restored and checked by TF 2.21; the upstream breaks are expected failures
## (example_project/tests/conftest.py; README: Upgrading TensorFlow).
test-archive: venv
	cd example_project && ../$(PY) -m pytest -q -p no:cacheprovider -k "tf2.15 or tf2.18" \
		--persist-archive=persist-archive --persist-formats=all --persist-loaders=inprocess

## Re-record the example's TF 2.15.1 archive label (then review and commit persist-archive/).
archive-tf215: venv-tf215
	cd example_project && ../$(PY215) -m pytest -q -p no:cacheprovider -k "not tf2.18" \
		--golden-dir=tests/goldens-tf2.15 --persist-loaders=inprocess \
		--persist-archive=persist-archive --archive-record=tf2.15 --archive-overwrite

# TF 2.18.1 with the Keras of its release (3.6): early Keras 3. Only for recording; `make test`
# does not build it.
$(VENV218)/.installed-stamp: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV218)
	$(VENV218)/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(VENV218)/bin/python -m pip install --quiet -e '.[archive-tf218]' 2>&1 | grep -v "^WARNING: Location" || true
	$(VENV218)/bin/python -c "import tensorflow, keras, pytest_modelpersist"
	touch $@
venv-tf218: $(VENV218)/.installed-stamp

## Re-record the example's TF 2.18.1 archive label: the Keras formats and pb (SavedModel is
## covered by tf2.15 and keeps the archive under 2 MB); goldens of that run are thrown away.
archive-tf218: venv-tf218
	cd example_project && ../$(PY218) -m pytest -q -p no:cacheprovider -k "roundtrip and not tf2.15" \
		--golden-dir=$$(mktemp -d) --update-golden --persist-loaders=inprocess \
		--persist-formats=h5,weights_h5,keras,tf_checkpoint,ckpt,pb \
		--persist-archive=persist-archive --archive-record=tf2.18 --archive-overwrite

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
	rm -rf $(VENV) $(VENV215) $(VENV218) .pytest_cache example_project/.pytest_cache
