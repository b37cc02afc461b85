"""Restores that do not put a model back exactly as it was saved (issue 4).

Renamed variables (seed 003's ``Saver({'v1': other_v1})``), partial restores (``Saver([v1])``),
scopes that moved (``init_from_checkpoint``'s ``{'old_scope/': 'new_scope/'}``), Keras'
by-name HDF5 restore, a backbone into a new head, and choosing which checkpoint of a training
run restores. Each variant passes when done right, and each mistake it invites (a wrong map, a
missing variable, a shape mismatch, a restore that silently loads nothing) fails with a message
naming the format, the file and the cause. Real TensorFlow, real files, no mocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_modelpersist.formats import BUILTIN_FORMATS
from pytest_modelpersist.formats.tf1 import save_steps
from pytest_modelpersist.models import RestoreReport
from pytest_modelpersist.persist import CheckOptions, Persist
from pytest_modelpersist.restore.options import RestoreOptions
from pytest_modelpersist.restoring import ByName, restore_with

import model_zoo
import variant_models as vm

FORMATS = {cls.name: cls for cls in BUILTIN_FORMATS}
#: Formats whose files hold variables a by-name restore can read.
VARIABLE_FORMATS = ["ckpt", "tf_checkpoint", "h5", "weights_h5", "keras", "savedmodel"]
X4 = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
X1 = np.array([[1.0], [2.0]], np.float32)


def make_persist(fmt_name: str, tmp_path: Path) -> Persist:
    return Persist(FORMATS[fmt_name](), tmp_path=tmp_path, options=CheckOptions(golden=False))


def failure(call: Any) -> str:
    with pytest.raises(pytest.fail.Exception) as info:
        call()
    return str(info.value)


def assert_values(model: Any, expected: dict[str, np.ndarray], names: list[str]) -> None:
    now = vm.keras_values(model)
    for name in names:
        np.testing.assert_array_equal(now[name], expected[name], err_msg=name)


# ---- seed 003: Saver({'v1': v1}) and Saver([v1]) -----------------------------------------


@pytest.fixture
def seed_ckpt(tmp_path: Path) -> tuple[Persist, Any]:
    """The seed's checkpoint: v1 = 3, v2 = 4 (the targets start at 1 and 2)."""
    persist = make_persist("ckpt", tmp_path)
    return persist, persist.save(vm.seed_graph((3.0, 4.0)))


def test_seed003_renamed_variables_restore_through_a_map(seed_ckpt):
    persist, artifact = seed_ckpt
    target = vm.seed_graph(names=("other-v1", "other-v2"))
    other_v1 = target.graph_variables()[0]
    # A variable object or its name: both are what Saver({'v1': v1}) means.
    restored = persist.restore(artifact, into=target, var_map={"v1": other_v1, "v2": "other-v2"})
    assert vm.graph_values(target) == {"other-v1": [3.0], "other-v2": [4.0]}
    assert restored.report.restored == ["other-v1", "other-v2"]
    assert restored.report.unused == [] and restored.report.missing == []
    assert restored.how.startswith("Saver(var_list={saved name: variable}).restore")
    add, y = restored(X1)
    np.testing.assert_array_equal(add, [7.0])
    np.testing.assert_array_equal(y, [[7.0], [14.0]])


def test_seed003_restore_only_v1_and_v2_keeps_its_value(seed_ckpt):
    persist, artifact = seed_ckpt
    target = vm.seed_graph((1.0, 2.0), names=("other-v1", "other-v2"))
    restored = persist.restore(artifact, into=target, var_map={"v1": "other-v1"}, only=["v1"])
    values = vm.graph_values(target)
    assert values["other-v1"] == [3.0]
    assert values["other-v2"] == [2.0]  # untouched: neither restored nor perturbed
    assert restored.report.restored == ["other-v1"]
    assert restored.report.skipped == ["other-v2"]
    assert restored.report.unused == ["v2"]  # reported, and fine: only= asked for v1


def test_seed003_same_names_restore_without_a_map(seed_ckpt):
    persist, artifact = seed_ckpt
    target = vm.seed_graph()
    restored = persist.restore(artifact, into=target, only=["v1"])
    assert vm.graph_values(target) == {"v1": [3.0], "v2": [2.0]}
    assert restored.report.skipped == ["v2"]


def test_seed003_old_names_into_renamed_variables_fail_not_found(seed_ckpt):
    persist, artifact = seed_ckpt
    target = vm.seed_graph(names=("other-v1", "other-v2"))
    message = failure(lambda: persist.restore(artifact, into=target))
    assert message.startswith(f"[ckpt] restore of {artifact.path}")
    assert "missing from the file 2: other-v1, other-v2" in message
    assert "in the file but unused 2: v1, v2" in message
    assert f"other-v1: not found in {artifact.path}" in message
    assert "var_map={'v1': 'other-v1'}" in message  # the fix, spelled out
    assert "var_map={'v2': 'other-v2'}" in message
    assert vm.graph_values(target) == {"other-v1": [1.0], "other-v2": [2.0]}


# ---- var_map ------------------------------------------------------------------------------


def test_prefix_map_moves_a_scope_like_init_from_checkpoint(tmp_path):
    persist = make_persist("ckpt", tmp_path)
    artifact = persist.save(vm.seed_graph((3.0, 4.0), scope="old_scope"))
    target = vm.seed_graph(scope="new_scope")
    restored = persist.restore(artifact, into=target, var_map={"old_scope/": "new_scope/"})
    assert vm.graph_values(target) == {"new_scope/v1": [3.0], "new_scope/v2": [4.0]}
    assert restored.report.restored == ["new_scope/v1", "new_scope/v2"]
    # Without the map nothing matches, and the report proposes the prefix map.
    message = failure(lambda: persist.restore(artifact, into=vm.seed_graph(scope="new_scope")))
    assert "new_scope/v1: not found" in message
    assert "var_map={'old_scope/': 'new_scope/'}" in message


@pytest.mark.parametrize("fmt_name", ["h5", "savedmodel"])
def test_renamed_keras_layers_restore_through_a_prefix_map(fmt_name, tmp_path):
    """h5 and SavedModel name variables by layer name: a rename needs a map, and says so."""
    persist = make_persist(fmt_name, tmp_path)
    saved = vm.mlp(("enc", "head"), seed=1)
    artifact = persist.save(saved, inputs=X4)
    renamed = vm.mlp(("encoder", "classifier"), seed=2)
    message = failure(lambda: persist.restore(artifact, into=renamed))
    assert message.startswith(f"[{fmt_name}] restore of {artifact.path}")
    assert "missing from the file 4: encoder/kernel, encoder/bias, classifier/kernel" in message
    assert "var_map={'enc/': 'encoder/'}" in message
    assert "var_map={'head/': 'classifier/'}" in message

    restored = persist.restore(artifact, into=renamed,
                               var_map={"enc/": "encoder/", "head/": "classifier/"})
    assert sorted(restored.report.restored) == ["classifier/bias", "classifier/kernel",
                                                "encoder/bias", "encoder/kernel"]
    np.testing.assert_array_equal(restored(X4)[0], saved(X4).numpy())


@pytest.mark.parametrize("fmt_name", ["ckpt", "tf_checkpoint", "weights_h5", "keras"])
def test_layer_renames_do_not_matter_where_names_are_positional(fmt_name, tmp_path):
    """Keras 3 weights files and checkpoints name variables by layer type and position."""
    if fmt_name == "keras":
        model_zoo.keras3_only("by-name restores of a .keras archive (Keras 2's are refused)")
    persist = make_persist(fmt_name, tmp_path)
    saved = vm.mlp(("enc", "head"), seed=1)
    artifact = persist.save(saved, inputs=X4)
    renamed = vm.mlp(("encoder", "classifier"), seed=2)
    restored = persist.restore(artifact, into=renamed)
    assert len(restored.report.restored) == 4
    np.testing.assert_array_equal(restored(X4)[0], saved(X4).numpy())


# Where an inserted layer moves the head in each positional naming scheme.
INSERTED_LAYER_MAP = {
    "ckpt": {"layers/dense_1/": "layers/dense_2/"},
    "weights_h5": {"layers/dense_1/": "layers/dense_2/"},
    "keras": {"layers/dense_1/": "layers/dense_2/"},
    "tf_checkpoint": {"model/_operations/2/": "model/_operations/3/"},
}


@pytest.mark.parametrize("fmt_name", sorted(INSERTED_LAYER_MAP))
def test_inserted_layer_shifts_positions_and_a_map_fixes_it(fmt_name, tmp_path):
    model_zoo.keras3_only("var_map keys in Keras 3's positional names (layers/dense_1/)")
    persist = make_persist(fmt_name, tmp_path)
    saved = vm.mlp(("enc", "head"), (5, 2), seed=1)
    artifact = persist.save(saved, inputs=X4)

    def deeper() -> Any:
        return vm.mlp(("enc", "extra", "head"), (5, 5, 2), seed=2)

    # Without a map the saved head lands on the inserted layer: a shape mismatch, both named.
    message = failure(lambda: persist.restore(artifact, into=deeper()))
    assert "shape/dtype mismatch" in message
    assert "(5, 2) float32 vs model" in message and "(5, 5) float32" in message

    target = deeper()
    extra_before = {k: v for k, v in vm.keras_values(target).items() if k.startswith("extra/")}
    restored = persist.restore(artifact, into=target, var_map=INSERTED_LAYER_MAP[fmt_name],
                               only=["enc/", "head/"])
    assert_values(target, vm.keras_values(saved), ["enc/kernel", "enc/bias"])
    np.testing.assert_array_equal(vm.keras_values(target)["head/kernel"],
                                  vm.keras_values(saved)["head/kernel"])
    assert_values(target, extra_before, list(extra_before))
    assert len(restored.report.skipped) == 2  # the inserted layer, on purpose


def _renamed_saved_name(persist: Persist, artifact: Any) -> tuple[str, str]:
    real = sorted(persist.adapter.saved_names(artifact, RestoreOptions()).entries)[0]
    return real, real[:-1] + ("x" if real[-1] != "x" else "y")


@pytest.mark.parametrize("fmt_name", VARIABLE_FORMATS)
def test_unknown_var_map_key_lists_the_closest_saved_names(fmt_name, tmp_path):
    if fmt_name == "keras":
        model_zoo.keras3_only("by-name restores of a .keras archive (Keras 2's are refused)")
    persist = make_persist(fmt_name, tmp_path)
    artifact = persist.save(vm.mlp(seed=1), inputs=X4)
    real, typo = _renamed_saved_name(persist, artifact)
    message = failure(lambda: persist.restore(artifact, into=vm.mlp(seed=2),
                                              var_map={typo: "enc/kernel"}))
    assert message.startswith(f"[{fmt_name}] restore {artifact.path} failed: RestoreMapError:")
    assert f"var_map key {typo!r} is not a variable in" in message
    assert real in message.split("closest saved names: ")[1]


def test_unknown_target_name_in_var_map_lists_the_closest_target_names(seed_ckpt):
    persist, artifact = seed_ckpt
    target = vm.seed_graph(names=("other-v1", "other-v2"))
    message = failure(lambda: persist.restore(artifact, into=target,
                                              var_map={"v1": "other_v1", "v2": "other-v2"}))
    assert "var_map['v1'] = 'other_v1' is not a variable of the target" in message
    assert "closest target names: other-v1" in message


def test_var_map_to_a_variable_of_another_model_fails(seed_ckpt):
    persist, artifact = seed_ckpt
    stranger = vm.seed_graph(names=("other-v1", "other-v2")).graph_variables()[0]
    message = failure(lambda: persist.restore(artifact, into=vm.seed_graph(),
                                              var_map={"v1": stranger}))
    assert "var_map['v1'] is 'other-v1:0', which is not a variable of the target model" in message


def test_prefix_map_that_maps_nothing_fails(tmp_path):
    persist = make_persist("ckpt", tmp_path)
    artifact = persist.save(vm.seed_graph(scope="old_scope"))
    target = vm.seed_graph(scope="new_scope")
    message = failure(lambda: persist.restore(artifact, into=target,
                                              var_map={"old_scope/": "nwe_scope/"}))
    assert "var_map 'old_scope/' -> 'nwe_scope/' maps old_scope/v1, old_scope/v2" in message
    assert "none of which is a variable of the target" in message
    assert "closest target names: new_scope/v1" in message
    message = failure(lambda: persist.restore(artifact, into=target,
                                              var_map={"old_scop/": "new_scope/"}))
    assert "var_map prefix 'old_scop/' matches no name in" in message
    assert "closest saved prefixes: old_scope/" in message


def test_two_saved_values_mapped_onto_one_variable_fail(seed_ckpt):
    persist, artifact = seed_ckpt
    message = failure(lambda: persist.restore(artifact, into=vm.seed_graph(),
                                              var_map={"v1": "v1", "v2": "v1"}))
    assert "var_map sends both 'v1' and 'v2'" in message and "to the variable 'v1'" in message


def test_swapped_map_is_caught_by_the_outputs(tmp_path):
    """A map that fits every shape but pairs the wrong layers: only the outputs can tell."""
    persist = make_persist("h5", tmp_path)
    model = vm.mlp(("a", "b"), (4, 4), seed=1)
    target = vm.mlp(("a", "b"), (4, 4), seed=2)
    message = failure(lambda: persist.check(model, X4, into=target,
                                            var_map={"a/": "b/", "b/": "a/"}))
    assert message.startswith("[h5] restored outputs differ from the original model's")
    # The same check with the right (identity) map passes.
    persist.check(model, X4, into=vm.mlp(("a", "b"), (4, 4), seed=2), var_map={"a/": "a/"})


# ---- only -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt_name", VARIABLE_FORMATS)
def test_only_restores_the_backbone_and_keeps_the_rest(fmt_name, tmp_path):
    if fmt_name == "keras":
        model_zoo.keras3_only("by-name restores of a .keras archive (Keras 2's are refused)")
    persist = make_persist(fmt_name, tmp_path)
    saved = vm.mlp(seed=1)
    artifact = persist.save(saved, inputs=X4)
    target = vm.mlp(seed=2)
    before = vm.keras_values(target)
    restored = persist.restore(artifact, into=target, only=["enc/"])
    assert_values(target, vm.keras_values(saved), ["enc/kernel", "enc/bias"])
    assert_values(target, before, ["head/kernel", "head/bias"])  # exactly as they were
    assert len(restored.report.restored) == 2 and len(restored.report.skipped) == 2
    assert restored.report.complete


def test_only_with_variable_objects(seed_ckpt):
    persist, artifact = seed_ckpt
    target = vm.seed_graph()
    v2 = target.graph_variables()[1]
    restored = persist.restore(artifact, into=target, only=[v2])
    assert vm.graph_values(target) == {"v1": [1.0], "v2": [4.0]}
    assert restored.report.skipped == ["v1"]


def test_only_entry_naming_nothing_lists_the_closest_names(seed_ckpt):
    persist, artifact = seed_ckpt
    message = failure(lambda: persist.restore(artifact, into=vm.seed_graph(), only=["v3"]))
    assert message.startswith(f"[ckpt] restore {artifact.path} failed: RestoreMapError:")
    assert "only= entry 'v3' names no variable of the target and nothing in" in message
    assert "closest names: v1, v2" in message or "closest names: v2, v1" in message


def test_restores_that_would_restore_nothing_fail(seed_ckpt, tmp_path):
    persist, artifact = seed_ckpt
    message = failure(lambda: persist.restore(artifact, into=vm.seed_graph(), only=[]))
    assert "only= is empty: nothing would be restored" in message
    h5 = make_persist("h5", tmp_path / "h5")
    saved = h5.save(vm.mlp(units=(5, 2), seed=1), inputs=X4)
    message = failure(lambda: h5.restore(saved, into=vm.mlp(units=(6, 3)), skip_mismatched=True))
    assert "(nothing restored: all 4 variables skipped)" in message


def test_only_selecting_a_value_no_variable_takes_is_not_a_silent_no_op(seed_ckpt):
    persist, artifact = seed_ckpt
    target = vm.seed_graph(names=("other-v1", "other-v2"))
    message = failure(lambda: persist.restore(artifact, into=target, only=["v1"]))
    assert "only= entry 'v1' selects v1" in message
    assert "which no variable of the target takes; map it with var_map=" in message


# ---- mismatches, strictness, the report ---------------------------------------------------


@pytest.mark.parametrize("fmt_name", VARIABLE_FORMATS)
def test_shape_mismatch_fails_with_both_shapes_and_names(fmt_name, tmp_path):
    if fmt_name == "keras":
        model_zoo.keras3_only("by-name restores of a .keras archive (Keras 2's are refused)")
    persist = make_persist(fmt_name, tmp_path)
    artifact = persist.save(vm.mlp(units=(5, 2), seed=1), inputs=X4)
    message = failure(lambda: persist.restore(artifact, into=vm.mlp(units=(5, 3), seed=2)))
    assert f"[{fmt_name}] restore of {artifact.path}" in message
    assert "shape/dtype mismatch 2:" in message
    assert "(5, 2) float32 vs model" in message and "(5, 3) float32" in message
    saved_names = persist.adapter.saved_names(artifact, RestoreOptions()).entries
    head_kernel = next(n for n, (shape, _) in saved_names.items() if tuple(shape) == (5, 2))
    assert head_kernel in message  # the file's name for it


@pytest.mark.parametrize("fmt_name", VARIABLE_FORMATS)
def test_skip_mismatched_restores_the_rest_and_keeps_the_mismatched(fmt_name, tmp_path):
    if fmt_name == "keras":
        model_zoo.keras3_only("by-name restores of a .keras archive (Keras 2's are refused)")
    persist = make_persist(fmt_name, tmp_path)
    saved = vm.mlp(units=(5, 2), seed=1)
    artifact = persist.save(saved, inputs=X4)
    target = vm.mlp(units=(5, 3), seed=2)
    before = vm.keras_values(target)
    restored = persist.restore(artifact, into=target, skip_mismatched=True)
    assert_values(target, vm.keras_values(saved), ["enc/kernel", "enc/bias"])
    assert_values(target, before, ["head/kernel", "head/bias"])
    assert len(restored.report.skipped) == 2
    assert all(n.startswith("skipped on mismatch (skip_mismatched=True)")
               for n in restored.report.notes)


def test_dtype_mismatch_names_both_dtypes(seed_ckpt):
    tf = pytest.importorskip("tensorflow")
    persist, artifact = seed_ckpt
    target = {"v1": tf.Variable([0.0]), "v2": tf.Variable([0.0], dtype=tf.float64)}
    message = failure(lambda: persist.restore(artifact, into=target))
    assert "shape/dtype mismatch 1: v2: file (1,) float32 vs model (1,) float64" in message


@pytest.mark.parametrize("fmt_name", VARIABLE_FORMATS)
def test_missing_variables_fail_unless_strict_false(fmt_name, tmp_path):
    """A bigger target: strict (the default) fails naming the missing; strict=False reports."""
    if fmt_name == "keras":
        model_zoo.keras3_only("by-name restores of a .keras archive (Keras 2's are refused)")
    persist = make_persist(fmt_name, tmp_path)
    saved = vm.mlp(("enc", "head"), (5, 2), seed=1)
    artifact = persist.save(saved, inputs=X4)

    def bigger() -> Any:
        return vm.mlp(("enc", "head", "extra"), (5, 2, 3), seed=2)

    message = failure(lambda: persist.restore(artifact, into=bigger()))
    assert "missing from the file 2:" in message
    assert "not found in" in message

    target = bigger()
    restored = persist.restore(artifact, into=target, strict=False)
    assert len(restored.report.missing) == 2 and not restored.report.everything_restored
    assert restored.report.complete  # accepted: the user loosened it
    assert_values(target, vm.keras_values(saved), ["enc/kernel", "head/kernel", "head/bias"])


def test_values_in_the_file_but_unused_are_reported_not_failed(seed_ckpt):
    tf = pytest.importorskip("tensorflow")
    persist, artifact = seed_ckpt
    target = {"v1": tf.Variable([0.0])}
    restored = persist.restore(artifact, into=target)
    assert restored.report.restored == ["v1"] and restored.report.unused == ["v2"]
    assert target["v1"].numpy().tolist() == [3.0]
    assert "in the file but unused 1: v2" in restored.report.summary()


# ---- restores that silently load nothing ---------------------------------------------------


def test_keras_by_name_silently_skipping_renamed_layers_is_caught(tmp_path):
    persist = make_persist("h5", tmp_path)
    artifact = persist.save(vm.mlp(("enc", "head"), seed=1), inputs=X4)
    # Keras itself: by_name=True into renamed layers loads nothing and says nothing.
    renamed = vm.mlp(("encoder", "classifier"), seed=2)
    before = vm.keras_values(renamed)
    renamed.load_weights(str(artifact.path), by_name=True)
    assert_values(renamed, before, list(before))
    # The same restore through the plugin fails, naming every variable it did not find.
    message = failure(lambda: persist.restore(artifact, into=vm.mlp(("encoder", "classifier"))))
    assert "missing from the file 4" in message and "encoder/kernel: not found" in message


def test_a_loader_that_loads_nothing_is_caught(tmp_path):
    persist = make_persist("weights_h5", tmp_path)
    artifact = persist.save(vm.mlp(seed=1), inputs=X4)
    saved = persist.adapter.saved_names(artifact, RestoreOptions())

    def pretend(model: Any, report: RestoreReport) -> str:
        return "a loader that claims success"

    restored = restore_with("weights_h5", artifact, RestoreOptions(into=vm.mlp(seed=2)),
                            ByName(saved, load=pretend), how="test")
    assert not restored.report.complete
    first = "layers/dense/vars/0" if model_zoo.keras_major() == 3 else "enc/kernel"
    assert f"{first} (value unchanged by the restore)" in restored.report.missing


# ---- ckpt directories: which checkpoint restores -------------------------------------------


def _set_v1(model: Any, step: int) -> None:
    model.load_values([(model.graph_variables()[0], np.array([float(step)], np.float32))])


@pytest.fixture
def training_run(tmp_path: Path) -> Any:
    """Checkpoints of steps 1, 2, 3 with v1 = step (v2 = 10), like a training loop's."""
    model = vm.seed_graph((0.0, 10.0))
    return save_steps(model, tmp_path / "run", [1, 2, 3], update=_set_v1)


def _both_restores(persist: Persist, artifact: Any, **options: Any) -> list[float]:
    """v1 as restored by import_meta_graph (no code) and by name into a fresh graph."""
    meta = persist.restore(artifact, **options)
    target = vm.seed_graph()
    persist.restore(artifact, into=target, **options)
    return [float(meta(X1)[0][0]) - 10.0, float(vm.graph_values(target)["v1"][0])]


def test_ckpt_restores_the_latest_checkpoint_named_by_the_state_file(training_run, tmp_path):
    persist = make_persist("ckpt", tmp_path)
    state = (training_run.directory / "checkpoint").read_text()
    assert 'model_checkpoint_path: "model-3"' in state
    assert 'all_model_checkpoint_paths: "model-1"' in state
    assert _both_restores(persist, training_run) == [3.0, 3.0]
    assert persist.restore(training_run).how == "import_meta_graph + Saver.restore (model-3)"


@pytest.mark.parametrize("choice", [2, "model-2"])
def test_ckpt_restores_a_chosen_step(training_run, tmp_path, choice):
    persist = make_persist("ckpt", tmp_path)
    assert _both_restores(persist, training_run, checkpoint=choice) == [2.0, 2.0]


def test_ckpt_edited_state_file_picks_another_checkpoint(training_run, tmp_path):
    """Seed 000: edit `checkpoint` to choose the model used for inference."""
    persist = make_persist("ckpt", tmp_path)
    state = training_run.directory / "checkpoint"
    state.write_text(state.read_text().replace('model_checkpoint_path: "model-3"',
                                               'model_checkpoint_path: "model-1"'))
    assert _both_restores(persist, training_run) == [1.0, 1.0]


def test_ckpt_unknown_step_lists_the_saved_steps(training_run, tmp_path):
    persist = make_persist("ckpt", tmp_path)
    message = failure(lambda: persist.restore(training_run, checkpoint=7))
    assert message.startswith(f"[ckpt] restore {training_run.path} failed: FileNotFoundError:")
    assert "no checkpoint of step 7" in message and "saved steps: 1, 2, 3" in message
    message = failure(lambda: persist.restore(training_run, checkpoint="model-9"))
    assert "no checkpoint 'model-9'" in message and "model-1, model-2, model-3" in message


def test_ckpt_state_file_naming_a_deleted_checkpoint_fails(training_run, tmp_path):
    persist = make_persist("ckpt", tmp_path)
    for f in training_run.directory.glob("model-3.*"):
        f.unlink()
    message = failure(lambda: persist.restore(training_run, into=vm.seed_graph()))
    assert "the 'checkpoint' state file in" in message
    assert "names 'model-3', which is not there" in message
    assert "checkpoints present: model-1, model-2" in message


def test_import_meta_graph_restores_without_model_code(tmp_path):
    persist = make_persist("ckpt", tmp_path)
    artifact = persist.save(vm.seed_graph((3.0, 4.0)))
    restored = persist.restore(artifact.directory)  # the directory alone, no build, no into
    assert restored.how == "import_meta_graph + Saver.restore"
    add, y = restored(X1)
    np.testing.assert_array_equal(add, [7.0])
    np.testing.assert_array_equal(y, [[7.0], [14.0]])


def test_import_meta_graph_refuses_by_name_options(seed_ckpt):
    persist, artifact = seed_ckpt
    message = failure(lambda: persist.restore(artifact, only=["v1"]))
    assert "restore into a model: pass into=<model> or build=<callable>" in message


def test_unknown_restore_option_is_refused_with_a_suggestion(seed_ckpt):
    persist, artifact = seed_ckpt
    message = failure(lambda: persist.restore(artifact, into=vm.seed_graph(), varmap={}))
    assert "unsupported restore option(s) 'varmap' (did you mean 'var_map'?)" in message


# ---- cross-kind restores -------------------------------------------------------------------


def test_tf1_graph_ckpt_into_eager_variables_by_name(seed_ckpt):
    tf = pytest.importorskip("tensorflow")
    persist, artifact = seed_ckpt
    module = vm.Pair()
    restored = persist.restore(artifact, into=module)
    assert restored.report.restored == ["v1", "v2"]
    # The oracle: TensorFlow's own init_from_checkpoint, into fresh eager variables.
    oracle = {"v1": tf.Variable([0.0]), "v2": tf.Variable([0.0])}
    tf.compat.v1.train.init_from_checkpoint(str(artifact.path), oracle)
    assert module.v1.numpy().tolist() == oracle["v1"].numpy().tolist() == [3.0]
    assert module.v2.numpy().tolist() == oracle["v2"].numpy().tolist() == [4.0]
    np.testing.assert_array_equal(restored(X1)[0], [[7.0], [14.0]])


def test_tf1_graph_ckpt_into_a_dict_of_eager_variables_through_a_map(seed_ckpt):
    tf = pytest.importorskip("tensorflow")
    persist, artifact = seed_ckpt
    target = {"bias": tf.Variable([0.0]), "scale": tf.Variable([0.0])}
    restored = persist.restore(artifact, into=target, var_map={"v1": "bias", "v2": "scale"})
    assert target["bias"].numpy().tolist() == [3.0] and target["scale"].numpy().tolist() == [4.0]
    with pytest.raises(TypeError, match="collection of variables, not a model"):
        restored(X1)
    message = failure(lambda: persist.restore(artifact, into={"bias": tf.Variable([0.0])}))
    assert "bias: not found in" in message


def test_tf1_graph_savedmodel_variables_into_eager_variables(tmp_path):
    persist = make_persist("savedmodel", tmp_path)
    artifact = persist.save(vm.seed_graph((3.0, 4.0)))
    module = vm.Pair()
    restored = persist.restore(artifact, into=module)
    assert restored.report.restored == ["v1", "v2"]
    np.testing.assert_array_equal(restored(X1)[0], [[7.0], [14.0]])


def test_keras_savedmodel_variables_into_a_rebuilt_model(tmp_path):
    persist = make_persist("savedmodel", tmp_path)
    saved = vm.mlp(seed=1)
    artifact = persist.save(saved, inputs=X4)
    restored = persist.restore(artifact, build=lambda: vm.mlp(seed=2), only=["enc/", "head/"])
    np.testing.assert_array_equal(restored(X4)[0], saved(X4).numpy())
    assert restored.how == "tf.train.load_checkpoint(variables/variables) by variable name"
    # build= alone keeps the whole-model load through the serving signature.
    assert "signature" in persist.restore(artifact, build=vm.mlp).how


def test_module_savedmodel_into_a_fresh_module(tmp_path):
    import model_zoo

    persist = make_persist("savedmodel", tmp_path)
    saved = model_zoo.module()
    saved.w.assign(saved.w + 1.0)
    artifact = persist.save(saved, inputs=X4)
    fresh = model_zoo.module()
    restored = persist.restore(artifact, into=fresh)
    assert sorted(restored.report.restored) == ["b", "w"]
    np.testing.assert_array_equal(fresh.w.numpy(), saved.w.numpy())


def test_keras_ckpt_into_a_model_with_a_new_head(tmp_path):
    """Fine-tuning: a traced Keras checkpoint's backbone into a model whose head changed."""
    persist = make_persist("ckpt", tmp_path)
    saved = vm.mlp(("enc", "head"), (5, 2), seed=1)
    artifact = persist.save(saved, inputs=X4)
    target = vm.mlp(("enc", "new_head"), (5, 7), seed=2)
    head_before = vm.keras_values(target)["new_head/kernel"]
    restored = persist.restore(artifact, into=target, only=["enc/"])
    assert_values(target, vm.keras_values(saved), ["enc/kernel", "enc/bias"])
    np.testing.assert_array_equal(vm.keras_values(target)["new_head/kernel"], head_before)
    assert restored(X4)[0].shape == (3, 7)


def test_savedmodel_by_name_needs_stable_layer_names(tmp_path):
    """A SavedModel names variables by layer name: auto-generated names (dense_3) differ in a
    rebuilt model, and the restore says so instead of loading the wrong thing."""
    import model_zoo

    persist = make_persist("savedmodel", tmp_path)
    artifact = persist.save(model_zoo.randomize(model_zoo.functional()), inputs=X4)
    message = failure(lambda: persist.restore(artifact, into=model_zoo.functional()))
    assert "missing from the file 5" in message and "in the file but unused 5" in message
    assert "not found in" in message and "(map it: var_map={" in message
