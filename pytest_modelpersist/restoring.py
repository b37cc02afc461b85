"""Fill a model's variables from what a file holds, by name, and account for every name.

Real code rarely restores a model exactly as it was saved: layers are renamed, scopes move, a
backbone goes into a new head. Every variable-holding format describes its file as
:class:`SavedVariables` (name -> shape and dtype, how to read a value, other names an entry is
known by) and hands it, in a :class:`ByName` reader, to the one engine :func:`restore_with`
with the user's :class:`RestoreOptions`:

* ``var_map`` -- saved name -> target variable (or its name); keys ending in ``/`` are prefix
  maps in the style of ``init_from_checkpoint`` (``{'old_scope/': 'new_scope/'}``);
* ``only`` -- restore just these (saved or target names, prefixes, variables); every other
  variable of the target keeps its current value;
* ``strict`` -- missing or mismatched variables fail (the default), or are only reported;
* ``skip_mismatched`` -- a shape or dtype mismatch skips that variable instead of failing.

The target's variables are named as :func:`models.variables` names them (``.weights.h5`` paths
for Keras, attribute paths for a tf.Module, op names for a TF1 graph) and are also found by
their aliases: a Keras variable's ``path`` (``enc/kernel``), its legacy-HDF5 name
(``<layer name>/<weight>``) and, for object-based checkpoints, its object path.

The pieces live in :mod:`pytest_modelpersist.restore`: ``saved`` (what a file holds),
``targets`` (the target's variables), ``plan`` (matching), ``engine`` (perturb, fill, verify,
report) and ``readers`` (by name, or a format's own whole-model loader). This module keeps the
names tests import.
"""

from __future__ import annotations

from .models import RestoreReport
from .restore.engine import Planned, Reader, ensure_built, restore_target, restore_with
from .restore.options import RestoreOptions
from .restore.plan import Pair, RestorePlan, plan_restore
from .restore.readers import ByName, WholeModel, aligned_by_position, assign_pairs
from .restore.saved import (
    OBJECT_GRAPH_KEY,
    VALUE_SUFFIX,
    SavedVariables,
    checkpoint_variables,
    h5_layer_weight_names,
)
from .restore.targets import TargetVariables, target_variables

__all__ = [
    "OBJECT_GRAPH_KEY", "VALUE_SUFFIX", "ByName", "Pair", "Planned", "Reader", "RestoreOptions",
    "RestorePlan", "RestoreReport", "SavedVariables", "TargetVariables", "WholeModel",
    "aligned_by_position", "assign_pairs", "checkpoint_variables", "ensure_built",
    "h5_layer_weight_names", "plan_restore", "restore_target", "restore_with",
    "target_variables",
]
