"""Former home of the frozen-graph machinery, now ``pytest_modelpersist.formats.pb``.

Kept so that ``from pytest_modelpersist.freezing import freeze_function`` (documented in 0.1)
still works. GRAPHDEF_LIMIT is read from ``formats.pb.size``: patch it there.
"""

from __future__ import annotations

from .formats.pb import *  # noqa: F403
from .formats.pb import __all__  # noqa: F401
