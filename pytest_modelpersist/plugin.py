"""The pytest11 entry point: options, ini, marker, hookspecs and the `persist` fixture.

Importing this module (what `pytest --help` does) never imports TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from . import archive
from .collection import PersistCollection
from .fixture import PersistFactory
from .ownership import GoldenOwnership
from .reporting import collect as reporting
from .settings import MARKER_KEYWORDS, SETTINGS_KEY, PersistSettings
from .shared_cache import SharedCacheController
from .summary import PersistSummary

if TYPE_CHECKING:
    from .persist import Persist

FACTORY_KEY = pytest.StashKey[PersistFactory]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    # Over 60 lines: one addoption/addini per option, pytest's boilerplate; nothing to factor.
    group = parser.getgroup("modelpersist", "model persistence (pytest-modelpersist)")
    group.addoption(
        "--persist-formats", dest="persist_formats", default=None, metavar="NAMES",
        help="comma-separated persistence formats to test, or 'all' "
             "(built-in: ckpt, tf_checkpoint, h5, weights_h5, keras, savedmodel, pb). "
             "Default: the persist_formats ini option, else all.",
    )
    group.addoption(
        "--persist-loaders", dest="persist_loaders", default=None, metavar="NAMES",
        help="how restores are run: inprocess, subprocess (a fresh interpreter without the "
             "test's code), capi (TensorFlow's C API, pb and savedmodel); comma list or 'all'. "
             "Default: the persist_loaders ini option, else inprocess.",
    )
    group.addoption(
        "--persist-runtime", dest="persist_runtime", action="append", default=None,
        metavar="LABEL=PYTHON",
        help="another interpreter (an older TensorFlow) as the loader LABEL, added to the "
             "persist_runtimes ini option; select it with --persist-loaders (repeatable)",
    )
    group.addoption(
        "--persist-timeout", dest="persist_timeout", default=None, type=float, metavar="SEC",
        help="time limit of one subprocess/capi load and run (default 300)",
    )
    group.addoption(
        "--persist-max-shard-mb", dest="persist_max_shard_mb", default=None, metavar="MB",
        help="split the weights of every save into files of at most MB (2**20 bytes) in the "
             "formats that can (tf_checkpoint, savedmodel, weights_h5); 0: whole files. "
             "Default: the persist_max_shard_mb ini option, else whole files.",
    )
    group.addoption(
        "--persist-no-cache", dest="persist_no_cache", action="store_true",
        help="save the model anew in every test instead of reusing the session's artifacts",
    )
    group.addoption(
        "--update-golden", dest="update_golden", action="store_true",
        help="record missing goldens and rewrite goldens whose outputs changed",
    )
    group.addoption(
        "--golden-dir", dest="golden_dir", default=None, metavar="DIR",
        help="root directory of golden files (default: a goldens/ folder next to each test "
             "module); relative to rootdir",
    )
    group.addoption(
        "--remove-unused-goldens", dest="remove_unused_goldens", action="store_true",
        help="delete golden files whose tests no longer exist (only in fully collected modules)",
    )
    group.addoption(
        "--allow-update-golden-on-ci", dest="allow_update_golden_on_ci", action="store_true",
        help="allow --update-golden when the CI environment variable is set",
    )
    parser.addini("golden_dir", "default for --golden-dir", default="")
    parser.addini("persist_loaders", "default for --persist-loaders", default="inprocess")
    parser.addini("persist_subprocess_path",
                  "directories (relative to rootdir) the subprocess loader puts on sys.path: "
                  "what a serving process would have installed", type="paths", default=[])
    parser.addini("persist_subprocess_imports",
                  "modules the subprocess loader imports before restoring (e.g. the package "
                  "registering custom layers)", type="linelist", default=[])
    parser.addini("persist_runtimes",
                  "other interpreters as loaders, one 'LABEL = /path/to/python' per line (relative "
                  "to rootdir): items [<format>-LABEL] restore today's artifacts there",
                  type="linelist", default=[])
    parser.addini("persist_timeout", "default for --persist-timeout (seconds)", default="300")
    parser.addini("persist_formats", "default for --persist-formats (comma list or 'all')",
                  default="all")
    parser.addini("persist_decision",
                  "decision-level checks of every persist.check, one 'option = value' per line "
                  "(agreement = argmax, min_agreement, top_k, max_mismatch_fraction)",
                  type="linelist", default=[])
    parser.addini("persist_convert",
                  "converter options of every save, one 'option = value' per line (opset = 13 "
                  "for onnx, select_tf_ops = true for tflite); each format takes its own",
                  type="linelist", default=[])
    parser.addini("persist_max_shard_mb",
                  "split the weights of every save into files of at most this many MB (2**20 "
                  "bytes), in the formats that can (tf_checkpoint, savedmodel, weights_h5); "
                  "empty: whole files (default for --persist-max-shard-mb)", default="")
    parser.addini("persist_tolerances",
                  "per-dtype tolerance overrides, one 'dtype = rtol, atol' per line",
                  type="linelist", default=[])
    reporting.add_options(parser)
    archive.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"persist({', '.join(k + '=...' for k in MARKER_KEYWORDS)}): narrow the persistence "
        "formats of a test (intersected with --persist-formats) and set its tolerance",
    )
    # TensorFlow and Keras warn about their own internals (numpy 2 copy semantics, deprecated
    # TF1 APIs the formats must call); users cannot act on those, so keep them out of reports.
    for lib in ("tensorflow", "keras", "absl", "h5py"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{lib}")
    settings = config.stash[SETTINGS_KEY] = PersistSettings.from_config(config)
    factory = config.stash[FACTORY_KEY] = PersistFactory(settings)
    ownership = GoldenOwnership(settings)
    archived = config.stash[archive.ARCHIVE_KEY] = archive.ArchiveSettings.from_config(config)
    # One plugin object per concern, each owning its hooks and state (like pytest's LFPlugin
    # and NFPlugin in cacheprovider.py). Add a concern with one more line here.
    register = config.pluginmanager.register
    register(PersistCollection(settings, archived), "modelpersist-collection")
    register(ownership, "modelpersist-goldens")
    register(PersistSummary(settings, ownership, factory), "modelpersist-summary")
    register(reporting.ReportPlugin(config), "modelpersist-report")
    register(SharedCacheController(config, enabled=settings.cache_enabled),
             "modelpersist-shared-cache")


@pytest.fixture
def persist(request: pytest.FixtureRequest) -> Persist:
    """Save/restore/check a model in one format; the test runs once per selected format."""
    return request.config.stash[FACTORY_KEY].make(request)
