"""The archive of saved artifacts: record them under a label, replay them in later runs.

`store` owns the files (content-addressed objects, labels, entries), `options` the command
line and ini, `item` what one ``[<format>@<LABEL>]`` item does (record or replay). Nothing here
imports TensorFlow at import time.
"""

from __future__ import annotations

from .options import ARCHIVE_KEY, ArchiveSettings, add_options

__all__ = ["ARCHIVE_KEY", "ArchiveSettings", "add_options"]
